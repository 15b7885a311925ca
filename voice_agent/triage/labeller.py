"""Turn historical tickets into training rows (row, caller_text, category, priority) by the guide.

Each ticket becomes caller text the way the evaluation text was built (:mod:`tickets`),
machine-generated and non-English tickets are dropped, every row named by an evaluation file is
dropped (so the model never sees an evaluation ticket), and the guide's rules (:mod:`rules`) set
the labels. A ticket no rule recognises is left out rather than guessed: a smaller clean
training set beats a bigger noisy one.
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from voice_agent.errors import ErrorCode, VoiceAgentError
from voice_agent.triage.rules import rule_category, rule_priority
from voice_agent.triage.tickets import caller_text, is_english, is_machine_generated

TRAINING_COLUMNS = ("row", "caller_text", "category", "priority")


class LabellingError(VoiceAgentError, ValueError):
    code = ErrorCode.BAD_TICKETS


@dataclass
class LabelledRow:
    row: int
    caller_text: str
    category: str
    priority: str
    rule: str


@dataclass
class LabelReport:
    rows: list[LabelledRow] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)

    @property
    def categories(self) -> Counter:
        return Counter(r.category for r in self.rows)

    @property
    def priorities(self) -> Counter:
        return Counter(r.priority for r in self.rows)


def evaluation_rows(eval_dir: Path) -> set[int]:
    """Every ticket row named by any TSV in the evaluation folder (its ``row`` column)."""
    rows: set[int] = set()
    for path in sorted(Path(eval_dir).glob("*.tsv")):
        with path.open(encoding="utf-8", newline="") as f:
            for record in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
                value = (record.get("row") or "").strip()
                if value.isdigit():
                    rows.add(int(value))
    return rows


def label_tickets(tickets_csv: Path, exclude_rows: set[int] | None = None) -> LabelReport:
    """Label a GL-style CSV (columns ``Short description``, ``Description``)."""
    path = Path(tickets_csv)
    if not path.is_file():
        raise LabellingError(f"tickets file not found: {path}")
    exclude = exclude_rows or set()
    report = LabelReport()
    with path.open(encoding="utf-8", errors="replace", newline="") as f:
        reader = csv.DictReader(f)
        missing = {"Short description", "Description"} - set(reader.fieldnames or [])
        if missing:
            raise LabellingError(
                f"{path}: missing column(s) {sorted(missing)}; found {reader.fieldnames}"
            )
        for index, record in enumerate(reader):
            short = record.get("Short description") or ""
            description = record.get("Description") or ""
            if index in exclude:
                report.skipped["evaluation_row"] += 1
                continue
            if is_machine_generated(short, description):
                report.skipped["machine_generated"] += 1
                continue
            if not is_english(f"{short} {description}"):
                report.skipped["not_english"] += 1
                continue
            text = caller_text(short, description)
            if not text.strip():
                report.skipped["empty"] += 1
                continue
            matched = rule_category(text)
            if matched is None:
                report.skipped["no_rule"] += 1
                continue
            category, rule = matched
            priority, _ = rule_priority(text, category)
            report.rows.append(LabelledRow(index, text, category, priority, rule))
    if not report.rows:
        raise LabellingError(f"{path}: no ticket could be labelled")
    return report


def write_training_tsv(rows: list[LabelledRow], out: Path) -> None:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    lines = ["\t".join(TRAINING_COLUMNS)]
    for r in rows:
        text = " ".join(r.caller_text.split())  # no tabs or newlines inside a field
        lines.append(f"{r.row}\t{text}\t{r.category}\t{r.priority}")
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
