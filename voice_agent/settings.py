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
import socket
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIG_ENV = "VOICE_AGENT_CONFIG"
RedactKind = Literal["email", "phone", "card", "password"]
REDACT_KINDS: tuple[RedactKind, ...] = ("email", "phone", "card", "password")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VOICE_AGENT_", extra="forbid")

    # Server
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "INFO"
    instance_name: str | None = Field(
        default=None,
        max_length=128,
        description=(
            "this server's name in the call records, unique among servers sharing a database: "
            "at start-up the calls it left in progress (killed, crashed) are closed as "
            "interrupted, other instances' calls are left alone. Default: hostname:port, stable "
            "across restarts; set it where the hostname is not (containers recreated)"
        ),
    )

    drain_timeout_secs: float = Field(
        default=300.0,
        ge=0,
        description=(
            "on SIGTERM the server stops taking calls (/readyz answers 503) and waits this long "
            "for the calls in progress to end; those still running then hear that the line is "
            "closing, and the server exits. A second SIGTERM or Ctrl-C stops at once. Give the "
            "service manager more (systemd TimeoutStopSec, Kubernetes "
            "terminationGracePeriodSeconds)"
        ),
    )

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
    stt_beam_size: int = Field(
        default=5,
        description="beam search width (5: 3-4 WER points better on phone speech than greedy)",
    )
    stt_window_padding_secs: float | None = Field(
        default=10.0,
        description=(
            "decode over the caller's audio and this many seconds after it, not Whisper's whole "
            "30 s window (10.0: under half the decode time on a CPU, no worse WER on the shared "
            "phone turns and scripted lines, answers 0.5-1 s sooner); a reading that heard "
            "nothing is decoded again over the whole window; null: always the whole window. "
            "A fast transcript may end the turn inside a caller's pause (JFK's, after 'my fellow "
            "Americans.'): a caller who goes on before the answer can be heard keeps their turn, "
            "and the answer to its first part is cancelled 0.3 s into their speech"
        ),
    )
    stt_vocabulary: bool = Field(
        default=True,
        description=(
            "tell Whisper the words this deployment expects (runbook titles and tags, the "
            "taxonomy, stt_vocabulary_terms): product names and acronyms heard over the phone"
        ),
    )
    stt_vocabulary_terms: list[str] = Field(
        default_factory=list, description='more terms first, e.g. ["Workday", "Citrix", "SAP"]'
    )
    stt_answer_grammars: bool = Field(
        default=True,
        description=(
            "hear a ticket number or a spelled name, when the agent has asked for one, under a "
            "grammar of that form first (voice_agent.speech.answer_grammar)"
        ),
    )

    llm_backend: Literal["local", "openai"] = "local"
    llm_model: str = "qwen2.5-coder-1.5b"
    llm_context_tokens: int = 2048
    llm_threads: int = 2
    llm_gpu_layers: int = 0
    llm_max_tokens: int = 90
    llm_temperature: float = 0.2
    llm_seed: int = 7
    llm_base_url: str | None = Field(
        default=None,
        description=(
            "OpenAI-compatible endpoint, e.g. http://gpu-box:8080/v1, or several separated by "
            "commas: requests go to each in turn, and one that fails is skipped for 10 s"
        ),
    )
    llm_request_timeout_secs: float = Field(
        default=5.0,
        gt=0,
        description=(
            "how long a model server has to start answering (llm_backend=openai) before the "
            "request is tried on the next one"
        ),
    )
    llm_api_key: str = "not-needed"
    llm_function_calling: bool | None = Field(
        default=None,
        description=(
            "Offer the call flow's functions (open a ticket, transfer, ...) to the model as tools. "
            "Default: on for an OpenAI-compatible server, off for the local CPU model, where the "
            "flow calls them itself and tool schemas would cost ~200 prompt tokens per turn"
        ),
    )

    tts_voice: str = "piper-joe-medium"
    tts_use_cuda: bool = False

    # Turn-taking
    vad_confidence: float = 0.7
    vad_start_secs: float = 0.2
    audio_noise_floor_dbfs: float | None = Field(
        default=-60.0,
        description=(
            "a steady white-noise floor under the caller's audio (dBFS RMS), as it enters any "
            "transport: digital silence on a phone line left short answers unheard by the VAD "
            "and decoded worse by Whisper; null: off"
        ),
    )
    vad_stop_secs: float = 0.2
    smart_turn: bool = True
    turn_max_silence_secs: float = Field(
        default=1.5,
        description=(
            "the silence after which the turn ends when smart-turn judges the caller unfinished, "
            "and the least silence after a transcript that leaves its words open (no full stop, "
            "'?' or '!'), even when smart-turn judged the caller finished"
        ),
    )
    turn_end_at_sentence: bool = Field(
        default=True,
        description=(
            "end the turn after turn_sentence_end_silence_secs when the finalized transcript "
            "ends a sentence, even if smart-turn judged the audio unfinished"
        ),
    )
    turn_sentence_end_silence_secs: float = Field(
        default=1.2,
        description=(
            "the silence after which a transcript that ends a sentence ends the turn; above the "
            "pauses callers make inside an utterance (a second, after 'my fellow Americans,')"
        ),
    )
    turn_min_silence_secs: float = Field(
        default=0.8,
        description=(
            "no turn ends before this much silence, even when smart-turn judged the caller "
            "finished and the transcript is in: a fast decode (a short window, a GPU) must not "
            "answer inside a mid-utterance pause; 0: as soon as both allow"
        ),
    )
    acknowledge_turns: bool = Field(
        default=True,
        description='say "Okay." as soon as the caller has finished, before the answer is ready',
    )
    barge_in_min_speech_secs: float = Field(
        default=1.0,
        description=(
            "while the agent speaks, the caller's speech cuts it off once it has lasted this "
            "long; shorter speech cuts it off only when its words are not a backchannel "
            '("mm-hm", "okay", "yeah"), which are let pass; 0: any speech cuts in at once'
        ),
    )
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
    demo_public: bool = Field(
        default=False,
        description=(
            "anyone who can reach the server may use the browser demo (/); default: only users "
            "signed in to the console. Either way demo calls are rate-limited per client address"
        ),
    )
    demo_calls_per_minute: float = Field(
        default=4.0, gt=0, description="browser demo calls one client address may start a minute"
    )

    # Admission: how many calls at once, and when a call whose audio stopped is ended
    max_concurrent_calls: int = Field(
        default=4,
        ge=1,
        description=(
            "calls this server carries at once; more are refused (Twilio hears 'all lines are "
            "busy'). 4 keeps the 2-core CPU default near its turn budget"
        ),
    )
    answer_hold_secs: float = Field(
        default=6.0,
        gt=0,
        description=(
            "when the caller has heard no answer this long after they stopped speaking (a "
            "stalled recogniser, conversation or model), the agent says it is still there"
        ),
    )
    answer_give_up_secs: float = Field(
        default=20.0,
        gt=0,
        description=(
            "when there is still no answer this long after the caller stopped speaking, the "
            "answer is abandoned and the agent says it is having trouble (the call goes on)"
        ),
    )
    media_timeout_secs: float = Field(
        default=20.0,
        gt=0,
        description=(
            "end a call when no caller audio has arrived for this long (a dead media socket, "
            "a browser offer that never connected)"
        ),
    )
    max_request_bytes: int = Field(
        default=65536, ge=1024, description="largest webhook or WebRTC offer body accepted"
    )

    # Knowledge base
    kb_paths: list[Path] = Field(
        default_factory=lambda: [REPO_ROOT / "voice_agent" / "knowledge" / "starter_kb"],
        description="Folders or files of runbooks/articles the server ingests",
    )
    kb_dir: Path | None = Field(default=None, description="Index location; default data_dir/kb")
    kb_qdrant_url: str | None = Field(
        default=None, description="Qdrant server, e.g. http://qdrant:6333; default: embedded"
    )
    kb_glossary: Path | None = Field(
        default=None,
        description="a TOML of the company's own words for things, added to the packaged "
        "caller-words lexicon of the runbook search (docs/glossary-example.toml)",
    )
    kb_top_k: int = 3

    # Conversation
    company_name: str = "Example Corp"
    record_calls: bool = Field(
        default=False, description="record both sides of every call to data_dir/recordings"
    )
    recording_notice: str = "This call is recorded for quality and training."
    max_history_messages: int = 8

    # PII redaction of what callers say before it is stored (voice_agent/redaction.py)
    redact_pii: bool = True
    redact_kinds: list[RedactKind] = Field(default_factory=lambda: list(REDACT_KINDS))

    # Supervisor console (/console): accounts come from `voice-agent users add NAME --role ...`
    console_secret_key: SecretStr | None = Field(
        default=None,
        description="Signs console session cookies; default: generated once into "
        "data_dir/console_secret.key (0600)",
    )
    console_session_hours: float = Field(default=12.0, gt=0, description="absolute session life")
    console_idle_minutes: float = Field(default=60.0, gt=0, description="idle session timeout")
    console_secure_cookies: Literal["auto", "always", "never"] = Field(
        default="auto",
        description="auto: Secure cookies except over plain http to localhost/loopback",
    )

    # Tickets: the built-in ticket table, mirrored to an external ITSM system when one is set.
    itsm_backend: Literal["none", "servicenow"] = "none"
    servicenow_instance_url: str | None = Field(
        default=None, description="e.g. https://acme.service-now.com"
    )
    servicenow_username: str | None = None
    servicenow_password: SecretStr | None = None
    servicenow_timeout_secs: float = 5.0

    # Triage (category + priority of a call)
    triage_taxonomy: Path | None = Field(
        default=None, description="Taxonomy TOML; default: the packaged one"
    )
    triage_model: Path | None = Field(
        default=None, description="Folder with model.json + model.npz; default: packaged model"
    )
    triage_min_confidence: float = Field(
        default=0.6, description="Below this classifier confidence the LLM (or a rule) decides"
    )
    triage_llm_fallback: bool = False
    triage_llm_timeout_secs: float = 6.0

    @model_validator(mode="after")
    def _answer_deadlines_in_order(self) -> Settings:
        if self.answer_give_up_secs <= self.answer_hold_secs:
            raise ValueError(
                f"answer_give_up_secs ({self.answer_give_up_secs}) must be greater than "
                f"answer_hold_secs ({self.answer_hold_secs})"
            )
        return self

    @property
    def backchannels_let_pass(self) -> bool:
        """Speech over the agent waits for its words (``barge_in_min_speech_secs`` above 0)."""
        return self.barge_in_min_speech_secs > 0

    @property
    def twilio_token(self) -> str | None:
        """The auth token itself: it signs and checks webhooks and media socket upgrades."""
        return self.twilio_auth_token.get_secret_value() if self.twilio_auth_token else None

    @property
    def twilio_configured(self) -> bool:
        return bool(self.twilio_account_sid and self.twilio_auth_token)

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'voice_agent.db'}"

    @property
    def resolved_instance_name(self) -> str:
        """``instance_name``, or ``hostname:port``: the same for every restart of a server."""
        if self.instance_name:
            return self.instance_name
        return f"{socket.gethostname()[: 127 - len(str(self.port))]}:{self.port}"

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
