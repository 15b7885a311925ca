"""Reading runbooks and articles into retrieval chunks.

One entry point, :func:`load_document`, turns a file (Markdown, HTML, PDF or plain text) into a
:class:`Document`: its title, summary, tags, the sha256 of its bytes and its chunks. A file that
cannot be used raises :class:`DocumentError` with a machine-readable ``reason`` (``unsupported``,
``unreadable``, ``binary``, ``too_large``, ``empty``); the ingester reports it and moves on.

Chunks follow the headings: each keeps the article title and its section path
("Outlook keeps asking for password > Steps"); long sections are split at paragraph boundaries
into pieces of about 150-250 words, and tiny sections are merged into the next one. The text that
is indexed (:attr:`Chunk.index_text`) starts with "title. section." so that BM25 and the
embeddings both see the context of a passage.
"""

from __future__ import annotations

import hashlib
import io
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import yaml

MARKDOWN_SUFFIXES = frozenset({".md", ".markdown"})
HTML_SUFFIXES = frozenset({".html", ".htm"})
PDF_SUFFIXES = frozenset({".pdf"})
TEXT_SUFFIXES = frozenset({".txt"})
SUPPORTED_SUFFIXES = MARKDOWN_SUFFIXES | HTML_SUFFIXES | PDF_SUFFIXES | TEXT_SUFFIXES

DEFAULT_MAX_BYTES = 5 * 1024 * 1024
MAX_CHUNK_WORDS = 250  # a longer section is split at paragraph boundaries ...
TARGET_CHUNK_WORDS = 150  # ... into pieces of at least this many words where it can be
TINY_SECTION_WORDS = 40  # a section shorter than this is merged into the next one

SECTION_SEP = " > "


class DocumentError(Exception):
    """A file that cannot be ingested; ``reason`` is a stable code, ``detail`` says why."""

    REASONS = ("unsupported", "unreadable", "binary", "too_large", "empty")

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Chunk:
    """One retrievable passage of an article."""

    ordinal: int
    title: str
    section: str  # heading path, e.g. "Resolution > Method 1"; "" for text before any heading
    text: str  # the passage itself, as shown to a caller or the language model
    tags: str = ""  # the article's tags, comma-separated (front matter), indexed with each chunk

    @property
    def index_text(self) -> str:
        """What BM25 and the embedder see: "title. section. text" (then "Tags: ...")."""
        return index_text(self.title, self.section, self.text, self.tags)

    @property
    def words(self) -> int:
        return len(self.text.split())


def index_text(title: str, section: str, text: str, tags: str = "") -> str:
    head = f"{title}. {section}." if section else f"{title}."
    return f"{head} {text}\nTags: {tags}" if tags else f"{head} {text}"


@dataclass
class Document:
    path: Path
    kind: str  # "markdown" | "html" | "pdf" | "text"
    sha256: str
    size: int
    title: str
    summary: str = ""
    tags: list[str] = field(default_factory=list)
    chunks: list[Chunk] = field(default_factory=list)


@dataclass
class _Section:
    path: list[str]
    paragraphs: list[str]

    @property
    def words(self) -> int:
        return sum(len(p.split()) for p in self.paragraphs)


# ---------------------------------------------------------------------------------------------
# Entry points


def iter_files(root: Path) -> Iterator[Path]:
    """Every file under ``root`` (or ``root`` itself), sorted; hidden files and folders skipped."""
    if root.is_file():
        yield root
        return
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if path.is_file():
            yield path


