"""The triage taxonomy: categories and priorities, kept in a TOML file so a company can change it.

The packaged default (``taxonomy.toml`` beside this module) follows the labelling guide the
default model was trained on. A company with its own categories points the ``triage_taxonomy``
setting at its own file and trains a model on its own history (``voice-agent triage train``);
the classifier refuses to run with a taxonomy whose categories it was not trained on.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from voice_agent.errors import ErrorCode, VoiceAgentError

DEFAULT_TAXONOMY = Path(__file__).resolve().parent / "taxonomy.toml"

_TOP_KEYS = {"escalate_priorities", "category", "priority"}
_CATEGORY_KEYS = {"name", "description", "gloss", "assignment_group", "escalate"}
_PRIORITY_KEYS = {"name", "description", "impact", "urgency"}


class TaxonomyError(VoiceAgentError, ValueError):
    """The taxonomy file is missing, not TOML, or breaks a rule; the message names the fix."""

    code = ErrorCode.BAD_TAXONOMY


@dataclass(frozen=True)
class Category:
    name: str
    description: str
    gloss: str  # a few words for the language model's prompt
    assignment_group: str
    # escalate this category: always (True), never (False), or at these priorities
    escalate: bool | frozenset[str] = False


@dataclass(frozen=True)
class Priority:
    name: str
    description: str
    impact: int  # ServiceNow impact, 1 (high) .. 3 (low)
    urgency: int  # ServiceNow urgency, 1 (high) .. 3 (low)


@dataclass(frozen=True)
class Taxonomy:
    categories: tuple[Category, ...]
    priorities: tuple[Priority, ...]
    escalate_priorities: frozenset[str]
    source: Path

    @property
    def category_names(self) -> list[str]:
        return [c.name for c in self.categories]

    @property
    def priority_names(self) -> list[str]:
        return [p.name for p in self.priorities]

    def category(self, name: str) -> Category:
        for c in self.categories:
            if c.name == name:
                return c
        raise KeyError(f"unknown category {name!r}; known: {', '.join(self.category_names)}")

    def priority(self, name: str) -> Priority:
        for p in self.priorities:
            if p.name == name:
                return p
        raise KeyError(f"unknown priority {name!r}; known: {', '.join(self.priority_names)}")

    def should_escalate(self, category: str, priority: str) -> bool:
        """Escalate an escalating priority (P1), or a category marked ``escalate`` (``true``:
        always; a list: at those priorities, e.g. security at P1 and P2)."""
        if priority in self.escalate_priorities:
            return True
        try:
            escalate = self.category(category).escalate
        except KeyError:
            return False
        return priority in escalate if isinstance(escalate, frozenset) else escalate


def load_taxonomy(path: Path | None = None) -> Taxonomy:
    """Read and validate a taxonomy file (None: the packaged default)."""
    source = Path(path) if path is not None else DEFAULT_TAXONOMY
    if not source.is_file():
        raise TaxonomyError(f"taxonomy file not found: {source}")
    try:
        data = tomllib.loads(source.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise TaxonomyError(f"{source}: not valid TOML: {e}") from e
    return parse_taxonomy(data, source)


def parse_taxonomy(data: dict[str, Any], source: Path) -> Taxonomy:
    where = str(source)
    _no_unknown(data, _TOP_KEYS, where)
    raw_categories = data.get("category") or []
    raw_priorities = data.get("priority") or []
    if not isinstance(raw_categories, list) or not raw_categories:
        raise TaxonomyError(f"{where}: no categories; add [[category]] tables")
    if not isinstance(raw_priorities, list) or not raw_priorities:
        raise TaxonomyError(f"{where}: no priorities; add [[priority]] tables")

    categories: list[Category] = []
    for i, raw in enumerate(raw_categories, 1):
        at = f"{where}: category #{i}"
        _no_unknown(raw, _CATEGORY_KEYS, at)
        name = _text(raw, "name", at)
        description = _text(raw, "description", at)
        escalate = raw.get("escalate", False)
        if isinstance(escalate, list) and all(isinstance(p, str) for p in escalate):
            escalate = frozenset(escalate)
        elif not isinstance(escalate, bool):
            raise TaxonomyError(
                f"{at} ({name}): 'escalate' must be true, false or a list of priority names"
            )
        categories.append(
            Category(
                name=name,
                description=description,
                gloss=str(raw.get("gloss") or description),
                assignment_group=_text(raw, "assignment_group", at),
                escalate=escalate,
            )
        )
    _unique([c.name for c in categories], "category", where)

    priorities: list[Priority] = []
    for i, raw in enumerate(raw_priorities, 1):
        at = f"{where}: priority #{i}"
        _no_unknown(raw, _PRIORITY_KEYS, at)
        name = _text(raw, "name", at)
        levels = {}
        for key in ("impact", "urgency"):
            value = raw.get(key)
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 3:
                raise TaxonomyError(f"{at} ({name}): '{key}' must be an integer 1..3")
            levels[key] = value
        priorities.append(Priority(name, _text(raw, "description", at), **levels))
    _unique([p.name for p in priorities], "priority", where)

    escalate = data.get("escalate_priorities", [])
    if not isinstance(escalate, list) or not all(isinstance(p, str) for p in escalate):
        raise TaxonomyError(f"{where}: 'escalate_priorities' must be a list of priority names")
    unknown = sorted(set(escalate) - {p.name for p in priorities})
    if unknown:
        raise TaxonomyError(f"{where}: escalate_priorities names unknown priorities: {unknown}")
    return Taxonomy(tuple(categories), tuple(priorities), frozenset(escalate), source)


def _no_unknown(raw: Any, allowed: set[str], where: str) -> None:
    if not isinstance(raw, dict):
        raise TaxonomyError(f"{where}: expected a table")
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise TaxonomyError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")


def _text(raw: dict[str, Any], key: str, where: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value.strip():
        raise TaxonomyError(f"{where}: '{key}' is required and must be non-empty text")
    return value.strip()


def _unique(names: list[str], what: str, where: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise TaxonomyError(f"{where}: duplicate {what} {name!r}")
        seen.add(name)
