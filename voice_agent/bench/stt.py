"""How well the agent hears callers: word error rate of the speech-to-text engine, offline.

``voice-agent bench stt`` decodes a set of caller utterances the way a call does (phone audio,
8 kHz, lifted by the same auto-gain the transports apply, resampled to 16 kHz, decoded with the
configured Whisper settings and vocabulary) and scores the transcripts strict and lenient
(``voice_agent.bench.wer``). Sets:

* ``phone``: the 68 real 8 kHz caller turns in ``../shared/data/speech/telephony`` (silver
  references) - the guard: they are real people on real phone lines, and not about IT;
* ``scenarios``: every line the callers of a scenario file may say, spoken by their espeak-ng
  voices through a phone line (``voice_agent.telephony.caller_voice``);
* ``tickets``: ticket numbers ("I N C, 0 4 1 ...") read by the voices of a scenario file's callers
  after "What's the ticket number?", two each, the numbers drawn from a fixed seed;
* ``clean``: the 15 clean clips with gold transcripts.

Each scenario line is decoded after the question the agent asks before it (``context``, as on a
call: ``voice_agent.speech.stt.recognition_prompt``), and a ticket number under the answer grammar
the agent's question sets (``answers``: ``voice_agent.speech.answer_grammar``). Variants
(``--variant "beam=5 vocabulary=off context=off answers=off"``) decode the same audio with other
settings in the same run, so their WER and decode time compare directly (decode time as a ratio
to the first).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from voice_agent.bench.latency import BenchError, percentile
from voice_agent.bench.wer import score
from voice_agent.speech.answer_grammar import Expected

SETS = ("phone", "scenarios", "tickets", "clean")
SPEECH_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "speech"
VARIANT_KEYS = {
    "beam": int,
    "vocabulary": str,
    "context": str,
    "answers": str,
    "noise": float,
    "model": str,
    "window": str,
}
TICKETS_PER_VOICE = 2


@dataclass(frozen=True)
class Utterance:
    set: str
    source: str
    reference: str
    samples: np.ndarray  # int16 as the line delivers it
    rate: int  # 8000 for phone audio, 16000 for the clean clips
    answers: str | None = None  # what the agent said just before (the recognition prompt)
    expecting: Expected = Expected.SPEECH  # the form of answer that question asks for


def agent_question(kind: str) -> str | None:
    """What the agent says before a scripted caller's line of this kind (``caller_lines``), in
    the product's own words; None before the opening (the greeting: the vocabulary is used)."""
    from voice_agent.flows import prompts

    return {
        "step": prompts.say_step("Restart the app", 2, 4),
        "ticket_offer": prompts.NO_RUNBOOK,
        "anything_else": prompts.GLAD_IT_WORKED,
        "name": prompts.ASK_NAME_FOR_TICKET,
        "spelling": prompts.ASK_SPELLING,
        "number": "What's the best number to reach you?",
        "confirm": prompts.confirm_problem("VPN won't connect"),
        "ticket_number": prompts.ASK_TICKET_NUMBER,
    }.get(kind)


def expected_answer(kind: str) -> Expected:
    """The answer grammar the agent's question before a line of this kind sets, as on a call
    (``voice_agent.flows.conversation.EXPECTED_ANSWERS``)."""
    return {"ticket_number": Expected.TICKET_NUMBER}.get(kind, Expected.SPEECH)


LEAD_SECS = 0.8  # a call's segment starts with the silence kept before the VAD heard speech
TAIL_SECS = 0.7  # and ends with the VAD's stop delay plus the silence the STT service appends


def as_heard(samples: np.ndarray, rate: int, noise_floor_dbfs: float | None) -> np.ndarray:
    """Audio as the STT service gets it on a call: silence around it (pipecat keeps up to a
    second before the VAD's start and pads the end), resampled to 16 kHz, through the
    transports' input filter (auto-gain, noise floor), as float32."""
    from voice_agent.speech.audio import resample_int16
    from voice_agent.speech.auto_gain import AutoGainFilter

    padded = np.concatenate(
        [
            np.zeros(int(LEAD_SECS * rate), np.int16),
            np.asarray(samples, dtype=np.int16),
            np.zeros(int(TAIL_SECS * rate), np.int16),
        ]
    )
    pcm = resample_int16(padded, rate, 16000)

    async def lift() -> bytes:
        agc = AutoGainFilter(noise_floor_dbfs=noise_floor_dbfs)
        await agc.start(16000)
        data = pcm.astype("<i2").tobytes()
        out = bytearray()
        for i in range(0, len(data), 640):  # 20 ms frames, as a transport delivers them
            out += await agc.filter(data[i : i + 640])
        return bytes(out)

    lifted = np.frombuffer(asyncio.run(lift()), dtype="<i2")
    return lifted.astype(np.float32) / 32768.0


