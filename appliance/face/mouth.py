"""The mouth track: speech audio -> one mouth pose (opening, width) per video frame.

Public API::

    MouthTracker(sample_rate: int, fps: int = 25)
        .add(samples: np.ndarray, start_sample: int) -> None
              # float32 mono speech in [-1, 1]; start_sample = its first sample's position on the
              # speaker's played-samples clock (the same counter the renderer's clock reads)
        .pose_at(t: float) -> MouthPose         # t = speaker-clock seconds; frame = floor(t * fps)
        .pose_at_frame(frame: int) -> MouthPose
        .clear(from_sample: int = 0) -> None    # barge-in: forget speech at/after this sample
        .forget_before(sample: int) -> None     # drop old audio (call now and then)
    mouth_track(samples, sample_rate, fps=25) -> list[MouthPose]   # a whole clip, frame by frame
    shape_of(pose: MouthPose) -> str            # the nearest Rhubarb Lip Sync shape, A–F or X

Stock piper gives no phoneme timings, so the audio drives the shapes (Rhubarb's A–H + X
vocabulary, after Preston Blair, is the guide): loudness opens the jaw (vowels open, plosives
and nasals close), and the spectrum sets the lip width — a bright spectrum (``ee``, ``s``)
spreads the lips, a dark one (``oo``, ``oh``) leaves them narrow, which the animator rounds.

Per frame: a 40 ms window centred on the frame's middle gives RMS level and spectral centroid;
opening = level mapped from -46…-14 dBFS onto 0…1, times a syllable contrast (how far the frame
is below the loudest of its neighbours, so the jaw closes between syllables); then a short
centred smoothing kernel over five frames (two frames of look-ahead: TTS audio exists before it is played) keeps the lips from
fluttering. Silence is closed exactly: a frame whose neighbourhood is all below the gate (-50
dBFS) gets open = width = 0. Everything is a pure function of the stored audio, so poses do
not depend on query order, and frames are indexed by integer sample counts (no drift).
"""

from __future__ import annotations

import bisect
import math

import numpy as np

from ..messages import MouthPose

WINDOW_S = 0.04
GATE_DB = -50.0
FLOOR_DB, CEIL_DB = -46.0, -14.0
KEEP_S = 120  # seconds of past speech kept for lookups
KERNEL = np.array([0.08, 0.2, 0.44, 0.2, 0.08])  # frames k-2 … k+2