def read_bytes(path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """The file's bytes after the checks that need no parsing (extension, size, readability)."""
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        shown = suffix or "(none)"
        raise DocumentError("unsupported", f"extension {shown} is not one of .md .html .pdf .txt")
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise DocumentError("too_large", f"{_mb(size)} is over the {_mb(max_bytes)} limit")
        return path.read_bytes()
    except OSError as e:
        raise DocumentError("unreadable", e.strerror or str(e)) from e


def load_document(
    path: Path, *, data: bytes | None = None, max_bytes: int = DEFAULT_MAX_BYTES
) -> Document:
    """Parse and chunk one file; raises :class:`DocumentError` when it cannot be used."""
    path = Path(path)
    if data is None:
        data = read_bytes(path, max_bytes)
    elif len(data) > max_bytes:
        raise DocumentError("too_large", f"{_mb(len(data))} is over the {_mb(max_bytes)} limit")
    suffix = path.suffix.lower()
    digest = hashlib.sha256(data).hexdigest()
    if suffix in PDF_SUFFIXES:
        kind = "pdf"
        title, summary, tags, sections = _parse_pdf(path, data)
    else:
        text = _decode_text(data)
        if suffix in MARKDOWN_SUFFIXES:
            kind = "markdown"
            title, summary, tags, sections = _parse_markdown(text)
        elif suffix in HTML_SUFFIXES:
            kind = "html"
            title, summary, tags, sections = _parse_html(text)
        else:
            kind = "text"
            title, summary, tags, sections = _parse_text(text)
    title = _one_line(title) or _title_from_filename(path)
    chunks = chunk_sections(title, sections, tags=", ".join(tags))
    if not chunks:
        raise DocumentError("empty", "no text left after cleaning")
    return Document(
        path=path,
        kind=kind,
        sha256=digest,
        size=len(data),
        title=title,
        summary=_one_line(summary),
        tags=tags,
        chunks=chunks,
    )


# ---------------------------------------------------------------------------------------------
# Chunking


def chunk_sections(
    title: str,
    sections: list[_Section],
    *,
    max_words: int = MAX_CHUNK_WORDS,
    target_words: int = TARGET_CHUNK_WORDS,
    tiny_words: int = TINY_SECTION_WORDS,
    tags: str = "",
) -> list[Chunk]:
    """Merge tiny sections into the next, split long ones, and number the resulting chunks."""
    sections = [s for s in sections if s.words > 0]
    merged: list[_Section] = []
    carry: _Section | None = None
    for section in sections:
        if carry is not None:
            section = _merge(carry, section)
            carry = None
        if section.words < tiny_words:
            carry = section
        else:
            merged.append(section)
    if carry is not None:  # a tiny last section joins the one before it
        if merged:
            merged[-1] = _merge_tail(merged[-1], carry)
        else:
            merged.append(carry)

    chunks: list[Chunk] = []
    for section in merged:
        label = SECTION_SEP.join(section.path)
        for piece in _split_paragraphs(section.paragraphs, max_words, target_words):
            chunks.append(Chunk(len(chunks), title, label, piece, tags))
    return chunks


def _merge(first: _Section, second: _Section) -> _Section:
    """A tiny section followed by the next: keep the deeper path, inline the other heading."""
    if second.path[: len(first.path)] == first.path:
        # "Resolution" (one line of intro) followed by "Resolution > Method 1"
        paragraphs = first.paragraphs + _with_heading(second, len(first.path))
        return _Section(second.path, paragraphs)
    paragraphs = first.paragraphs + _with_heading(second, 0)
    return _Section(first.path, paragraphs)


def _merge_tail(prev: _Section, tiny: _Section) -> _Section:
    return _Section(prev.path, prev.paragraphs + _with_heading(tiny, 0))


def _with_heading(section: _Section, common: int) -> list[str]:
    extra = section.path[common:]
    if not extra:
        return list(section.paragraphs)
    return [f"{extra[-1]}:", *section.paragraphs]


def _split_paragraphs(paragraphs: list[str], max_words: int, target_words: int) -> list[str]:
    pieces: list[list[str]] = []
    current: list[str] = []
    count = 0
    for para in paragraphs:
        n = len(para.split())
        if n > max_words:  # one huge paragraph: cut it at sentence (or word) boundaries
            if current and count >= target_words:
                pieces.append(current)
            elif current:  # a short lead-in ("Use the following table:") stays with it
                para = " ".join([*current, para])
            current, count = [], 0
            pieces.extend([p] for p in _split_long_paragraph(para, max_words))
            continue
        if current and count + n > max_words:
            pieces.append(current)
            current, count = [], 0
        current.append(para)
        count += n
    if current:
        pieces.append(current)
    # a short remainder joins the piece before it when both fit in a little over max_words
    if len(pieces) > 1:
        last_words = sum(len(p.split()) for p in pieces[-1])
        prev_words = sum(len(p.split()) for p in pieces[-2])
        if last_words < target_words // 3 and prev_words + last_words <= max_words * 1.2:
            pieces[-2].extend(pieces.pop())
    return ["\n\n".join(p) for p in pieces]


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def _split_long_paragraph(para: str, max_words: int) -> list[str]:
    out: list[str] = []
    current: list[str] = []
    for sentence in _SENTENCE_END.split(para):
        words = sentence.split()
        while len(words) > max_words:  # a "sentence" with no full stops (a table, a listing)
            if current:
                out.append(" ".join(current))
                current = []
            out.append(" ".join(words[:max_words]))
            words = words[max_words:]
        if current and len(current) + len(words) > max_words:
            out.append(" ".join(current))
            current = []
        current.extend(words)
    if current:
        out.append(" ".join(current))
    return out


# ---------------------------------------------------------------------------------------------
# Markdown

_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.DOTALL)
_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t]*#*[ \t]*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_HTML_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_DIRECTIVE = re.compile(r"^\s*:::.*$")  # :::image ...:::, :::zone ...:::, :::row:::
_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_REF_LINK = re.compile(r"\[([^\]]+)\]\[[^\]]*\]")
_LINK_DEF = re.compile(r"^\s*\[[^\]]+\]:\s*\S+.*$")
_AUTOLINK = re.compile(r"<(https?://[^>]+)>")
_TAG = re.compile(r"</?[A-Za-z][^>]*>")
_ALERT = re.compile(r"\[!(NOTE|TIP|IMPORTANT|WARNING|CAUTION)\]", re.IGNORECASE)
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$")
_LIST_ITEM = re.compile(r"^([-*+]|\d+[.)])\s")
_EMPHASIS = re.compile(r"(\*\*|__|`)")


