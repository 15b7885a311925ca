"""Shared fixtures: real models, loaded once per test session, and real audio from ../shared."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from voice_agent.settings import Settings, load_settings
from voice_agent.storage import CallStore

if TYPE_CHECKING:  # imported where used: 4 s that the xdist controller, running no test, skips
    from fastapi import FastAPI

    from voice_agent.engines import Engines

# Machines that set PYTHONDONTWRITEBYTECODE=1 (this one and CI do) make every test process (the
# two workers, each server a test starts) compile voice_agent and rewrite the tests' asserts
# again: 6 s a process. The suite keeps its bytecode in the checkout's git-ignored __pycache__.
sys.dont_write_bytecode = False
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
SPEECH = SHARED / "data" / "speech"
CLEAN = SPEECH / "clean"
TELEPHONY = SPEECH / "telephony"


def gold_transcripts() -> dict[str, str]:
    out = {}
    for line in (SPEECH / "transcripts.tsv").read_text().splitlines():
        path, _, text = line.partition("\t")
        if path and text:
            out[path] = text
    return out


def small_settings(tmp: Path, **overrides) -> Settings:
    """Real models with the 135M LLM: for pipeline mechanics, not answer quality."""
    values = dict(
        llm_model="smollm2-135m",
        llm_max_tokens=24,
        database_url=f"sqlite:///{tmp / 'calls.db'}",
        data_dir=tmp,
    )
    values.update(overrides)
    return load_settings(**values)


@pytest.fixture(scope="session")
def small_engines(tmp_path_factory) -> Engines:
    from voice_agent.engines import Engines

    return Engines.load(small_settings(tmp_path_factory.mktemp("small")))


@pytest.fixture
def store(tmp_path) -> CallStore:
    return CallStore(f"sqlite:///{tmp_path / 'calls.db'}")


@contextlib.asynccontextmanager
async def serve(app: FastAPI, ws_max_size: int = 65536):
    from voice_agent.loopback_server import HOST, serving_in_process

    async with serving_in_process(app, ws_max_size=ws_max_size) as port:
        yield f"{HOST}:{port}"


def engines_with(small_engines: Engines, tmp_path: Path, **overrides) -> Engines:
    """The session's loaded models under different per-call settings."""
    from voice_agent.engines import Engines

    return Engines(
        small_settings(tmp_path, **overrides),
        small_engines.stt,
        small_engines.tts,
        small_engines.llm,
        small_engines.model_names,
        knowledge=small_engines.knowledge,
        triage=small_engines.triage,
        acts=small_engines.acts,
    )


def agent(small_engines: Engines, tmp_path: Path, **overrides) -> tuple[FastAPI, CallStore]:
    from voice_agent.server import create_app

    engines = engines_with(small_engines, tmp_path, **overrides)
    app = create_app(engines.settings, engines=engines)
    return app, CallStore.from_settings(engines.settings)


# llama.cpp's OpenAI-compatible server with the small model (session)
from llama_server import llama_server  # noqa: E402, F401

# A throwaway PostgreSQL server (session) and per-test databases on SQLite and PostgreSQL
from postgres import any_database_url, postgres_server, postgres_url  # noqa: E402, F401

# Tiers: `models` marked from the fixtures a test uses, and enforced (tests/tiers.py)
from tiers import (  # noqa: E402, F401
    model_tier,
    pytest_collection_modifyitems,
    pytest_xdist_auto_num_workers,
    quick_password_hashes,
)
