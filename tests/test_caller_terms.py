"""Caller words to runbook words: the lexicon in front of the runbook search (phrases, the
``with`` condition, a company glossary, clear errors for a bad one) and what it changes in a
real search over a real index with the real embedder."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import REPO, SHARED
from voice_agent.engines import caller_terms
from voice_agent.flows.runbooks import RunbookGuide
from voice_agent.knowledge import HybridRetriever, KnowledgeStore
from voice_agent.knowledge.caller_terms import CallerTerms, CallerTermsError, normalise
from voice_agent.knowledge.cli import kb_app
from voice_agent.settings import Settings

SCENARIO_FILES = [
    SHARED / "eval" / "scenarios_dev.jsonl",
    REPO / "tests" / "data" / "scenarios.jsonl",
]

GLOSSARY = """
[[term]]
when = ["collaboration platform"]
add = "OneDrive for Business SharePoint"
"""


@pytest.fixture(scope="module")
def terms() -> CallerTerms:
    return CallerTerms.load()


def test_normalise_drops_apostrophes_and_splits_on_punctuation():
    assert normalise("Can't open Wi-Fi settings!") == "cant open wi fi settings"
    assert normalise("my collaboration_platform") == "my collaboration platform"


@pytest.mark.parametrize(
    "said, added",
    [
        ("the Wi-Fi in the office won't connect", "wireless network"),
        ("my wifi keeps dropping", "wireless network"),
        ("Outlook won't open since this morning", "cannot start"),
        ("this copy of office is not activated", "activation"),
        ("my iPhone was stolen on the train", "remotely wipe mobile device"),
        ("I need the mailbox of my colleague in Outlook", "shared mailbox"),
        ("emails not updating in outlook", "synchronization"),
    ],
)
def test_the_runbook_words_are_added_after_the_callers_own(terms, said, added):
    expanded = terms.expand(said)
    assert expanded.startswith(said)
    assert added in expanded[len(said) :]


def test_a_with_condition_needs_both_phrases(terms):
    assert "remotely wipe" not in terms.expand("I lost my password")
    assert "remotely wipe" in terms.expand("lost my work phone yesterday")


def test_words_inside_other_words_do_not_match(terms):
    # "mic" (a microphone) must not fire on "Microsoft"; "dl" not on "download"
    assert terms.expand("Microsoft Word download fails") == "Microsoft Word download fails"


def test_no_match_leaves_the_query_as_it_is_and_each_addition_comes_once(terms):
    assert terms.expand("what's the weather like") == "what's the weather like"
    once = terms.expand("wifi and wi-fi and wlan")
    assert once.count("wireless network") == 1
    assert CallerTerms.none().expand("my wifi") == "my wifi"


def test_a_company_glossary_adds_to_the_packaged_lexicon(tmp_path, terms):
    path = tmp_path / "glossary.toml"
    path.write_text(GLOSSARY)
    both = CallerTerms.load(path)
    assert len(both) == len(terms) + 1
    expanded = both.expand("my collaboration_platform is not syncing, and the wifi too")
    assert "OneDrive for Business SharePoint" in expanded and "wireless network" in expanded


@pytest.mark.parametrize(
    "text, message",
    [
        ("[[term]]\nwhen = 'wifi'\nadd = 'x'\n", "term #1 'when': expected a non-empty list"),
        ("[[term]]\nwhen = ['wifi']\n", "term #1: 'add' must be the runbook words"),
        ("[[term]]\nwhen = ['wifi']\nadd = 'x'\nweight = 2\n", "unknown key(s) ['weight']"),
        ("[[terms]]\nwhen = ['wifi']\n", "unknown key(s) ['terms']"),
        ("[[term]\n", "not valid TOML"),
    ],
)
def test_a_bad_glossary_is_refused_with_its_file_and_entry(tmp_path, text, message):
    path = tmp_path / "glossary.toml"
    path.write_text(text)
    with pytest.raises(CallerTermsError, match="glossary.toml") as e:
        CallerTerms.load(path)
    assert message in str(e.value)


def test_the_server_reports_a_bad_glossary_and_keeps_the_packaged_lexicon(tmp_path, caplog):
    from loguru import logger

    handler = logger.add(caplog.handler, level="ERROR", format="{message}")
    try:
        with caplog.at_level(logging.ERROR):
            kept = caller_terms(Settings(kb_glossary=tmp_path / "missing.toml"))
    finally:
        logger.remove(handler)
    assert len(kept) == len(CallerTerms.load()) and "wireless network" in kept.expand("wifi")
    assert "kb_glossary ignored: glossary not found" in caplog.text


WIRELESS = """# Connect to a wireless network