def _references(speech_dir: Path) -> dict[str, str]:
    table = speech_dir / "transcripts.tsv"
    if not table.is_file():
        raise BenchError(f"no transcripts: {table} does not exist")
    out = {}
    for line in table.read_text(encoding="utf-8").splitlines():
        path, _, text = line.partition("\t")
        if path and text:
            out[path] = text
    return out


def load_set(name: str, *, speech_dir: Path = SPEECH_DIR, scenarios: Path | None = None):
    """The utterances of one set, with their references."""
    from voice_agent.speech.audio import decode_audio_file

    if name in ("scenarios", "tickets"):
        from voice_agent.bench.scenarios import DEFAULT_SCENARIOS
        from voice_agent.telephony.caller_voice import CallerVoice, CallerVoiceError
        from voice_agent.telephony.scripted_caller import (
            ScenarioError,
            caller_lines,
            load_scenarios,
        )

        try:
            found = load_scenarios(scenarios or DEFAULT_SCENARIOS)
        except ScenarioError as e:
            raise BenchError(str(e)) from e
        out = []
        rng = np.random.default_rng(2026)
        for scenario in found:
            try:
                voice = CallerVoice(scenario.voice)
                if name == "tickets":
                    lines = [("ticket_number", _ticket_line(rng)) for _ in range(TICKETS_PER_VOICE)]
                else:
                    lines = caller_lines(scenario.caller)
                for i, (kind, line) in enumerate(lines):
                    out.append(
                        Utterance(
                            name,
                            f"{scenario.id}.{i}.{kind}",
                            line,
                            voice.say(line),
                            8000,
                            agent_question(kind),
                            expected_answer(kind),
                        )
                    )
            except CallerVoiceError as e:
                raise BenchError(f"scenario {scenario.id}: {e}") from e
        return out
    if name not in ("phone", "clean"):
        raise BenchError(f"unknown set {name!r}: choose from {', '.join(SETS)}")
    references = _references(speech_dir)
    folder = "telephony" if name == "phone" else "clean"
    out = []
    for key, text in sorted(references.items()):
        if not key.startswith(folder + "/"):
            continue
        rate = 8000 if name == "phone" else 16000
        samples = decode_audio_file(speech_dir / key, rate).samples
        out.append(Utterance(name, key, text, samples, rate))
    if not out:
        raise BenchError(f"no {name} utterances under {speech_dir}")
    return out


def _ticket_line(rng: np.random.Generator) -> str:
    """A ticket number as a caller reads it: "I N C, 0 0 4 1 9 2 7." """
    digits = " ".join(str(d) for d in rng.integers(0, 10, 7))
    return f"I N C, {digits}."


def parse_variant(text: str) -> dict[str, Any]:
    """``"beam=5 vocabulary=off"`` -> ``{"beam": 5, "vocabulary": "off"}``."""
    out: dict[str, Any] = {}
    for part in text.replace(",", " ").split():
        key, sep, value = part.partition("=")
        if not sep or key not in VARIANT_KEYS:
            raise BenchError(
                f"variant {text!r}: expected key=value with keys {', '.join(VARIANT_KEYS)}"
            )
        try:
            out[key] = VARIANT_KEYS[key](value)
        except ValueError as e:
            raise BenchError(
                f"variant {text!r}: {key} must be a {VARIANT_KEYS[key].__name__}"
            ) from e
    for key in ("vocabulary", "context", "answers"):
        if out.get(key, "on") not in ("on", "off"):
            raise BenchError(f"variant {text!r}: {key} is on or off")
    if "window" in out:
        out["window"] = _window_padding(text, out["window"])
    return out


def _window_padding(variant: str, value: str) -> float | None:
    """``window=full`` -> None (the whole 30 s window); ``window=1.5`` -> 1.5 s after the audio."""
    if value == "full":
        return None
    try:
        secs = float(value)
    except ValueError:
        secs = -1.0
    if secs < 0:
        raise BenchError(f"variant {variant!r}: window is full or seconds after the audio (>= 0)")
    return secs


