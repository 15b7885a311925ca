"""Train a triage model from a company's own labelled history.

The TSV has columns row, caller_text, category, priority.

Labels are checked against the taxonomy before any work is done, so a typo in a category name
is an error naming the line, not a silently learnt extra class.
"""

from __future__ import annotations

from pathlib import Path

from voice_agent.triage.classifier import Embed, TriageClassifier
from voice_agent.triage.taxonomy import Taxonomy
from voice_agent.triage.tsv import TSVError, read_tsv

LABEL_COLUMNS = ("row", "caller_text", "category", "priority")
MIN_ROWS = 2


def read_labels(path: Path, taxonomy: Taxonomy) -> list[dict[str, str]]:
    rows = read_tsv(path, LABEL_COLUMNS)
    categories, priorities = set(taxonomy.category_names), set(taxonomy.priority_names)
    for number, row in enumerate(rows, start=2):
        if not row["caller_text"]:
            raise TSVError(f"{path}:{number}: empty caller_text")
        if row["category"] not in categories:
            raise TSVError(
                f"{path}:{number}: unknown category {row['category']!r}; "
                f"the taxonomy ({taxonomy.source}) has {sorted(categories)}"
            )
        if row["priority"] not in priorities:
            raise TSVError(
                f"{path}:{number}: unknown priority {row['priority']!r}; "
                f"the taxonomy has {sorted(priorities)}"
            )
    if len(rows) < MIN_ROWS:
        raise TSVError(f"{path}: {len(rows)} labelled row(s); at least {MIN_ROWS} are needed")
    if len({r["category"] for r in rows}) < 2:
        raise TSVError(f"{path}: every row has the same category; a classifier needs two or more")
    return rows


def train_from_labels(
    path: Path,
    taxonomy: Taxonomy,
    out: Path,
    *,
    embed: Embed | None = None,
    c: float = 2.0,
) -> TriageClassifier:
    rows = read_labels(path, taxonomy)
    model = TriageClassifier.train(
        [r["caller_text"] for r in rows],
        [r["category"] for r in rows],
        [r["priority"] for r in rows],
        category_order=taxonomy.category_names,
        priority_order=taxonomy.priority_names,
        embed=embed,
        c=c,
        metadata={"labels": Path(path).name, "taxonomy": taxonomy.source.name},
    )
    model.save(out)
    return model
