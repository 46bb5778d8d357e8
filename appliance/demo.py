"""The demo persona: assembled at set-up time from data that ships in packages, then run.

The bundle is built in exactly the format installers carry on a USB stick (provisioning/bundle.py),
so the demo exercises the same provisioning path as a real site:

* photo   — ``skimage.data.astronaut()``: NASA's public-domain portrait of Eileen Collins;
* voice   — real recorded Russian speech, a woman's voice, from Debian's
            ``asterisk-core-sounds-ru-wav`` (CC-BY-3.0, IvrvoiceRU);
* persona — ``assets/demo/persona.toml``, written by the project.

Nothing of it is committed to git as a binary.
"""

from __future__ import annotations

import logging
import shutil
import sys
import tempfile
import wave
from pathlib import Path

from .paths import REPO_ROOT, Settings

log = logging.getLogger(__name__)

ASTERISK_RU = Path("/usr/share/asterisk/sounds/ru_RU_f_IvrvoiceRU")
PERSONA_FILE = REPO_ROOT / "assets" / "demo" / "persona.toml"
KNOWLEDGE_FILE = PERSONA_FILE.with_name("knowledge.md")  # the demo persona's fact sheet, written by the project
DEMO_VOICE_SECONDS = 180.0  # comfortably above provisioning's minimum, small enough to provision fast


def _wav_seconds(path: Path) -> float:
    try:
        with wave.open(str(path)) as w:
            return w.getnframes() / float(w.getframerate())
    except (wave.Error, EOFError, OSError):
        return 0.0


def pick_voice_samples(folder: Path = ASTERISK_RU, total_s: float = DEMO_VOICE_SECONDS) -> list[Path]:
    """The longest prompts first (whole sentences, the best material for a voice profile)."""
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{folder} is missing: install Debian's asterisk-core-sounds-ru-wav (bootstrap.sh does)")
    clips = sorted(((_wav_seconds(p), p.name, p) for p in folder.glob("*.wav")), reverse=True)
    chosen, got = [], 0.0
    for secs, _name, path in clips:
        if got >= total_s:
            break
        if secs > 0:
            chosen.append(path)
            got += secs
    return sorted(chosen)


def assemble_bundle(out: Path) -> Path:
    """Build the demo bundle folder at ``out`` (replacing it atomically)."""
    from PIL import Image
    from skimage import data as skdata

    from provisioning import bundle

    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".demo-") as tmp:
        src = Path(tmp) / "src"
        (src / "voice").mkdir(parents=True)
        Image.fromarray(skdata.astronaut()).save(src / "photo.png")
        shutil.copyfile(PERSONA_FILE, src / "persona.toml")
        shutil.copyfile(KNOWLEDGE_FILE, src / "knowledge.md")
        for p in pick_voice_samples():
            shutil.copyfile(p, src / "voice" / p.name)
        built = Path(tmp) / "bundle"
        bundle.build(src, built)
        if out.exists():
            shutil.rmtree(out)
        built.rename(out)
    return out


def prepare(settings: Settings) -> Path:
    """Assemble the demo bundle and, when the kiosk has no profile yet, provision from it."""
    settings.paths.ensure()
    path = assemble_bundle(settings.paths.demo_bundle)
    print(f"demo bundle assembled at {path}")
    if settings.paths.current_profile.exists():
        print(f"active profile: {settings.paths.current_profile.resolve().name} (kept)")
        return path
    from provisioning import commands as prov

    rc = prov.provision_path(settings, path)
    if rc != 0:
        print("demo: provisioning the demo bundle failed (see above)", file=sys.stderr)
    return path


VISITOR_LEAD_S = 5.0  # the visitor lets the kiosk finish its greeting (talking over it is a barge-in)
VISITOR_SCRIPT = (
    ("en", "Hello! What is your name?", 14.0),
    ("en", "What can you tell me about the Moon?", 16.0),
    ("ru", "Здравствуйте!", 10.0),
)
# whisper base cannot follow espeak-ng's Russian, so the Russian visitor is a recorded human prompt
# (Debian's asterisk-core-sounds-ru-wav) when it is installed: "Здравствуйте!"
RU_RECORDED = {"Здравствуйте!": ASTERISK_RU / "hello.wav"}