def decode_all(
    engine: Any,
    utterances: list[Utterance],
    *,
    context: bool,
    noise_floor_dbfs: float | None,
    answers: bool = True,
) -> list[dict]:
    """Each utterance decoded as a call would: through the transports' input filter, after the
    agent's question when ``context`` (``voice_agent.speech.stt.recognition_prompt``), else with the
    vocabulary alone; under the question's answer grammar when ``answers``."""
    rows = []
    for u in utterances:
        audio = as_heard(u.samples, u.rate, noise_floor_dbfs)
        started = time.perf_counter()
        result = engine.transcribe(
            audio,
            prompt=u.answers if context and u.answers else None,
            expecting=u.expecting if answers else Expected.SPEECH,
        )
        rows.append(
            {
                "set": u.set,
                "source": u.source,
                "reference": u.reference,
                "transcript": result.text,
                "decode_secs": round(time.perf_counter() - started, 3),
                "audio_secs": round(len(audio) / 16000, 2),
                "avg_logprob": result.avg_logprob,
                "no_speech_prob": result.no_speech_prob,
                "shaped": result.shaped,
            }
        )
    return rows


def run_stt_bench(
    settings: Any,
    sets: list[str],
    variants: list[str],
    *,
    scenarios: Path | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    from voice_agent.engines import open_knowledge, stt_vocabulary
    from voice_agent.models.store import ModelNotReadyError, resolve
    from voice_agent.speech.stt import WhisperEngine

    parsed = [parse_variant(v) for v in (variants or [""])]
    utterances: list[Utterance] = []
    for name in sets:
        progress(f"preparing the {name} set...")
        utterances += load_set(name, scenarios=scenarios)
    vocabulary = stt_vocabulary(settings, open_knowledge(settings))
    engines: dict[str, Any] = {}
    out = []
    for variant, text in zip(parsed, variants or ["default"], strict=True):
        model = variant.get("model", settings.stt_model)
        if model not in engines:
            try:
                path = resolve(model, "stt", settings.models_dir)
            except ModelNotReadyError as e:
                raise BenchError(str(e)) from e
            engines[model] = WhisperEngine(
                path,
                device=settings.stt_device,
                compute_type=settings.stt_compute_type,
                cpu_threads=settings.stt_cpu_threads,
                language=settings.stt_language,
            )
        engine = engines[model]
        engine.beam_size = variant.get("beam", settings.stt_beam_size)
        engine.window_padding_secs = variant.get("window", settings.stt_window_padding_secs)
        # noise=0 (or any value >= 0) turns the noise floor off; noise=-60 sets it
        noise = variant.get("noise", settings.audio_noise_floor_dbfs)
        noise = noise if noise is not None and noise < 0 else None
        engine.vocabulary = vocabulary if variant.get("vocabulary", "on") == "on" else ""
        progress(f"decoding {len(utterances)} utterances ({text or 'default'})...")
        context = variant.get("context", "on") == "on"
        answers = variant.get("answers", "on") == "on"
        rows = decode_all(
            engine, utterances, context=context, noise_floor_dbfs=noise, answers=answers
        )
        per_set = {}
        for name in sets:
            these = [r for r in rows if r["set"] == name]
            wer = score([r["reference"] for r in these], [r["transcript"] for r in these])
            per_set[name] = {
                "wer": wer.as_dict(),
                "decode_secs_p50": percentile([r["decode_secs"] for r in these], 50),
                "decode_secs_total": round(sum(r["decode_secs"] for r in these), 2),
            }
        out.append(
            {
                "variant": text or "default",
                "model": model,
                "beam": engine.beam_size,
                "window_padding_secs": engine.window_padding_secs,
                "vocabulary": bool(engine.vocabulary),
                "context": context,
                "answers": answers,
                "noise_floor_dbfs": noise,
                "sets": per_set,
                "utterances": rows,
            }
        )
    base = out[0]
    for result in out:
        for name in sets:
            total = base["sets"][name]["decode_secs_total"]
            result["sets"][name]["decode_time_ratio"] = (
                round(result["sets"][name]["decode_secs_total"] / total, 2) if total else None
            )
    return {"vocabulary": vocabulary, "variants": out, "utterances": len(utterances)}


def summary_lines(report: dict[str, Any]) -> list[str]:
    lines = []
    for result in report["variants"]:
        for name, s in result["sets"].items():
            lines.append(
                f"{result['variant']:<28} {name:<10} WER strict {s['wer']['strict']:6.1%}  "
                f"lenient {s['wer']['lenient']:6.1%}  ({s['wer']['references']} utterances, "
                f"{s['wer']['reference_words']} words)  decode p50 {s['decode_secs_p50']:.2f} s, "
                f"time x{s['decode_time_ratio']}"
            )
    return lines
