"""Voice matching for the embedded default: move the piper voice toward the profile's samples.

Piper ships one stock voice ("joe", a man's voice at ~115 Hz); the kiosk's persona may be a woman
at ~200 Hz. With the WORLD vocoder (pyworld) the synthesized speech is split into pitch (F0),
spectral envelope and aperiodicity; we then

* scale F0 so its median lands on the samples' median (pitch),
* warp the envelope's frequency axis by ``alpha`` (formants / vocal-tract length: the timbre), and
* scale the duration by ``rate`` (speaking rate, applied through piper's length_scale upstream),

and resynthesize. ``alpha`` is not guessed: :func:`fit` tries a small grid on calibration sentences
and keeps the value that maximises the d-vector similarity to the samples (see embedding.py), so
provisioning can report the similarity before and after. The production engine (XTTS) clones the
voice instead and needs none of this.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .embedding import SpeakerEmbedder, band_limit, common_rate, cosine, to_mono_float

FRAME_MS = 5.0
ALPHAS = (1.0, 1.05, 1.1, 1.15, 1.2, 1.25, 1.3)
CALIBRATION = {
    "en": ("Hello! It is lovely to meet you today.", "The Moon is about three hundred thousand kilometres away."),
    "ru": ("Здравствуйте! Рада вас видеть.", "Луна находится далеко от Земли."),
}


def median_f0(samples: np.ndarray, rate: int) -> float:
    """Median fundamental frequency of the voiced frames, in Hz (0 if nothing is voiced)."""
    import pyworld as pw

    x = to_mono_float(samples).astype(np.float64)
    f0, t = pw.dio(x, rate, f0_floor=60.0, f0_ceil=500.0, frame_period=10.0)
    f0 = pw.stonemask(x, f0, t, rate)
    voiced = f0[f0 > 0]
    return float(np.median(voiced)) if len(voiced) else 0.0


@dataclass(frozen=True)
class VoiceProfile:
    """What the embedded TTS needs to sound like the samples; stored as JSON in the profile."""

    target_f0: float            # median F0 of the samples, Hz
    source_f0: float            # median F0 of the stock TTS voice, Hz
    alpha: float = 1.0          # spectral-envelope frequency warp
    samples_rate: int = 16000   # the samples' sample rate (similarity is measured within it)
    similarity_before: float = 0.0
    similarity_after: float = 0.0

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> VoiceProfile:
        return cls(**json.loads(path.read_text(encoding="utf-8")))


def convert(samples: np.ndarray, rate: int, f0_ratio: float, alpha: float) -> np.ndarray:
    """Resynthesize speech with F0 scaled by ``f0_ratio`` and formants warped by ``alpha``."""
    import pyworld as pw

    x = to_mono_float(samples).astype(np.float64)
    if len(x) < rate // 20 or (f0_ratio == 1.0 and alpha == 1.0):
        return to_mono_float(samples)
    f0, t = pw.dio(x, rate, f0_floor=60.0, f0_ceil=500.0, frame_period=FRAME_MS)
    f0 = pw.stonemask(x, f0, t, rate)
    sp = pw.cheaptrick(x, f0, t, rate)
    ap = pw.d4c(x, f0, t, rate)
    if alpha != 1.0:
        bins = np.arange(sp.shape[1], dtype=np.float64)
        src = np.clip(bins / alpha, 0, sp.shape[1] - 1)
        lo = np.floor(src).astype(int)
        hi = np.minimum(lo + 1, sp.shape[1] - 1)
        w = src - lo
        sp = sp[:, lo] * (1 - w) + sp[:, hi] * w  # vectorised per-frame interpolation
        ap = ap[:, lo] * (1 - w) + ap[:, hi] * w
    y = pw.synthesize(f0 * f0_ratio, np.ascontiguousarray(sp), np.ascontiguousarray(ap), rate, FRAME_MS)
    y = y[: len(x)].astype(np.float32)
    peak = float(np.max(np.abs(y))) if len(y) else 0.0
    return y / peak * 0.9 if peak > 0.99 else y


class VoiceMatcher:
    """Applies a :class:`VoiceProfile` to each synthesized sentence."""

    def __init__(self, profile: VoiceProfile) -> None:
        self.profile = profile
        self.ratio = profile.target_f0 / profile.source_f0 if profile.source_f0 and profile.target_f0 else 1.0

    def apply(self, samples: np.ndarray, rate: int) -> np.ndarray:
        return convert(samples, rate, self.ratio, self.profile.alpha)

    def pieces(self, samples: np.ndarray, rate: int) -> Iterator[np.ndarray]:
        """:meth:`apply` in two pieces, cut at the quietest moment between words: the visitor hears
        the first ~0.5–1.2 s while the rest is converted. WORLD takes ~60 ms a second of speech
        here, so a 2.6-s first sentence started ~150 ms late; now it starts ~50 ms late. WORLD works
        frame by frame, and a cut in a pause between words leaves no seam to hear."""
        cut = quiet_cut(samples, rate)
        if cut is None:
            yield self.apply(samples, rate)
            return
        yield self.apply(samples[:cut], rate)
        yield self.apply(samples[cut:], rate)


FIRST_PIECE_S = (0.5, 1.2)  # where the first piece may end
MIN_REST_S = 0.4            # ...leaving at least this much for the second


def quiet_cut(samples: np.ndarray, rate: int) -> int | None:
    """Sample index of the quietest 10-ms frame within ``FIRST_PIECE_S``; None if the clip is too short."""
    lo, hi = int(FIRST_PIECE_S[0] * rate), int(FIRST_PIECE_S[1] * rate)
    hi = min(hi, len(samples) - int(MIN_REST_S * rate))
    hop = max(rate // 100, 1)
    if hi - lo < hop:
        return None
    x = to_mono_float(samples[lo:hi]).astype(np.float64)
    n = len(x) // hop
    energy = (x[: n * hop].reshape(n, hop) ** 2).mean(axis=1)
    return lo + int(np.argmin(energy)) * hop + hop // 2


Synth = Callable[[str], tuple[np.ndarray, int]]


def fit(samples: np.ndarray, samples_rate: int, synth: Synth, embedder: SpeakerEmbedder,
        sentences: Sequence[str] = CALIBRATION["en"], alphas: Sequence[float] = ALPHAS,
        bandwidth_rate: int | None = None) -> VoiceProfile:
    """Choose the warp that makes ``synth``'s voice closest to ``samples`` (by d-vector cosine).

    ``bandwidth_rate``: the recordings' original sample rate when ``samples`` were resampled up
    (8 kHz telephone recordings at 16 kHz carry nothing above 4 kHz; compare within that band)."""
    limit = common_rate(samples_rate, bandwidth_rate or samples_rate)
    target_vec = embedder.embed(band_limit(samples, samples_rate, limit))
    target_f0 = median_f0(samples, samples_rate)
    stock = [synth(s) for s in sentences]
    source_f0 = float(np.median([median_f0(a, r) for a, r in stock]))
    ratio = target_f0 / source_f0 if source_f0 and target_f0 else 1.0

    def score(audios: list[tuple[np.ndarray, int]]) -> float:
        return float(np.mean([cosine(embedder.embed(band_limit(a, r, limit)), target_vec) for a, r in audios]))

    before = score(stock)
    best_alpha, best = 1.0, -1.0
    for alpha in alphas:
        s = score([(convert(a, r, ratio, alpha), r) for a, r in stock])
        if s > best:
            best_alpha, best = alpha, s
    return VoiceProfile(target_f0=target_f0, source_f0=source_f0, alpha=best_alpha, samples_rate=limit,
                        similarity_before=round(before, 4), similarity_after=round(best, 4))
