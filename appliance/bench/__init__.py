"""``avatar-kiosk bench``: per-stage latencies of whole turns on this machine.

N turns, each fed as the microphone through the real loop, with the persona's fact sheet: English
questions spoken by piper, Russian visitors from recorded human speech (``@name``: Debian's
asterisk-core-sounds-ru-wav) and Russian questions about the sheet spoken by the kiosk's own Russian
voice. The microphone runs in virtual time (see
:class:`~appliance.audio.mic.WavFileMic`), so the end-of-speech delay is counted in audio time and
every compute stage on the wall clock; time-to-first-audio = end-of-speech delay + wall time from
the endpointer's decision to the first reply audio handed to the speaker. The overhead ratio
compares that with the sum of the stage times on the critical path (end-of-speech, STT, LLM first
sentence, TTS first chunk): 1.0 means the pipeline adds nothing between stages.

``--face``, ``--voice``, ``--wer``, ``--lipsync``, ``--safety`` and ``--soak`` hand over to
:mod:`.face`, :mod:`.voice`, :mod:`.wer`, :mod:`.lipsync`, :mod:`.safety` and :mod:`.soak`; ``--production`` to
:mod:`.production` (production engines, random weights, built by :mod:`.models`). This package is the
measuring tools only: the runtime never imports it (only the CLI does).
"""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
from pathlib import Path

import numpy as np

QUESTIONS = [
    ("en", "What is your name?"),
    ("ru", "@hello"),
    ("en", "When is the museum open?"),
    ("ru", "Сколько стоит билет?"),
    ("en", "Which planet is the biggest?"),
    ("ru", "@one-moment-please"),
    ("en", "Where is the cafe?"),
    ("ru", "Где находится кафе?"),
]
# Recorded human Russian: asterisk-core-sounds-ru-wav (CC-BY-3.0, 8 kHz), installed by the set-up;
# what the prompts say stands in for them where they are missing.
RU_PROMPTS = Path("/usr/share/asterisk/sounds/ru_RU_f_IvrvoiceRU")
RU_FALLBACK = {"hello": "Здравствуйте!", "one-moment-please": "Секундочку, пожалуйста."}
TARGETS = {"ttfa_s": 2.0, "overhead_ratio": 1.05}  # each language's p50
FIELDS = ("eos_s", "stt_s", "llm_head_start_s", "llm_first_token_s", "llm_first_sentence_s", "tts_first_chunk_s",
          "ttfa_s")


def _hook(module: str, settings, args) -> int:
    """Hand over to another benchmark module (imported only when asked for: they load torch, ONNX…)."""
    return int(importlib.import_module(module).run(settings, args) or 0)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def run_turns(settings, n: int, *, engines=None, persona=None, show=None) -> list:
    """Run ``n`` spoken turns through the real loop; returns their TurnMetrics."""
    from ..app.commands import current_knowledge, current_persona
    from ..audio.mic import WavFileMic
    from ..audio.speaker import RecordingSpeaker
    from ..conversation.conversation import Conversation
    from ..conversation.storage import TurnStore
    from ..engines.factory import load as load_engines

    persona = persona or current_persona(settings)
    engines = engines or load_engines(settings)
    knowledge = current_knowledge(settings)
    store = TurnStore(settings.paths.db_path, settings.config.privacy)
    out = []

    async def one(samples: np.ndarray) -> tuple[list, list]:
        speaker = RecordingSpeaker(settings.config.audio.output_rate)
        mic = WavFileMic(samples=samples, frame_ms=settings.config.audio.frame_ms)
        conv = Conversation(settings, persona, engines, mic, speaker, store=store, knowledge=knowledge)
        await conv.run()
        return list(conv.metrics), list(conv.events)

    try:
        for i in range(n):
            samples = question_audio(QUESTIONS[i % len(QUESTIONS)], engines.tts)
            metrics, events = asyncio.run(one(samples))
            if show:
                show(events)
            out += [m for m in metrics if m.outcome == "replied"]
    finally:
        store.close()
    return out


def print_turn(events: list) -> None:
    """What the visitor said, the reply's first sentence and its time to first audio."""
    from ..messages import SentenceReady, Transcribed, TurnDone

    heard = next((e for e in events if isinstance(e, Transcribed)), None)
    said = next((e.text for e in events if isinstance(e, SentenceReady)), "")
    done = next((e for e in events if isinstance(e, TurnDone)), None)
    if heard is not None and done is not None:
        print(f"  [{heard.language}] {heard.text} -> {said} ({done.metrics.ttfa_s * 1000:.0f} ms)")