def _parse_markdown(text: str) -> tuple[str, str, list[str], list[_Section]]:
    meta: dict = {}
    match = _FRONT_MATTER.match(text)
    if match:
        try:
            loaded = yaml.safe_load(match.group(1))
        except yaml.YAMLError:
            loaded = None
        meta = loaded if isinstance(loaded, dict) else {}
        text = text[match.end() :]
    title = _one_line(_meta_str(meta.get("title")))
    summary = _one_line(_meta_str(meta.get("summary")) or _meta_str(meta.get("description")))
    tags = _meta_tags(meta.get("tags"))

    text = _HTML_COMMENT.sub("", text)
    sections: list[_Section] = []
    stack: list[tuple[int, str]] = []  # (level, heading)
    current = _Section([], [])
    para: list[str] = []
    in_fence = False
    h1_seen = False

    def end_paragraph() -> None:
        if para:
            joined = para[0]
            for line in para[1:]:
                joined += ("\n" if _LIST_ITEM.match(line) or in_fence else " ") + line
            joined = joined.strip()
            if joined:
                current.paragraphs.append(joined)
            para.clear()

    for raw in text.splitlines():
        if _FENCE.match(raw):
            # code is kept as text (it is low value, but error messages live there)
            end_paragraph()
            in_fence = not in_fence
            continue
        if in_fence:
            line = raw.strip()
            if line:
                para.append(line)
            continue
        heading = _HEADING.match(raw)
        if heading:
            end_paragraph()
            level, name = len(heading.group(1)), _clean_inline(heading.group(2))
            if level == 1 and not h1_seen:
                h1_seen = True
                if not title:
                    title = name
                elif name.lower() != title.lower():
                    # the page heading often says more than the front matter title
                    current.paragraphs.append(name + ".")
                continue
            sections.append(current)
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, name))
            current = _Section([h for _, h in stack], [])
            continue
        if _DIRECTIVE.match(raw) or _LINK_DEF.match(raw) or _TABLE_RULE.match(raw):
            end_paragraph()
            continue
        line = _clean_inline(raw)
        if not line:
            end_paragraph()
            continue
        if raw.lstrip().startswith("|"):  # a table row is a paragraph of its own
            end_paragraph()
            para.append(line)
            end_paragraph()
            continue
        para.append(line)
    end_paragraph()
    sections.append(current)
    if summary and sections:
        sections[0].paragraphs.insert(0, summary)
    return title, summary, tags, sections


def _clean_inline(line: str) -> str:
    line = line.strip()
    line = re.sub(r"^>\s?", "", line)  # block quotes (notes, tips)
    line = _ALERT.sub("", line)
    line = _IMAGE.sub("", line)
    line = _LINK.sub(r"\1", line)
    line = _REF_LINK.sub(r"\1", line)
    line = _AUTOLINK.sub("", line)
    line = _TAG.sub(" ", line)
    line = _EMPHASIS.sub("", line)
    if line.startswith("|") or line.endswith("|"):
        line = " ".join(cell.strip() for cell in line.strip("|").split("|") if cell.strip())
    line = line.replace("&nbsp;", " ").replace("&amp;", "&").replace("&lt;", "<")
    line = line.replace("&gt;", ">")
    return re.sub(r"\s+", " ", line).strip()


def _meta_str(value: object) -> str:
    if isinstance(value, str | int | float):
        return str(value).strip()
    return ""


def _meta_tags(value: object) -> list[str]:
    if isinstance(value, str):
        return [t.strip() for t in value.split(",") if t.strip()]
    if isinstance(value, list):
        return [str(t).strip() for t in value if str(t).strip()]
    return []


# ---------------------------------------------------------------------------------------------
# HTML


