"""The runbook knowledge base: parsing and chunking, incremental ingestion, hybrid retrieval on
the real shared corpus (../shared/data/kb) with the real embedding model, and the kb CLI."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from voice_agent.knowledge import (
    DocumentError,
    HybridRetriever,
    KnowledgeStore,
    KnowledgeStoreBusy,
    KnowledgeUnavailable,
    evaluate,
    load_document,
    load_qrels,
    write_run,
)
from voice_agent.knowledge.caller_terms import CallerTerms
from voice_agent.knowledge.cli import kb_app

SHARED = Path(__file__).resolve().parents[2] / "shared"
CORPUS = SHARED / "data" / "kb"
DEV_QRELS = SHARED / "eval" / "retrieval_dev.tsv"
TEST_QUERIES = SHARED / "eval" / "retrieval_test_queries.tsv"

RUNBOOK = """---
title: Outlook keeps asking for password
category: email
tags: [outlook, password, credentials]
summary: What to do when Outlook prompts for the password again and again.
---

# Outlook keeps asking for password

<!-- internal note: reviewed by the service desk lead -->

:::image type="content" source="media/prompt.png" alt-text="Screenshot of the prompt.":::

Outlook shows a **credentials prompt** every few minutes although the password is right.
See [the Microsoft article](https://support.microsoft.com/kb/123) for background.

## Steps

1. Close Outlook.
2. Open Credential Manager and remove every entry that starts with MicrosoftOffice16.
3. Start Outlook and sign in once.

```
rundll32.exe keymgr.dll,KRShowKeyMgr
```

## Escalate

If the prompt comes back after these steps, escalate to the messaging team with the user's
mailbox name and the time of the last prompt.
"""


def _words(n: int, word: str = "alpha") -> str:
    return " ".join(f"{word}{i}" for i in range(n))


def _pdf_bytes(pages: list[str], title: str) -> bytes:
    """A real text PDF, built with pypdf (which has no text API: one content stream a page)."""
    from pypdf import PdfWriter
    from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

    writer = PdfWriter()
    for text in pages:
        page = writer.add_blank_page(612, 792)
        font = DictionaryObject(
            {
                NameObject("/Type"): NameObject("/Font"),
                NameObject("/Subtype"): NameObject("/Type1"),
                NameObject("/BaseFont"): NameObject("/Helvetica"),
            }
        )
        fonts = DictionaryObject({NameObject("/F1"): writer._add_object(font)})
        page[NameObject("/Resources")] = DictionaryObject({NameObject("/Font"): fonts})
        stream = DecodedStreamObject()
        stream.set_data(f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode("latin-1"))
        page[NameObject("/Contents")] = writer._add_object(stream)
    writer.add_metadata({"/Title": title})
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


# ---------------------------------------------------------------------------------------------
# Parsing and chunking


def test_markdown_front_matter_sections_and_cleaning(tmp_path):
    path = tmp_path / "outlook-password.md"
    path.write_text(RUNBOOK)
    doc = load_document(path)
    assert doc.kind == "markdown"
    assert doc.title == "Outlook keeps asking for password"
    assert doc.summary.startswith("What to do when Outlook prompts")
    assert doc.tags == ["outlook", "password", "credentials"]
    assert len(doc.sha256) == 64

    text = "\n".join(c.text for c in doc.chunks)
    assert "internal note" not in text  # HTML comment
    assert ":::image" not in text and "Screenshot" not in text
    assert "the Microsoft article" in text and "support.microsoft.com" not in text
    assert "**" not in text
    assert "keymgr.dll" in text  # code is kept as text
    assert "category" not in text and "---" not in text  # front matter is not body text

    sections = [c.section for c in doc.chunks]
    assert all(c.title == doc.title for c in doc.chunks)
    assert any("Steps" in s for s in sections)
    for chunk in doc.chunks:
        head = f"{doc.title}. {chunk.section}." if chunk.section else f"{doc.title}."
        assert chunk.index_text.startswith(head)
        assert chunk.index_text.endswith("\nTags: outlook, password, credentials")
    # the intro is tiny, so it is merged into the next section rather than standing alone
    assert doc.chunks[0].text.startswith("What to do when Outlook prompts")
    assert "credentials prompt" in doc.chunks[0].text


def test_microsoft_docs_front_matter_uses_description(tmp_path):
    path = tmp_path / "ms.md"
    path.write_text(
        "---\ntitle: Error when accessing OneDrive\ndescription: Describes how to resolve it\n"
        "ms.date: 12/17/2023\n---\n\n# Error DNS_PROBE when accessing OneDrive\n\n## Symptom\n\n"
        + _words(60, "symptom")
        + "\n\n## Resolution\n\n"
        + _words(60, "fix")
        + "\n"
    )
    doc = load_document(path)
    assert doc.title == "Error when accessing OneDrive"
    assert doc.summary == "Describes how to resolve it"
    assert "Error DNS_PROBE when accessing OneDrive" in doc.chunks[0].text  # the H1 says more
    assert [c.section for c in doc.chunks] == ["Symptom", "Resolution"]


def test_long_sections_split_at_paragraphs_and_tiny_ones_merged(tmp_path):
    paragraphs = "\n\n".join(_words(90, f"p{i}x") for i in range(6))  # 540 words
    path = tmp_path / "long.md"
    path.write_text(
        "# Long article\n\n## Overview\n\n"
        + paragraphs
        + "\n\n## Resolution\n\nUse one of these methods.\n\n### Method 1\n\n"
        + _words(80, "m")
        + "\n"
    )
    doc = load_document(path)
    overview = [c for c in doc.chunks if c.section == "Overview"]
    assert len(overview) == 3
    for chunk in overview:
        assert 150 <= chunk.words <= 250
        assert chunk.text.split()[0].endswith("x0")  # cut at a paragraph start
    # "Resolution" is one line: merged into its subsection, whose path it becomes
    (method,) = [c for c in doc.chunks if "Method 1" in c.section]
    assert method.section == "Resolution > Method 1"
    assert method.text.startswith("Use one of these methods.")
    assert [c.ordinal for c in doc.chunks] == list(range(len(doc.chunks)))


def test_html_keeps_text_and_headings_drops_script_style_nav(tmp_path):
    path = tmp_path / "printer.html"
    path.write_text(
        "<html><head><title>Printer offline</title><style>p{color:red}</style>"
        '<meta name="description" content="Fix a printer that shows offline.">'
        "<script>var tracking = 1;</script></head><body>"
        "<nav><a href='/'>Home</a> Menu items</nav>"
        "<h1>Printer offline</h1><p>The printer shows <b>offline</b> in Windows.</p>"
        "<h2>Steps</h2><p>Restart the print spooler service.</p>"
        "<ul><li>Open services.msc</li><li>Restart Print Spooler</li></ul>"
        "<h3>Still offline</h3><p>Reinstall the driver &amp; try again.</p>"
        "</body></html>"
    )
    doc = load_document(path)
    assert doc.kind == "html"
    assert doc.title == "Printer offline"
    text = " ".join(c.index_text for c in doc.chunks)
    assert "tracking" not in text and "color" not in text and "Menu items" not in text
    assert "Restart the print spooler service." in text
    assert "Reinstall the driver & try again." in text
    assert "Fix a printer that shows offline." in text
    # every section is tiny, so they merge; the headings stay as text
    assert "Still offline" in text


def test_pdf_page_text(tmp_path):
    path = tmp_path / "vpn.pdf"
    path.write_bytes(
        _pdf_bytes(
            ["Reset the VPN client and sign in again.", "Printers need the new driver."],
            title="VPN guide",
        )
    )
    doc = load_document(path)
    assert doc.kind == "pdf"
    assert doc.title == "VPN guide"
    text = " ".join(c.text for c in doc.chunks)
    assert "Reset the VPN client" in text and "Printers need the new driver." in text


def test_plain_text(tmp_path):
    path = tmp_path / "wifi_how-to.txt"
    path.write_text("Connect to the CorpSecure network.\n\nUse your domain password.\n")
    doc = load_document(path)
    assert doc.kind == "text"
    assert doc.title == "Wifi how to"
    assert doc.chunks[0].index_text.startswith("Wifi how to. Connect to the CorpSecure network.")


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("empty.md", b"", "empty"),
        ("only-meta.md", b"---\ntitle: Nothing here\n---\n\n<!-- todo -->\n", "empty"),
        ("image.md", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary"),
        ("latin1.txt", "caf\xe9 au lait".encode("latin-1"), "unreadable"),
        ("broken.pdf", b"%PDF-1.4\nnot really a pdf", "unreadable"),
        ("notes.docx", b"PK\x03\x04", "unsupported"),
        ("big.txt", b"word " * 400, "too_large"),
    ],
)
def test_bad_files_are_refused_with_a_reason(tmp_path, name, data, reason):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(DocumentError) as info:
        load_document(path, max_bytes=1000)
    assert info.value.reason == reason
    assert info.value.detail


# ---------------------------------------------------------------------------------------------
# Incremental ingestion on a small knowledge base (real embeddings)


def _search_paths(store: KnowledgeStore, query: str) -> list[str]:
    return [h.article_path for h in HybridRetriever(store).search(query, k=5)]


@pytest.mark.models
def test_incremental_reingest(tmp_path):
    root = tmp_path / "runbooks"
    (root / "email").mkdir(parents=True)
    (root / "email" / "outlook-password.md").write_text(RUNBOOK)
    (root / "vpn.md").write_text("# VPN will not connect\n\n" + "Reinstall the VPN client. " * 30)
    (root / "printer.txt").write_text("The printer is offline. Restart the spooler service.\n")
    (root / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    (root / ".hidden.md").write_text("# Hidden\n\nnever indexed\n")
    kb_dir = tmp_path / "kb"

    with KnowledgeStore(kb_dir) as store:
        first = store.ingest([root])
        assert sorted(first.added) == ["email/outlook-password.md", "printer.txt", "vpn.md"]
        assert [(s.reason, Path(s.path).name) for s in first.skipped] == [
            ("unsupported", "logo.png")
        ]
        chunks = len(store)
        assert store.article_count() == 3
        assert _search_paths(store, "outlook asks for my password all the time")[0] == (
            "email/outlook-password.md"
        )
        hit = HybridRetriever(store).search("printer offline spooler", k=1)[0]
        assert hit.article_path == "printer.txt" and hit.root == str(root.resolve())
        assert "spooler" in hit.best_chunk.text

    # a new process (store) sees the same index; nothing changed -> nothing re-embedded
    with KnowledgeStore(kb_dir) as store:
        assert len(store) == chunks
        again = store.ingest([root])
        assert again.counts() == {
            "added": 0,
            "updated": 0,
            "unchanged": 3,
            "removed": 0,
            "skipped": 1,
        }
        assert again.chunks_embedded == 0

        # modified file: old chunks replaced; removed file: leaves the index
        (root / "vpn.md").write_text("# VPN will not connect\n\nCheck the MFA token first.\n")
        (root / "printer.txt").unlink()
        changed = store.ingest([root])
        assert changed.updated == ["vpn.md"] and changed.removed == ["printer.txt"]
        assert store.article_count() == 2
        texts = [c.text for c in store.chunks() if c.article_path == "vpn.md"]
        assert texts and all("MFA token" in t and "Reinstall" not in t for t in texts)
        assert "printer.txt" not in _search_paths(store, "printer offline spooler")

        # a file that now fails keeps what was indexed for it
        before = len(store)
        (root / "vpn.md").write_bytes(b"\xff\xfe broken \xff bytes")
        failed = store.ingest([root])
        (skip,) = [s for s in failed.skipped if s.path.endswith("vpn.md")]
        assert skip.reason == "unreadable" and skip.kept_previous
        assert failed.removed == [] and len(store) == before
        assert "vpn.md" in _search_paths(store, "MFA token VPN")

        # a single file inside an ingested folder keeps the folder as its root
        (root / "email" / "new.md").write_text("# Mailbox full\n\nArchive old mail.\n")
        single = store.ingest([root / "email" / "new.md"])
        assert single.added == ["email/new.md"] and single.removed == []


def test_empty_knowledge_base_and_a_busy_index(tmp_path):
    with KnowledgeStore(tmp_path / "kb") as store:
        results = HybridRetriever(store).search("outlook password", k=5)
        assert results == [] and results.latency_ms >= 0
        with pytest.raises(KnowledgeStoreBusy, match="in use by another process"):
            KnowledgeStore(tmp_path / "kb")


def test_unreachable_qdrant_server(tmp_path):
    with pytest.raises(KnowledgeUnavailable, match="127.0.0.1:9"):
        KnowledgeStore(tmp_path / "kb", qdrant_url="http://127.0.0.1:9")


@pytest.mark.models
def test_kb_cli_ingest_search_eval(tmp_path, monkeypatch):
    root = tmp_path / "runbooks"
    root.mkdir()
    (root / "outlook.md").write_text(RUNBOOK)
    (root / "vpn.md").write_text("# VPN will not connect\n\n" + "Reinstall the VPN client. " * 30)
    qrels = tmp_path / "qrels.tsv"
    qrels.write_text(
        "qid\trow\tquery\tarticle_path\tgrade\n"
        "q1\t1\tvpn does not connect\tvpn.md\t2\n"
        "q2\t2\toutlook asks for password\toutlook.md\t2\n"
    )
    monkeypatch.setenv("VOICE_AGENT_DATA_DIR", str(tmp_path / "var"))
    runner = CliRunner()

    result = runner.invoke(kb_app, ["ingest", str(root), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["added"] == 2

    result = runner.invoke(kb_app, ["search", "my vpn is broken", "--k", "1", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["hits"][0]["article_path"] == "vpn.md" and out["hits"][0]["best_chunk"]["text"]

    result = runner.invoke(kb_app, ["eval", "--qrels", str(qrels), "--corpus", str(root), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["metrics"]["recall@1"] == 1.0 and report["ingest"]["added"] == 2
    assert (tmp_path / "var" / "kb" / "eval").is_dir()  # its own index, not the product's


# ---------------------------------------------------------------------------------------------
# The real corpus: ../shared/data/kb (Microsoft support articles), judged dev queries

needs_corpus = pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/data/kb not present")


@pytest.fixture(scope="module")
def corpus_store(tmp_path_factory):
    kb_dir = tmp_path_factory.mktemp("kb")
    store = KnowledgeStore(kb_dir)
    report = store.ingest([CORPUS])
    yield store, report
    store.close()


@needs_corpus
@pytest.mark.timeout(1500)  # embedding ~1250 chunks takes 2-5 minutes on 2 shared cores
def test_corpus_ingest(corpus_store):
    store, report = corpus_store
    markdown = sorted(p.relative_to(CORPUS).as_posix() for p in CORPUS.rglob("*.md"))
    assert sorted(report.added) == markdown
    assert {s.reason for s in report.skipped} == {"unsupported"}  # .tsv, .json, LICENSE
    assert store.article_count() == len(markdown)
    assert len(store) >= len(markdown)
    again = store.ingest([CORPUS])
    assert len(again.unchanged) == len(markdown) and again.chunks_embedded == 0


@needs_corpus
@pytest.mark.timeout(1500)
def test_dev_retrieval_quality_and_latency(corpus_store):
    store, _ = corpus_store
    qrels = load_qrels(DEV_QRELS)
    assert len(qrels) == 50
    hybrid = evaluate(HybridRetriever(store), qrels).metrics
    plain = evaluate(HybridRetriever(store, terms=CallerTerms.none()), qrels).metrics
    bm25 = evaluate(HybridRetriever(store, mode="bm25", terms=CallerTerms.none()), qrels).metrics
    dense = evaluate(HybridRetriever(store, mode="dense", terms=CallerTerms.none()), qrels).metrics
    # measured (hybrid with the caller-words lexicon): R@1 0.64, R@3 0.80, R@5 0.82, R@10 0.90,
    # MRR 0.724, nDCG 0.751
    assert hybrid["recall@1"] >= 0.58
    assert hybrid["recall@5"] >= 0.76
    assert hybrid["recall@10"] >= 0.84
    assert hybrid["mrr@10"] >= 0.66
    assert hybrid["ndcg@10"] >= 0.70
    # the lexicon is worth it: measured without it R@1 0.52, nDCG 0.657
    assert hybrid["ndcg@10"] >= plain["ndcg@10"] + 0.05
    assert hybrid["recall@1"] > plain["recall@1"]
    # fusion is worth it: measured nDCG@10 bm25 0.50, dense 0.53, fused 0.657
    assert plain["ndcg@10"] > max(bm25["ndcg@10"], dense["ndcg@10"]) + 0.03
    # (its latency is reported by `voice-agent kb eval`, not asserted: on a shared 2-core CPU a
    # p50 of ~20 ms read 109 ms while other work ran)
    assert hybrid["latency_ms_p50"] > 0


@needs_corpus
def test_write_run_for_test_queries(corpus_store, tmp_path):
    store, _ = corpus_store
    out = tmp_path / "run.tsv"
    rows = write_run(HybridRetriever(store), TEST_QUERIES, out)
    with open(out, newline="") as f:
        table = list(csv.DictReader(f, delimiter="\t"))
    assert rows == len(table) == 100 * 10
    assert list(table[0]) == ["qid", "rank", "article_path", "score"]
    assert table[0]["rank"] == "1" and (CORPUS / table[0]["article_path"]).is_file()
