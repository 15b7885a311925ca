"""The package layout the README's table describes: one package, one direction of dependency.

``voice_agent`` is the only Python package; the top-level ``flows/``, ``models/`` and
``telephony/`` folders hold data and set-up notes, so nothing with a generic name lands in
site-packages. Inside ``voice_agent`` each part may import only parts below it in ``LAYERS``
(``migrations`` belongs to ``storage``: Alembic's environment needs the tables it migrates).
"""

from __future__ import annotations

import ast
import tomllib

from tests.conftest import REPO

# lowest first; parts on one line are independent of each other
LAYERS = [
    ["settings", "errors", "spoken_digits", "stats", "clock", "loopback_server"],
    ["cli_options", "data_dir", "request_limits", "redaction", "records", "web"],
    ["models", "storage", "knowledge", "speech", "llm", "metrics"],
    ["triage"],
    ["tickets"],
    ["flows"],
    ["dialogue_acts"],
    ["engines"],
    ["call"],
    ["readiness"],
    ["console"],
    ["telephony"],
    ["server"],
    ["serving"],
    ["bench"],
    ["cli"],
]
SAME_PART = {"migrations": "storage"}


def _part(module: str) -> str:
    """``voice_agent.call.runner`` -> ``call``; ``voice_agent.settings`` -> ``settings``."""
    name = module.split(".")[1]
    return SAME_PART.get(name, name)


def _imports(tree: ast.Module) -> set[str]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("voice_agent.")}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "voice_agent":
                found |= {f"voice_agent.{a.name}" for a in node.names}
            elif node.module.startswith("voice_agent."):
                found.add(node.module)
    return found


def test_each_part_imports_only_parts_below_it():
    rank = {part: i for i, line in enumerate(LAYERS) for part in line}
    package = REPO / "voice_agent"
    upward = []
    for path in sorted(package.rglob("*.py")):
        module = ".".join(path.relative_to(REPO).with_suffix("").parts)
        if len(module.split(".")) < 2 or module == "voice_agent.__init__":
            continue
        here = _part(module)
        assert here in rank, f"{path}: part {here!r} is not in LAYERS (add it where it belongs)"
        for imported in _imports(ast.parse(path.read_text(encoding="utf-8"))):
            there = _part(imported)
            assert there in rank, f"{path} imports {imported}: part {there!r} is not in LAYERS"
            if there != here and rank[there] >= rank[here]:
                upward.append(f"{module} imports {imported} ({here} -> {there})")
    assert not upward, "imports against the layering:\n" + "\n".join(upward)


def test_only_voice_agent_is_installed_and_the_top_level_folders_hold_no_code():
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["tool"]["setuptools"]["packages"]["find"]["include"] == ["voice_agent*"]
    for folder in ("flows", "models", "telephony"):
        assert (REPO / folder).is_dir(), f"{folder}/ is a required top-level folder"
        assert not list((REPO / folder).glob("*.py")), (
            f"{folder}/ holds code; it belongs in voice_agent/"
        )
    assert (REPO / "models" / "manifest.toml").is_file()
    assert (REPO / "flows" / "caller_acts.tsv").is_file()


def test_the_layering_test_catches_an_upward_import():
    tree = ast.parse(
        "from voice_agent.call.runner import run_call\nfrom voice_agent import storage"
    )
    assert {_part(m) for m in _imports(tree)} == {"call", "storage"}
