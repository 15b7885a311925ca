"""What a latency figure was measured on: the machine, the library versions and the models.

Latency numbers mean little without the hardware they came from (two shared CPU cores and an H100
differ by an order of magnitude), so every benchmark report carries this record.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import subprocess
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from voice_agent.settings import Settings

# distribution name -> key in the report
LIBRARIES = {
    "llama_cpp_python": "llama_cpp",
    "ctranslate2": "ctranslate2",
    "faster-whisper": "faster_whisper",
    "piper-tts": "piper",
    "pipecat-ai": "pipecat",
    "onnxruntime": "onnxruntime",
}


def cpu_model() -> str:
    """The CPU's marketing name (``/proc/cpuinfo`` on Linux), or what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Hardware", "Processor") and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def usable_cores() -> int:
    """Cores this process may run on (a container's CPU set), else every core."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def ram_gib() -> float | None:
    try:
        pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None
    return round(pages * page_size / 2**30, 1)


def gpus(timeout_secs: float = 10.0) -> list[dict[str, str]]:
    """NVIDIA GPUs as ``nvidia-smi`` lists them; empty when there is none (or no driver)."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        out = subprocess.run(
            [exe, "--query-gpu=name,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=timeout_secs,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    found = []
    for line in out.splitlines():
        name, _, memory = line.partition(",")
        if name.strip():
            found.append({"name": name.strip(), "memory": memory.strip()})
    return found


def library_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for dist, key in LIBRARIES.items():
        try:
            versions[key] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[key] = None
    return versions


def machine_info() -> dict[str, Any]:
    """The machine the benchmark ran on: CPU, cores, RAM, GPUs, OS and library versions."""
    return {
        "cpu": cpu_model(),
        "cores": usable_cores(),
        "logical_cpus": os.cpu_count(),
        "ram_gib": ram_gib(),
        "gpus": gpus(),
        "os": f"{platform.system()} {platform.release()}",
        "hostname": platform.node(),
        "versions": library_versions(),
    }


def redact_url(url: str) -> str:
    """A database URL safe to print (the password hidden)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not an SQLAlchemy URL: show only its scheme
        return url.split("://", 1)[0] + "://..."


def models_summary(settings: Settings) -> dict[str, Any]:
    """The configured models and where they run (what this process would load)."""
    return {
        "stt_model": settings.stt_model,
        "stt_device": settings.stt_device,
        "stt_compute_type": settings.stt_compute_type,
        "stt_cpu_threads": settings.stt_cpu_threads,
        "llm_backend": settings.llm_backend,
        "llm_model": settings.llm_model,
        "llm_base_url": settings.llm_base_url,
        "llm_threads": settings.llm_threads,
        "llm_gpu_layers": settings.llm_gpu_layers,
        "llm_max_tokens": settings.llm_max_tokens,
        "tts_voice": settings.tts_voice,
        "tts_use_cuda": settings.tts_use_cuda,
        "vad_stop_secs": settings.vad_stop_secs,
        "smart_turn": settings.smart_turn,
    }