def make_visitor(settings: Settings, out: Path) -> Path:
    """A visitor who asks a few questions, as a 16 kHz WAV: piper (English) and recorded (Russian)
    speech with pauses long enough for the kiosk to answer."""
    import numpy as np

    from .audio.resample import resample
    from .audio.wav import read_mono_16k, write_wav
    from .engines.tts_piper import PiperEspeakTTS

    tts = PiperEspeakTTS.from_settings(settings)
    parts = [np.zeros(int(VISITOR_LEAD_S * 16000), np.float32)]
    for lang, text, pause in VISITOR_SCRIPT:
        recorded = RU_RECORDED.get(text)
        if recorded is not None and recorded.is_file():
            speech16k = read_mono_16k(recorded).astype(np.float32) / 32768.0
        else:
            speech16k = resample(np.concatenate(list(tts.synthesize(text, lang))).astype(np.float32),
                                 tts.sample_rate, 16000) * 0.8
        parts += [speech16k, np.zeros(int(pause * 16000), np.float32)]
    write_wav(out, np.concatenate(parts), 16000)
    return out


def mix_for_video(visitor16k, lead_s: float, kiosk, rate: int):
    """What a person in front of the kiosk heard: the visitor and the kiosk on one timeline."""
    import numpy as np

    from .audio.resample import resample

    v = resample(visitor16k.astype(np.float32) / 32768.0, 16000, rate)
    v = np.concatenate([np.zeros(int(lead_s * rate), np.float32), v])
    n = max(len(v), len(kiosk))
    out = np.zeros(n, np.float32)
    out[:len(v)] += v * 0.8
    out[:len(kiosk)] += kiosk
    return np.clip(out, -1, 1)


def run_demo(settings: Settings, args) -> int:
    """The kiosk app itself, with a WAV-file visitor for a microphone and a recording speaker;
    prints what was said, and the figures."""
    import asyncio

    from .app.commands import transcript_line
    from .app.kiosk import KioskApp
    from .app.run import devices, has_display
    from .audio.wav import read_mono_16k, write_wav

    headless = not has_display()
    visitor = args.visitor or make_visitor(settings, settings.paths.cache_dir / "demo-visitor.wav")
    mic, speaker = devices(settings, visitor)
    app = KioskApp(settings, mic=mic, speaker=speaker, headless=headless, record=args.record, finish_with_mic=True)

    def mixed() -> Path:
        path = settings.paths.cache_dir / "demo-mixed.wav"
        write_wav(path, mix_for_video(read_mono_16k(visitor), 0.3, speaker.recording(), speaker.rate), speaker.rate)
        return path

    app.record_audio = mixed

    async def main() -> None:
        await app.start()
        print(f"demo: {app.profile.persona.name} ({app.profile.folder}); visitor: {visitor}"
              f"{' (offscreen)' if headless else ''}")
        try:
            await app.wait()
        finally:
            await app.stop()

    asyncio.run(main())
    name = app.profile.persona.name
    for ev in app.events:
        line = transcript_line(ev, name)
        if line:
            print(line)
    out_wav = settings.paths.cache_dir / "demo-kiosk-audio.wav"
    write_wav(out_wav, speaker.recording(), speaker.rate)
    print(f"demo: the face: {app.frame_times.line()}")
    print(f"demo: the kiosk's voice: {out_wav}")
    if app.recorded is not None:
        print(f"demo: recorded {app.recorded}")
    return 0 if app.exit_code in (0, None) else app.exit_code


def main(settings: Settings, args) -> int:
    # The set-up step runs `demo --prepare-only`; a plain `demo` only assembles what is missing.
    if args.prepare_only or not (settings.paths.demo_bundle / "manifest.toml").exists():
        prepare(settings)
    if args.prepare_only:
        return 0
    return run_demo(settings, args)
