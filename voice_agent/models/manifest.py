"""Typed view of ``models/manifest.toml``: which wheels hold each model file, and its checksum."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from voice_agent.settings import REPO_ROOT

MANIFEST_PATH = REPO_ROOT / "models" / "manifest.toml"
ROLES = ("stt", "llm", "tts")
ASSEMBLIES = ("concat", "copy")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_PIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*==[A-Za-z0-9.+!_-]+")


class ManifestError(ValueError):
    """The manifest is malformed; the message names the offending entry."""


@dataclass(frozen=True)
class ModelFile:
    """One file of a model folder, assembled from ``sources`` (paths inside the wheels) in order."""

    target: str
    sources: tuple[str, ...]
    size: int
    sha256: str


@dataclass(frozen=True)
class ModelSpec:
    """One ``[[model]]`` entry of the manifest."""

    name: str
    role: str
    description: str
    packages: tuple[str, ...]
    assembly: str
    license: str
    files: tuple[ModelFile, ...]

    @property
    def folder_name(self) -> str:
        """Name of the model's folder inside the models directory."""
        return self.name

    @property
    def size(self) -> int:
        """Total size in bytes of the assembled files."""
        return sum(f.size for f in self.files)


def load_manifest(path: Path | str | None = None) -> dict[str, ModelSpec]:
    """Parse and validate the manifest (default: the one beside this module), keyed by name."""
    data = _read(path)
    entries = data.get("model", [])
    if not isinstance(entries, list):
        raise ManifestError("'model' must be an array of tables ([[model]])")
    specs: dict[str, ModelSpec] = {}
    for index, entry in enumerate(entries):
        spec = _parse_model(entry, f"model #{index + 1}")
        if spec.name in specs:
            raise ManifestError(f"model '{spec.name}': duplicate name")
        specs[spec.name] = spec
    return specs


def default_model(role: str, path: Path | str | None = None) -> str:
    """Name of the default model for ``role`` (stt, llm, tts, test_llm) from ``[defaults]``."""
    defaults = _read(path).get("defaults", {})
    name = defaults.get(role) if isinstance(defaults, dict) else None
    if not isinstance(name, str) or not name:
        raise ManifestError(f"[defaults] has no model for role '{role}'")
    return name


def _read(path: Path | str | None) -> dict[str, Any]:
    path = Path(path) if path is not None else MANIFEST_PATH
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ManifestError(f"{path}: {exc}") from exc


def _parse_model(entry: Any, where: str) -> ModelSpec:
    if not isinstance(entry, dict):
        raise ManifestError(f"{where}: must be a table")
    name = entry.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise ManifestError(f"{where}: 'name' must be a plain non-empty name, got {name!r}")
    where = f"model '{name}'"

    def text(key: str) -> str:
        value = entry.get(key)
        if not isinstance(value, str) or not value:
            raise ManifestError(f"{where}: '{key}' must be a non-empty string")
        return value

    role, assembly = text("role"), text("assembly")
    if role not in ROLES:
        raise ManifestError(f"{where}: role must be one of {ROLES}, got '{role}'")
    if assembly not in ASSEMBLIES:
        raise ManifestError(f"{where}: assembly must be one of {ASSEMBLIES}, got '{assembly}'")
    packages = entry.get("packages")
    if not isinstance(packages, list) or not packages:
        raise ManifestError(f"{where}: 'packages' must be a non-empty list")
    for pin in packages:
        if not isinstance(pin, str) or not _PIN.fullmatch(pin):
            raise ManifestError(f"{where}: package {pin!r} must be pinned as 'name==version'")
    raw_files = entry.get("files")
    if not isinstance(raw_files, list) or not raw_files:
        raise ManifestError(f"{where}: needs at least one [[model.files]] table")
    files = tuple(_parse_file(f, f"{where}, file #{i + 1}") for i, f in enumerate(raw_files))
    targets = [f.target for f in files]
    if len(set(targets)) != len(targets):
        raise ManifestError(f"{where}: duplicate file targets")
    if assembly == "copy" and any(len(f.sources) != 1 for f in files):
        raise ManifestError(f"{where}: assembly 'copy' needs exactly one source per file")
    needed = {"llm": ".gguf", "tts": ".onnx"}.get(role)
    if needed and sum(t.endswith(needed) for t in targets) != 1:
        raise ManifestError(f"{where}: a {role} model needs exactly one '*{needed}' file")
    return ModelSpec(
        name=name,
        role=role,
        description=text("description"),
        packages=tuple(packages),
        assembly=assembly,
        license=text("license"),
        files=files,
    )


def _parse_file(entry: Any, where: str) -> ModelFile:
    if not isinstance(entry, dict):
        raise ManifestError(f"{where}: must be a table")
    target = entry.get("target")
    if not isinstance(target, str) or not re.fullmatch(r"[^./\\][^/\\]*", target):
        raise ManifestError(f"{where}: 'target' must be a plain file name, got {target!r}")
    where = f"{where} ('{target}')"
    sources = entry.get("sources")
    if (
        not isinstance(sources, list)
        or not sources
        or not all(isinstance(s, str) and s for s in sources)
    ):
        raise ManifestError(f"{where}: 'sources' must be a non-empty list of paths in the wheels")
    size = entry.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ManifestError(f"{where}: 'size' must be a byte count, got {size!r}")
    sha256 = entry.get("sha256")
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
        raise ManifestError(f"{where}: 'sha256' must be 64 lowercase hex digits")
    return ModelFile(target=target, sources=tuple(sources), size=size, sha256=sha256)