class _HtmlText(HTMLParser):
    SKIP = frozenset({"script", "style", "nav", "noscript", "template", "svg"})
    HEADINGS = {"h1": 1, "h2": 2, "h3": 3}
    BLOCKS = frozenset(
        {
            "p",
            "div",
            "li",
            "ul",
            "ol",
            "br",
            "tr",
            "table",
            "section",
            "article",
            "pre",
            "blockquote",
            "h4",
            "h5",
            "h6",
            "dt",
            "dd",
            "header",
            "footer",
            "main",
        }
    )

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.skip_depth = 0
        self.title = ""
        self.description = ""
        self.in_title = False
        self.heading: tuple[int, list[str]] | None = None
        self.stack: list[tuple[int, str]] = []
        self.sections: list[_Section] = [_Section([], [])]
        self.para: list[str] = []
        self.h1_as_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP:
            self.skip_depth += 1
            return
        if tag == "title":
            self.in_title = True
        elif tag == "meta":
            a = dict(attrs)
            if (a.get("name") or "").lower() == "description" and a.get("content"):
                self.description = a["content"] or ""
        elif tag in self.HEADINGS and not self.skip_depth:
            self._end_paragraph()
            self.heading = (self.HEADINGS[tag], [])
        elif tag in self.BLOCKS:
            self._end_paragraph()

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP:
            return
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP:
            self.skip_depth = max(0, self.skip_depth - 1)
            return
        if tag == "title":
            self.in_title = False
        elif tag in self.HEADINGS and self.heading is not None:
            level, parts = self.heading
            self.heading = None
            name = re.sub(r"\s+", " ", "".join(parts)).strip()
            if not name:
                return
            if level == 1 and not self.h1_as_title and not self.stack:
                self.h1_as_title = True
                if not self.title:
                    self.title = name
                elif name.lower() != self.title.lower():
                    self.sections[-1].paragraphs.append(name + ".")
                return
            while self.stack and self.stack[-1][0] >= level:
                self.stack.pop()
            self.stack.append((level, name))
            self.sections.append(_Section([h for _, h in self.stack], []))
        elif tag in self.BLOCKS:
            self._end_paragraph()

    def handle_data(self, data: str) -> None:
        if self.skip_depth:
            return
        if self.in_title:
            self.title += data
        elif self.heading is not None:
            self.heading[1].append(data)
        else:
            self.para.append(data)

    def _end_paragraph(self) -> None:
        text = re.sub(r"\s+", " ", "".join(self.para)).strip()
        self.para = []
        if text:
            self.sections[-1].paragraphs.append(text)

    def close(self) -> None:
        super().close()
        self._end_paragraph()


def _parse_html(text: str) -> tuple[str, str, list[str], list[_Section]]:
    parser = _HtmlText()
    parser.feed(text)
    parser.close()
    sections = parser.sections
    if parser.description and sections:
        sections[0].paragraphs.insert(0, parser.description.strip())
    return parser.title.strip(), parser.description, [], sections


# ---------------------------------------------------------------------------------------------
# PDF and plain text


def _parse_pdf(path: Path, data: bytes) -> tuple[str, str, list[str], list[_Section]]:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    if not data.lstrip()[:5].startswith(b"%PDF"):
        raise DocumentError("unreadable", "not a PDF file (no %PDF header)")
    try:
        reader = PdfReader(io.BytesIO(data))
        title = ""
        if reader.metadata and reader.metadata.title:
            title = str(reader.metadata.title)
        sections = []
        for number, page in enumerate(reader.pages, start=1):
            page_text = page.extract_text() or ""
            paragraphs = _text_paragraphs(page_text)
            sections.append(_Section([f"Page {number}"], paragraphs))
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as e:
        raise DocumentError("unreadable", f"PDF could not be parsed: {e}") from e
    return title, "", [], sections


def _parse_text(text: str) -> tuple[str, str, list[str], list[_Section]]:
    return "", "", [], [_Section([], _text_paragraphs(text))]


def _text_paragraphs(text: str) -> list[str]:
    blocks = re.split(r"\n\s*\n", text.replace("\r\n", "\n"))
    return [re.sub(r"\s+", " ", b).strip() for b in blocks if b.strip()]


def _decode_text(data: bytes) -> str:
    head = data[:8192]
    if b"\x00" in head:
        raise DocumentError("binary", "contains NUL bytes")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DocumentError("unreadable", f"not UTF-8 text ({e.reason} at byte {e.start})") from e
    sample = text[:8192]
    controls = sum(1 for c in sample if ord(c) < 32 and c not in "\t\n\r\f")
    if sample and controls / len(sample) > 0.05:
        raise DocumentError("binary", "mostly control characters")
    text = unicodedata.normalize("NFKC", text)  # narrow no-break spaces and the like
    return text.replace("\u200b", "").replace("\u00ad", "")


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text or "").strip()


def _title_from_filename(path: Path) -> str:
    return re.sub(r"[-_]+", " ", path.stem).strip().capitalize() or path.name


def _mb(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"