## Steps

1. Click the network icon in the notification area.
2. Pick the wireless network and enter its security key.
"""
WIPE = """# Remotely wipe an ActiveSync device

## Steps

1. Open Outlook on the web and go to Mobile devices.
2. Select the device and choose Wipe data.
"""
PRINTER = """# Printer shows offline

## Steps

1. Turn the printer off and on.
2. Clear the print queue.
"""


@pytest.fixture(scope="module")
def small_kb(tmp_path_factory):
    root = tmp_path_factory.mktemp("runbooks")
    for name, text in [("wireless.md", WIRELESS), ("wipe.md", WIPE), ("printer.md", PRINTER)]:
        (root / name).write_text(text)
    store = KnowledgeStore(tmp_path_factory.mktemp("kb"))
    store.ingest([root])
    yield store
    store.close()


def test_a_real_search_uses_the_runbook_words_and_says_so(small_kb):
    with_terms = HybridRetriever(small_kb).search("the wifi won't work", k=3)
    assert with_terms.searched_as == "the wifi won't work. wireless network."
    assert with_terms[0].article_path == "wireless.md"
    # BM25 alone cannot bridge "wifi" to "wireless": without the lexicon it finds nothing
    bm25 = HybridRetriever(small_kb, mode="bm25", terms=CallerTerms.none())
    assert bm25.search("the wifi won't work", k=3) == []
    plain = HybridRetriever(small_kb, terms=CallerTerms.none()).search("the wifi won't work")
    assert plain.searched_as == "the wifi won't work"


@pytest.mark.models
def test_kb_search_cli_shows_what_was_searched_and_refuses_a_missing_glossary(
    tmp_path, monkeypatch
):
    root = tmp_path / "runbooks"
    root.mkdir()
    (root / "wireless.md").write_text(WIRELESS)
    monkeypatch.setenv("VOICE_AGENT_DATA_DIR", str(tmp_path / "var"))
    runner = CliRunner()
    assert runner.invoke(kb_app, ["ingest", str(root), "--json"]).exit_code == 0

    result = runner.invoke(kb_app, ["search", "wi-fi is down", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["searched_as"] == "wi-fi is down. wireless network."
    assert out["hits"][0]["article_path"] == "wireless.md"

    result = runner.invoke(kb_app, ["search", "wi-fi is down", "--no-caller-terms", "--json"])
    assert json.loads(result.stdout)["searched_as"] == "wi-fi is down"

    result = runner.invoke(kb_app, ["search", "wi-fi", "--glossary", str(tmp_path / "no.toml")])
    assert result.exit_code == 2
    assert "glossary not found" in result.output


@pytest.fixture(scope="module")
def starter_kb(tmp_path_factory):
    store = KnowledgeStore(tmp_path_factory.mktemp("starter"))
    store.ingest([REPO / "voice_agent" / "knowledge" / "starter_kb"])
    yield store
    store.close()


def test_scripted_callers_still_find_their_runbook_with_the_lexicon(starter_kb):
    """The lexicon runs in calls too: each scripted caller's opening whose problem a starter
    runbook covers must still find that runbook (two entries that moved one were taken out)."""
    scenarios = [
        json.loads(line)
        for path in SCENARIO_FILES
        if path.is_file()
        for line in path.read_text().splitlines()
        if line.strip()
    ]
    covered = [s for s in scenarios if s["expect"]["runbook"] != "-"]
    assert len(covered) >= 10
    guide = RunbookGuide(HybridRetriever(starter_kb))
    wrong = {}
    for s in covered:
        walk = asyncio.run(guide.find(s["caller"]["opening"]))
        found = Path(walk.hit.article_path).stem if walk else "-"
        if found != s["expect"]["runbook"]:
            wrong[s["id"]] = f"{found} instead of {s['expect']['runbook']}"
    assert not wrong, wrong
