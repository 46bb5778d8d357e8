"""``avatar-kiosk ask | say | listen``: the conversation from the command line (technician, demo)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import numpy as np

from ..audio.mic import WavFileMic
from ..audio.speaker import PyAudioSpeaker, RecordingSpeaker
from ..audio.wav import write_wav
from ..conversation.conversation import Conversation, run_conversation
from ..conversation.storage import TurnStore
from ..engines.factory import load as load_engines
from ..knowledge import Knowledge
from ..lang import guess_language
from ..messages import BargeIn, NoReply, SentenceReady, Transcribed, TurnDone
from ..persona import Persona
from ..persona import load as load_persona
from ..profile import Profile

DEMO_PERSONA = Path(__file__).resolve().parents[2] / "assets" / "demo" / "persona.toml"
DEMO_KNOWLEDGE = DEMO_PERSONA.with_name("knowledge.md")


def current_persona(settings) -> Persona:
    """The active profile's persona, else the demo persona (a dev checkout has no profile)."""
    prof = Profile(settings.paths.current_profile).persona_toml
    return load_persona(prof if prof.is_file() else DEMO_PERSONA)


def current_knowledge(settings) -> Knowledge | None:
    """The active profile's fact sheet; the demo persona's when there is no profile."""
    current = Profile(settings.paths.current_profile)
    return Knowledge.load(current.knowledge if current.persona_toml.is_file() else DEMO_KNOWLEDGE)


def ask(settings, args) -> int:
    persona = current_persona(settings)
    engines = load_engines(settings, stt=False)
    speaker = RecordingSpeaker(settings.config.audio.output_rate, settings.config.audio.volume)

    async def main() -> tuple[str, object]:
        store = TurnStore(settings.paths.db_path, settings.config.privacy)
        conv = Conversation(settings, persona, engines, None, speaker, store=store,
                            knowledge=current_knowledge(settings))
        try:
            await conv.prepare()
            return await conv.typed_turn(args.text, args.language)
        finally:
            conv.close()
            store.close()

    reply, metrics = asyncio.run(main())
    print(reply)
    if args.out:
        speaker.drain()
        speaker.save(args.out)
        print(f"reply audio: {args.out} ({len(speaker.recording()) / speaker.rate:.1f} s)", file=sys.stderr)
    return 0 if reply else 1


def say(settings, args) -> int:
    """Speak through the running kiosk (its face speaks too); with --out, or when no kiosk runs,
    synthesize here instead."""
    language = args.language or guess_language(args.text)
    if not args.out:
        from ..daemon import control

        try:
            answer = control.request(settings.paths.control_socket,
                                     {"cmd": "say", "text": args.text, "language": language}, timeout=60)
        except control.DaemonUnavailable as e:
            print(f"avatar-kiosk say: the kiosk is not running ({e}); playing here instead", file=sys.stderr)
        else:
            if answer.get("ok"):
                return 0
            print(f"avatar-kiosk say: {answer.get('error', 'the kiosk refused')}", file=sys.stderr)
            return 1
    engines = load_engines(settings, stt=False, llm=False)
    tts = engines.tts
    audio = np.concatenate([*tts.synthesize(args.text, language), np.zeros(0, np.float32)])
    if args.out:
        write_wav(args.out, audio, tts.sample_rate)
        print(f"{args.out}: {len(audio) / tts.sample_rate:.1f} s", file=sys.stderr)
        return 0
    speaker = PyAudioSpeaker(settings.config.audio.output_rate, settings.config.audio.output_device,
                             settings.config.audio.volume)
    try:
        speaker.start()
    except OSError as e:
        print(f"avatar-kiosk say: no speaker to play on ({e}); use --out FILE.wav", file=sys.stderr)
        return 1
    speaker.write(audio, tts.sample_rate)
    speaker.wait_drained()
    speaker.stop()
    return 0


def transcript_line(ev: object, name: str) -> str | None:
    """One line of what happened in a turn, for a person reading along (``listen``, the demo)."""
    match ev:
        case Transcribed(text=text, language=language):
            return f"  visitor [{language}]: {text}"
        case SentenceReady(text=text):
            return f"  {name}: {text}"
        case NoReply(reason=reason):
            return f"  (no reply: {reason})"
        case BargeIn():
            return "  (the visitor spoke over the kiosk: playback stopped)"
        case TurnDone(metrics=m) if m.outcome == "replied":
            return f"    time to first audio after the visitor stopped: {m.ttfa_s:.2f} s"
    return None


def listen(settings, args) -> int:
    persona = current_persona(settings)
    mic = WavFileMic(args.wav, frame_ms=settings.config.audio.frame_ms, realtime=args.realtime)
    speaker = RecordingSpeaker(settings.config.audio.output_rate, settings.config.audio.volume)

    def show(ev: object) -> None:
        line = transcript_line(ev, persona.name)
        if line:
            print(line)

    asyncio.run(run_conversation(settings, mic, speaker, persona, on_event=show,
                                 knowledge=current_knowledge(settings)))
    if args.out:
        speaker.save(args.out)
        print(f"what the kiosk said: {args.out}", file=sys.stderr)
    return 0
