"""One typed settings object for the whole server, parsed once.

Sources, highest priority first: explicit overrides (CLI flags), environment variables
(``VOICE_AGENT_<FIELD>``, e.g. ``VOICE_AGENT_LLM_MODEL``), a TOML config file
(``--config FILE`` or ``VOICE_AGENT_CONFIG``), then the embedded defaults below.

A model setting is either the name of a model from ``models/manifest.toml`` (assembled by
``voice-agent models fetch``) or a path to the user's own files: a faster-whisper model folder,
a ``.gguf`` file, a Piper ``.onnx`` voice (its ``.onnx.json`` beside it).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIG_ENV = "VOICE_AGENT_CONFIG"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VOICE_AGENT_", extra="forbid")

    # Server
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "INFO"

    # Storage
    data_dir: Path = REPO_ROOT / "var"
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default: SQLite file in data_dir"
    )

    # Models
    models_dir: Path = REPO_ROOT / "models" / "weights"
    stt_model: str = "whisper-base"
    stt_device: Literal["cpu", "cuda", "auto"] = "cpu"
    stt_compute_type: str = "int8"
    stt_cpu_threads: int = 2
    stt_language: str = "en"
    stt_beam_size: int = 1

    llm_backend: Literal["local", "openai"] = "local"
    llm_model: str = "qwen2.5-coder-1.5b"
    llm_context_tokens: int = 2048
    llm_threads: int = 2
    llm_gpu_layers: int = 0
    llm_max_tokens: int = 90
    llm_temperature: float = 0.2
    llm_seed: int = 7
    llm_base_url: str | None = Field(
        default=None, description="OpenAI-compatible endpoint, e.g. http://gpu-box:8080/v1"
    )
    llm_api_key: str = "not-needed"

    tts_voice: str = "piper-joe-medium"
    tts_use_cuda: bool = False

    # Turn-taking
    vad_confidence: float = 0.7
    vad_start_secs: float = 0.2
    vad_stop_secs: float = 0.2
    smart_turn: bool = True
    turn_max_silence_secs: float = 1.5
    user_idle_secs: float = 10.0

    # Telephony (Twilio). Without credentials the media socket still works (calls can be
    # streamed to /twilio/media), but webhooks are refused and calls cannot be transferred.
    public_url: str | None = Field(
        default=None,
        description="URL Twilio reaches this server at (behind a proxy), e.g. https://voice.acme.com",
    )
    twilio_account_sid: str | None = None
    twilio_auth_token: SecretStr | None = None
    twilio_transfer_number: str | None = Field(
        default=None, description="E.164 number of the human helpdesk for transfers"
    )
    twilio_api_base_url: str = "https://api.twilio.com"
    twilio_max_message_bytes: int = 16384

    # Browser demo (WebRTC). Empty: host candidates only, which is what localhost and a LAN need.
    ice_servers: list[str] = Field(default_factory=list, description="e.g. stun:stun.example:3478")

    # Knowledge base
    kb_paths: list[Path] = Field(
        default_factory=lambda: [REPO_ROOT / "voice_agent" / "knowledge" / "starter_kb"],
        description="Folders or files of runbooks/articles the server ingests",
    )
    kb_dir: Path | None = Field(default=None, description="Index location; default data_dir/kb")
    kb_qdrant_url: str | None = Field(
        default=None, description="Qdrant server, e.g. http://qdrant:6333; default: embedded"
    )
    kb_top_k: int = 3

    # Conversation
    company_name: str = "Example Corp"
    max_history_messages: int = 8

    @property
    def twilio_configured(self) -> bool:
        return bool(self.twilio_account_sid and self.twilio_auth_token)

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'voice_agent.db'}"

    @property
    def resolved_kb_dir(self) -> Path:
        return self.kb_dir if self.kb_dir is not None else self.data_dir / "kb"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get(CONFIG_ENV)
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)


class ConfigFileError(ValueError):
    pass


def load_settings(config_file: Path | str | None = None, **overrides: Any) -> Settings:
    """Parse settings once; ``overrides`` with value None are ignored."""
    if config_file is not None:
        path = Path(config_file)
        if not path.is_file():
            raise ConfigFileError(f"config file not found: {path}")
        os.environ[CONFIG_ENV] = str(path)
    else:
        env_file = os.environ.get(CONFIG_ENV)
        if env_file and not Path(env_file).is_file():
            raise ConfigFileError(f"{CONFIG_ENV} points at a missing file: {env_file}")
    return Settings(**{k: v for k, v in overrides.items() if v is not None})