class MouthTracker:
    """Per-frame mouth poses for speech placed on the speaker's sample clock."""

    def __init__(self, sample_rate: int, fps: int = 25) -> None:
        self.sample_rate = int(sample_rate)
        self.fps = int(fps)
        self._chunks: dict[int, np.ndarray] = {}   # start sample -> float32 samples
        self._starts: list[int] = []               # sorted keys of _chunks
        self._raw: dict[int, tuple[float, float]] = {}  # frame -> (level dB, width)
        self._win = max(16, round(WINDOW_S * self.sample_rate))
        self._hann = np.hanning(self._win).astype(np.float32)
        freqs = np.fft.rfftfreq(self._win, 1.0 / self.sample_rate)
        self._band = (freqs >= 200) & (freqs <= 6000)
        self._freqs = freqs[self._band]

    # --- frames <-> samples (integers only)
    def frame_start(self, frame: int) -> int:
        return -((-frame * self.sample_rate) // self.fps)

    def frame_of_sample(self, sample: int) -> int:
        return (sample * self.fps) // self.sample_rate

    def _centre(self, frame: int) -> int:
        return ((2 * frame + 1) * self.sample_rate) // (2 * self.fps)

    # --- input
    def add(self, samples: np.ndarray, start_sample: int) -> None:
        """Place speech on the clock. Chunks must not overlap (a chunk at an existing start
        replaces it). Audio more than KEEP_S seconds older than the newest chunk is dropped."""
        x = np.asarray(samples, dtype=np.float32).reshape(-1)
        if x.size == 0:
            return
        start = int(start_sample)
        if start not in self._chunks:
            bisect.insort(self._starts, start)
        self._chunks[start] = x
        # invalidate frames whose window touches the new audio
        half = self._win // 2 + 1
        f0 = self.frame_of_sample(max(0, start - half)) - 1
        f1 = self.frame_of_sample(start + x.size + half) + 1
        for f in range(f0, f1 + 1):
            self._raw.pop(f, None)
        newest = self._starts[-1]
        if self._starts[0] < newest - KEEP_S * self.sample_rate:
            self.forget_before(newest - KEEP_S * self.sample_rate)

    def clear(self, from_sample: int = 0) -> None:
        """Forget speech at or after ``from_sample`` (barge-in); earlier audio is kept."""
        keep = {}
        for s, x in self._chunks.items():
            if s < from_sample:
                keep[s] = x[: max(0, from_sample - s)]
        self._chunks = {s: x for s, x in keep.items() if x.size}
        self._starts = sorted(self._chunks)
        f = self.frame_of_sample(max(0, from_sample - self._win))
        self._raw = {k: v for k, v in self._raw.items() if k < f}

    def forget_before(self, sample: int) -> None:
        self._chunks = {s: x for s, x in self._chunks.items() if s + x.size > sample}
        self._starts = sorted(self._chunks)
        f = self.frame_of_sample(sample) - 4
        self._raw = {k: v for k, v in self._raw.items() if k >= f}

    # --- analysis
    def _window(self, centre: int) -> np.ndarray | None:
        a = centre - self._win // 2
        b = a + self._win
        out = None
        i = bisect.bisect_left(self._starts, b) - 1   # chunks are sorted and disjoint
        while i >= 0:
            s = self._starts[i]
            x = self._chunks[s]
            e = s + x.size
            i -= 1
            if e <= a:
                break
            if out is None:
                out = np.zeros(self._win, np.float32)
            lo, hi = max(a, s), min(b, e)
            out[lo - a:hi - a] += x[lo - s:hi - s]
        return out

    def _features(self, frame: int) -> tuple[float, float]:
        got = self._raw.get(frame)
        if got is not None:
            return got
        w = self._window(self._centre(frame)) if frame >= 0 else None
        if w is None:
            feat = (-120.0, 0.0)
        else:
            rms = float(np.sqrt(np.mean(w * w)))
            db = 20 * math.log10(rms + 1e-9)
            spec = np.abs(np.fft.rfft(w * self._hann))[self._band]
            total = float(spec.sum())
            centroid = float((spec * self._freqs).sum() / total) if total > 0 else 0.0
            width = min(1.0, max(0.0, (centroid - 1300.0) / 1500.0))
            feat = (db, width)
        self._raw[frame] = feat
        if len(self._raw) > 2 * KEEP_S * self.fps:  # a quiet night adds 25 a second with no audio to prune them
            old = frame - KEEP_S * self.fps
            self._raw = {k: v for k, v in self._raw.items() if k >= old}
        return feat

    def pose_at_frame(self, frame: int) -> MouthPose:
        feats = [self._features(frame + d) for d in range(-4, 5)]   # frames k-4 … k+4
        db = np.array([f[0] for f in feats])
        if (db[3:6] < GATE_DB).all():
            return MouthPose(0.0, 0.0)
        voiced = db >= GATE_DB
        absolute = np.clip((db - FLOOR_DB) / (CEIL_DB - FLOOR_DB), 0, 1)
        # syllable contrast: how far each frame is below the loudest of its +-2 neighbours
        peak = np.array([db[max(0, j - 2):j + 3].max() for j in range(2, 7)])
        rel = np.clip(1 + (db[2:7] - peak) / 10.0, 0, 1)
        opens = np.where(voiced[2:7], absolute[2:7] * (0.3 + 0.7 * rel) * 0.9, 0.0)
        widths = np.where(voiced[2:7], [f[1] for f in feats[2:7]], 0.0)
        o = float(KERNEL @ opens) ** 1.1
        w = float(KERNEL @ widths) * min(1.0, 0.4 + o)
        return MouthPose(open=round(min(1.0, o), 4), width=round(min(1.0, w), 4))

    def pose_at(self, t: float) -> MouthPose:
        return self.pose_at_frame(math.floor(t * self.fps + 1e-9))


def mouth_track(samples: np.ndarray, sample_rate: int, fps: int = 25) -> list[MouthPose]:
    """Poses for a whole clip starting at sample 0: one per frame, frames = ceil(len * fps / rate)."""
    tr = MouthTracker(sample_rate, fps)
    tr.add(samples, 0)
    n = -((-len(samples) * fps) // sample_rate)
    return [tr.pose_at_frame(k) for k in range(n)]


def shape_of(pose: MouthPose) -> str:
    """The nearest Rhubarb Lip Sync mouth shape (for logs and debugging): X, A, B, C, D, E or F."""
    o, w = pose.open, pose.width
    if o < 0.03 and w < 0.03:
        return "X"
    if o < 0.12:
        return "A"
    if o < 0.35:
        return "B" if w >= 0.35 else "F"
    if o < 0.7:
        return "C" if w >= 0.3 else "E"
    return "D"
