"""Tab-separated files of caller texts: read them with clear errors for bad input.

Fields never contain tabs or newlines (the labeller collapses whitespace), so a line is split
on tabs; no quoting rules to get wrong.
"""

from __future__ import annotations

from pathlib import Path

from voice_agent.errors import ErrorCode, VoiceAgentError


class TSVError(VoiceAgentError, ValueError):
    code = ErrorCode.BAD_TSV


def read_tsv(path: Path, required: tuple[str, ...]) -> list[dict[str, str]]:
    """Rows as dicts; raises :class:`TSVError` naming the file, line and problem."""
    path = Path(path)
    if not path.is_file():
        raise TSVError(f"{path}: file not found")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise TSVError(f"{path}: not UTF-8 text: {e}") from e
    lines = [line for line in lines if line.strip()]
    if not lines:
        raise TSVError(f"{path}: empty file; expected a header with columns {list(required)}")
    header = [h.strip() for h in lines[0].split("\t")]
    missing = [c for c in required if c not in header]
    if missing:
        raise TSVError(
            f"{path}: missing column(s) {missing}; the header has {header} "
            f"(tab-separated, needs {list(required)})"
        )
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        values = line.split("\t")
        if len(values) < len(header):
            values += [""] * (len(header) - len(values))
        if len(values) > len(header):
            raise TSVError(f"{path}:{number}: {len(values)} fields for {len(header)} columns")
        rows.append(dict(zip(header, (v.strip() for v in values), strict=True)))
    if not rows:
        raise TSVError(f"{path}: no rows after the header")
    return rows