def question_audio(question: tuple[str, str], tts) -> np.ndarray:
    """16 kHz int16 speech for a bench question (synthesized, or a recorded Russian prompt)."""
    from ..audio.resample import resample
    from ..audio.wav import read_mono_16k, to_int16

    lang, text = question
    if text.startswith("@"):
        wav = RU_PROMPTS / f"{text[1:]}.wav"
        if wav.is_file():
            return read_mono_16k(wav)
        text = RU_FALLBACK[text[1:]]
    audio = np.concatenate(list(tts.synthesize(text, lang)))
    return to_int16(resample(audio, tts.sample_rate, 16000))


def summarize(metrics: list) -> dict:
    res: dict = {"turns": len(metrics)}
    for f in FIELDS:
        # LLM stages only over turns the LLM answered (a Russian turn gets the fixed reply).
        pool = [m for m in metrics if m.llm_first_sentence_s > 0] if f.startswith("llm") else metrics
        vals = [getattr(m, f) for m in pool]
        res[f] = {"p50": percentile(vals, 50), "p95": percentile(vals, 95), "n": len(vals)}
    ratios = [m.ttfa_s / m.critical_path_s for m in metrics if m.critical_path_s > 0]
    res["overhead_ratio"] = {"p50": percentile(ratios, 50), "p95": percentile(ratios, 95)}
    res["by_language"] = {}
    for lang in sorted({m.language for m in metrics}):
        mine = [m for m in metrics if m.language == lang]
        ttfa = [m.ttfa_s for m in mine]
        ratio = [m.ttfa_s / m.critical_path_s for m in mine if m.critical_path_s > 0]
        res["by_language"][lang] = {"ttfa_p50": percentile(ttfa, 50), "ttfa_p95": percentile(ttfa, 95),
                                    "overhead_p50": percentile(ratio, 50), "turns": len(mine)}
    res["targets"] = {"ttfa_s_p50": TARGETS["ttfa_s"], "overhead_ratio_p50": TARGETS["overhead_ratio"]}
    langs = res["by_language"].values()
    res["met"] = {"ttfa": bool(langs) and all(v["ttfa_p50"] <= TARGETS["ttfa_s"] for v in langs),
                  "overhead": bool(langs) and all(v["overhead_p50"] <= TARGETS["overhead_ratio"] for v in langs)}
    return res


def main(settings, args) -> int:
    if getattr(args, "production", False):
        return _hook("appliance.bench.production", settings, args)
    if getattr(args, "wer", False):
        return _hook("appliance.bench.wer", settings, args)
    if getattr(args, "lipsync", False):
        return _hook("appliance.bench.lipsync", settings, args)
    if getattr(args, "safety", False):
        return _hook("appliance.bench.safety", settings, args)
    if getattr(args, "soak", None):
        return _hook("appliance.bench.soak", settings, args)
    rc = 0
    if getattr(args, "face", False):
        rc |= _hook("appliance.bench.face", settings, args)
    if getattr(args, "voice", False):
        rc |= _hook("appliance.bench.voice", settings, args)
    if getattr(args, "face", False) or getattr(args, "voice", False):
        return rc
    settings.paths.ensure()
    metrics = run_turns(settings, args.turns, show=print_turn)
    res = summarize(metrics)
    labels = {"eos_s": "end-of-speech detection", "stt_s": "STT", "llm_head_start_s": "LLM head start (overlap)",
              "llm_first_token_s": "LLM first token",
              "llm_first_sentence_s": "LLM first sentence", "tts_first_chunk_s": "TTS first chunk",
              "ttfa_s": "time to first audio"}
    print(f"{res['turns']} turns answered (of {args.turns})")
    print(f"{'stage':28s} {'p50 ms':>8s} {'p95 ms':>8s} {'turns':>6s}")
    for f in FIELDS:
        print(f"{labels[f]:28s} {res[f]['p50'] * 1000:8.0f} {res[f]['p95'] * 1000:8.0f} {res[f]['n']:6d}")
    o = res["overhead_ratio"]
    print(f"{'overhead ratio':28s} {o['p50']:8.2f} {o['p95']:8.2f}")
    for lang, v in res["by_language"].items():
        print(f"{lang}: time to first audio p50 {v['ttfa_p50'] * 1000:.0f} ms, p95 {v['ttfa_p95'] * 1000:.0f} ms, "
              f"overhead ratio p50 {v['overhead_p50']:.2f} ({v['turns']} turns)")
    print(f"targets, in each language: time to first audio p50 <= {TARGETS['ttfa_s']} s: "
          f"{'met' if res['met']['ttfa'] else 'NOT met'}; overhead ratio p50 <= {TARGETS['overhead_ratio']}: "
          f"{'met' if res['met']['overhead'] else 'NOT met'}")
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))
        print(f"figures: {args.json}", file=sys.stderr)
    return 0 if res["turns"] else 1
