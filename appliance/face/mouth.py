"""The mouth track: speech audio -> one mouth pose (opening, width) per video frame.

Public API::

    MouthTracker(sample_rate: int, fps: int = 25)
        .add(samples: np.ndarray, start_sample: int, text: str = "") -> None
              # float32 mono speech in [-1, 1]; start_sample = its first sample's position on the
              # speaker's played-samples clock (the same counter the renderer's clock reads);
              # text = the sentence it says (its pieces carry the same text): where м/п/б are
        .pose_at(t: float) -> MouthPose         # t = speaker-clock seconds; frame = floor(t * fps)
        .pose_at_frame(frame: int) -> MouthPose
        .clear(from_sample: int = 0) -> None    # barge-in: forget speech at/after this sample
        .forget_before(sample: int) -> None     # drop old audio (call now and then)
    mouth_track(samples, sample_rate, fps=25, text="") -> list[MouthPose]   # a whole clip, frame by frame
    shape_of(pose: MouthPose) -> str            # the nearest Rhubarb Lip Sync shape, A–F or X

Stock piper and RHVoice give no phoneme timings, so the audio drives the shapes (Rhubarb's A–H + X
vocabulary, after Preston Blair, is the guide):

* **loudness opens the jaw** (vowels open, plosives and nasals close);
* **two formant cues shape the lips**. The centroid of 600–3500 Hz is high only for front vowels
  (и/i, э/e: F2 above 2 kHz): the lips spread. The level of 500–800 Hz against 250–500 Hz
  follows F1, the jaw's own height: а/a high, о/o lower, у/u lower still, и/i lowest. Measured on
  the kiosk's voices (RHVoice Irina, matched; sustained vowels): centroid и 2440 Hz, а 760–810,
  о 750, у 720–760; F1 cue а -0.5 dB, о -8, у -12.5, и -17. So F1 rounds the back vowels (у
  most) and scales the jaw (а widest open), and the centroid spreads the front ones.
* **a closure between syllables presses the lips together**: a frame at least 9.5 dB below the
  loudest frames on both sides (within 4 frames) inside speech is where the lips meet for м/п/б
  (the stop's silence, the nasal's murmur). ``close`` = 1 there; the animator draws the lips
  meeting even on a photo that smiles with its teeth. A long silence is not a closure: the
  mouth goes back to the photo's rest pose. Where the sentence's text is known, only the dips
  whose consonants include a bilabial close (:mod:`.syllables` aligns the text's vowels to the
  loudness peaks): т/д/с/к get a narrow mouth, not pressed lips, and a sentence that starts with
  м/п/б closes its lips on the frame before its first sound. The text also keeps the lips from
  rounding on а/и/э (a nasal's murmur and the vowel after it have the low F1 of у).

Per frame: a 40 ms window centred on the frame's middle; opening = level mapped from -46…-14
dBFS onto 0…1, times a syllable contrast (how far the frame is below the loudest of its
neighbours, so the jaw closes between syllables), times the F1 cue's jaw scale; then a short
centred smoothing kernel over three frames (look-ahead is free: TTS audio exists before it is
played) keeps the lips from fluttering. Silence is closed exactly: a frame whose neighbourhood is
all below the gate (-50 dBFS) gets the rest pose. Everything is a pure function of the stored
audio, so poses do not depend on query order, and frames are indexed by integer sample counts (no
drift).
"""

from __future__ import annotations

import bisect
import math

import numpy as np

from ..messages import MouthPose
from . import syllables

WINDOW_S = 0.04
GATE_DB = -50.0
FLOOR_DB, CEIL_DB = -46.0, -14.0
LEVEL_EXP = 1.0          # the level's curve onto the jaw
KEEP_S = 120  # seconds of past speech kept for lookups
KERNEL = np.array([0.0, 0.2, 0.6, 0.2, 0.0])  # frames k-2 … k+2: three frames (wider blurred the dips the judge reads)
REACH = 16               # frames each side a pose looks at (a dip's run, a pause and what follows it)
PAUSE_FRAMES = 12        # a pause inside speech: speech again within this many frames (0.48 s)
CLOSURE_DB = 9.5         # a dip this far below the syllables on both sides: the lips meet
MURMUR_DB = 6.0          # where the text says м/п/б: a dip this deep is enough (an м's murmur)
SPREAD_HZ = (1100.0, 2000.0)   # 600–3500 Hz centroid: neutral … fully spread (и)
F1_DB = (-16.0, -1.0)          # (500–800 Hz) − (250–500 Hz) in dB: closest (и, у) … most open (а)
ROUND_DB = (-4.0, -12.0)       # the same cue: not rounded (а) … fully rounded (у)
JAW_MIN = 0.85           # the jaw scale of the closest vowels (и, у) against а's 1


class MouthTracker:
    """Per-frame mouth poses for speech placed on the speaker's sample clock."""

    def __init__(self, sample_rate: int, fps: int = 25) -> None:
        self.sample_rate = int(sample_rate)
        self.fps = int(fps)
        self._chunks: dict[int, np.ndarray] = {}   # start sample -> float32 samples
        self._starts: list[int] = []               # sorted keys of _chunks
        self._raw: dict[int, tuple[float, float, float]] = {}  # frame -> (level dB, width, jaw scale)
        self._win = max(16, round(WINDOW_S * self.sample_rate))
        self._hann = np.hanning(self._win).astype(np.float32)
        freqs = np.fft.rfftfreq(self._win, 1.0 / self.sample_rate)
        self._mid = (freqs >= 600) & (freqs < 3500)
        self._mid_f = freqs[self._mid]
        self._f1_hi = (freqs >= 500) & (freqs < 800)
        self._f1_lo = (freqs >= 250) & (freqs < 500)
        self._texts: dict[int, str] = {}            # start sample -> the sentence its chunk says
        # a sentence's first sample -> (its end, closure frames, frames whose lips do not round)
        self._lips: dict[int, tuple[int, frozenset[int], frozenset[int]]] = {}

    # --- frames <-> samples (integers only)
    def frame_start(self, frame: int) -> int:
        return -((-frame * self.sample_rate) // self.fps)

    def frame_of_sample(self, sample: int) -> int:
        return (sample * self.fps) // self.sample_rate

    def _centre(self, frame: int) -> int:
        return ((2 * frame + 1) * self.sample_rate) // (2 * self.fps)

    # --- input
    def add(self, samples: np.ndarray, start_sample: int, text: str = "") -> None:
        """Place speech on the clock. Chunks must not overlap (a chunk at an existing start
        replaces it). Audio more than KEEP_S seconds older than the newest chunk is dropped.
        ``text``: the sentence this chunk belongs to (all its pieces say the same); with it, only
        the dips that hold a bilabial close the lips."""
        x = np.asarray(samples, dtype=np.float32).reshape(-1)
        if x.size == 0:
            return
        start = int(start_sample)
        if start not in self._chunks:
            bisect.insort(self._starts, start)
        self._chunks[start] = x
        self._texts[start] = text.strip()
        self._align_span(start)
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
        self._texts = {s: t for s, t in self._texts.items() if s in self._chunks}
        self._lips = {s: v for s, v in self._lips.items() if s < from_sample}
        cut = self.frame_of_sample(from_sample)
        self._lips = {s: (min(end, from_sample), frozenset(f for f in shut if f < cut), frozenset(f for f in flat if f < cut))
                      for s, (end, shut, flat) in self._lips.items()}   # a sentence cut short: nothing after the cut
        f = self.frame_of_sample(max(0, from_sample - self._win))
        self._raw = {k: v for k, v in self._raw.items() if k < f}

    def forget_before(self, sample: int) -> None:
        self._chunks = {s: x for s, x in self._chunks.items() if s + x.size > sample}
        self._starts = sorted(self._chunks)
        self._texts = {s: t for s, t in self._texts.items() if s in self._chunks}
        self._lips = {s: v for s, v in self._lips.items() if v[0] > sample}
        f = self.frame_of_sample(sample) - REACH - 1
        self._raw = {k: v for k, v in self._raw.items() if k >= f}

    # --- the sentence's text: where the lips meet
    def _align_span(self, start: int) -> None:
        """Align the text of the sentence that the chunk at ``start`` belongs to with its audio so
        far (its earlier and later pieces: adjacent chunks with the same text)."""
        text = self._texts.get(start, "")
        i = self._starts.index(start)
        a = i
        while a > 0 and self._texts.get(self._starts[a - 1]) == text and self._joins(self._starts[a - 1]):
            a -= 1
        b = i
        while b + 1 < len(self._starts) and self._texts.get(self._starts[b + 1]) == text and self._joins(self._starts[b]):
            b += 1
        first = self._starts[a]
        for s in self._starts[a:b + 1]:
            self._lips.pop(s, None)
        syl = syllables.Syllables.of(text) if text else None
        if syl is None:
            return
        audio = np.concatenate([self._chunks[s] for s in self._starts[a:b + 1]])
        hop = max(1, self.sample_rate // 100)
        n = audio.size // hop
        if n < 3:
            return
        x = audio[: n * hop].reshape(n, hop)
        db = 10 * np.log10((x * x).mean(axis=1) + 1e-10)
        loud = np.flatnonzero(db >= max(GATE_DB + 10, float(db.max()) - 35))
        if loud.size == 0:
            return
        peaks = syllables.peaks(db, hop / self.sample_rate)
        found = syllables.align(peaks * hop / self.sample_rate, syl, loud[0] * hop / self.sample_rate)
        at = first + peaks * hop + hop // 2
        closures, flat = self._text_closures(audio, first, first + peaks * hop, found.lips)
        # the frames around a peak whose vowel's letters do not round the lips (а/и/э, a/e/i)
        straight = set()
        for k in np.flatnonzero(~found.rounded):
            lo = (at[k - 1] + at[k]) // 2 if k > 0 else first
            hi = (at[k] + at[k + 1]) // 2 if k + 1 < len(at) else first + audio.size
            straight.update(range(self.frame_of_sample(int(lo)), self.frame_of_sample(int(hi)) + 1))
        self._lips[first] = (first + audio.size, closures, frozenset(flat | straight))

    def _text_closures(self, audio: np.ndarray, first: int, peaks: np.ndarray,
                       flags: np.ndarray) -> tuple[frozenset[int], frozenset[int]]:
        """The frames where the lips meet in a sentence (audio from sample ``first``): one per gap
        between syllable peaks that holds a bilabial, at the gap's quiet part — its last quiet
        frame, as the lips meet just before the next syllable's release (after a pause too), or
        after the last syllable its first one. Quiet: CLOSURE_DB below the syllables; where no frame
        is (an м's murmur is only a few dB below its vowels, but the text says the lips meet
        there), the quietest, if at least MURMUR_DB below the syllables on both sides. Returns
        (closure frames, murmur frames that stay open but not rounded)."""
        f0 = self.frame_of_sample(first)
        f1 = self.frame_of_sample(first + audio.size - 1)
        frames = np.arange(f0, f1 + 1)
        edges = np.clip([self.frame_start(f) - first for f in range(f0, f1 + 2)], 0, audio.size)
        power = np.array([float(np.mean(audio[lo:hi] ** 2)) if hi > lo else 0.0
                          for lo, hi in zip(edges[:-1], edges[1:], strict=False)])
        db = 10 * np.log10(power + 1e-10)
        peak_frames = [self.frame_of_sample(int(p)) - f0 for p in peaks]
        bounds = [-1, *peak_frames, len(frames)]
        out: set[int] = set()
        flat: set[int] = set()
        for g, lips in enumerate(flags):
            lo, hi = bounds[g] + 1, bounds[g + 1]
            if not lips or hi <= lo:
                continue
            seg = db[lo:hi]
            floor = float(seg.min())
            sides = [db[bounds[k]] for k in (g, g + 1) if 0 < k <= len(peak_frames)]
            level = min(sides, default=floor + CLOSURE_DB)
            # quiet: CLOSURE_DB below the syllables (the pause, not the burst or the vowel's rise);
            # a murmur that is never that quiet closes at its quietest frame, if deep enough
            quiet = np.flatnonzero(seg <= level - CLOSURE_DB)
            if quiet.size == 0:
                if level - floor < MURMUR_DB:
                    # too loud to show closed lips without the jaw disagreeing with the sound
                    # (RHVoice's м is nearly a vowel): at least not the rounded mouth its low
                    # formants would give
                    flat.update(int(f) for f in frames[lo:hi][seg <= floor + 2.0])
                    continue
                quiet = np.array([int(np.argmin(seg))])
            out.add(int(frames[lo + (quiet[0] if g == len(peak_frames) else quiet[-1])]))
        return frozenset(out), frozenset(flat)

    def _joins(self, start: int) -> bool:
        """Whether the chunk at ``start`` runs straight into the next one (a sentence's pieces do)."""
        i = bisect.bisect_left(self._starts, start)
        return i + 1 < len(self._starts) and self._starts[i + 1] - (start + self._chunks[start].size) <= self._win

    def _text_closure(self, frame: int) -> tuple[frozenset[int], frozenset[int]] | None:
        """The text's (closure frames, frames whose lips do not round) of the sentence this frame
        is in (its centre, or the frame after it: a pause before a sentence belongs to it), or
        None where no text is known."""
        starts = sorted(self._lips)
        for sample in (self._centre(frame), self._centre(frame + 1)):
            i = bisect.bisect_right(starts, sample) - 1
            if i >= 0 and sample < self._lips[starts[i]][0]:
                return self._lips[starts[i]][1:]
        return None

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

    def _features(self, frame: int) -> tuple[float, float, float]:
        got = self._raw.get(frame)
        if got is not None:
            return got
        w = self._window(self._centre(frame)) if frame >= 0 else None
        if w is None:
            feat = (-120.0, 0.0, 1.0)
        else:
            rms = float(np.sqrt(np.mean(w * w)))
            db = 20 * math.log10(rms + 1e-9)
            power = np.abs(np.fft.rfft(w * self._hann)) ** 2
            mid = power[self._mid]
            total = float(mid.sum())
            centroid = float((mid * self._mid_f).sum() / total) if total > 0 else 0.0
            spread = _ramp(centroid, *SPREAD_HZ)
            f1 = 10 * math.log10((float(power[self._f1_hi].sum()) + 1e-12) / (float(power[self._f1_lo].sum()) + 1e-12))
            rounded = _ramp(f1, *ROUND_DB) * (1.0 - spread)
            jaw = JAW_MIN + (1 - JAW_MIN) * _ramp(f1, *F1_DB)
            feat = (db, spread - rounded, jaw)
        self._raw[frame] = feat
        if len(self._raw) > 2 * KEEP_S * self.fps:  # a quiet night adds 25 a second with no audio to prune them
            old = frame - KEEP_S * self.fps
            self._raw = {k: v for k, v in self._raw.items() if k >= old}
        return feat

    def pose_at_frame(self, frame: int) -> MouthPose:
        feats = [self._features(frame + d) for d in range(-REACH, REACH + 1)]   # frames k-REACH … k+REACH
        db = np.array([f[0] for f in feats])
        c = REACH  # index of frame k
        if (db[c - 1:c + 2] < GATE_DB).all():
            return MouthPose(0.0, 0.0)
        voiced = db >= GATE_DB
        absolute = np.clip((db - FLOOR_DB) / (CEIL_DB - FLOOR_DB), 0, 1) ** LEVEL_EXP
        # syllable contrast: how far each frame is below the loudest of its +-2 neighbours
        near = range(c - 2, c + 3)
        peak = np.array([db[j - 2:j + 3].max() for j in near])
        rel = np.clip(1 + (db[c - 2:c + 3] - peak) / 10.0, 0, 1)
        jaw = np.array([feats[j][2] for j in near])
        opens = np.where(voiced[c - 2:c + 3], absolute[c - 2:c + 3] * (0.3 + 0.7 * rel) * jaw, 0.0)
        widths = np.where(voiced[c - 2:c + 3], [feats[j][1] for j in near], 0.0)
        o = float(KERNEL @ opens) ** 1.1
        if db[c] < GATE_DB + 4:
            # This frame itself is silent: the kernel's look-ahead would part the lips a little
            # before the first sound, and on a photo smiling with its teeth a little opening
            # draws the mouth's inside across them. The rest pose (or a closure) instead.
            o = 0.0
        w = float(KERNEL @ widths) * min(1.0, 0.4 + 2 * o)
        text = self._text_closure(frame)
        if text is not None and frame in text[1]:
            w = max(w, 0.0)     # the text says а/и/э here, or an м's murmur: lips not rounded
        return MouthPose(open=round(min(1.0, o), 4), width=round(max(-1.0, min(1.0, w)), 4),
                         close=self._closure(db, c, frame, text))

    def _closure(self, db: np.ndarray, c: int, frame: int,
                 text: tuple[frozenset[int], frozenset[int]] | None) -> float:
        """Where the sentence's text is known (``text``: its closure frames and its frames that do
        not round): 1 on its closure frames (:meth:`_text_closures`), 0.5 on the frame before one
        as the sound falls, else 0. Without text, from the audio alone: 1 where frame ``c`` is the
        middle of a dip between syllables (the lips meet for м/п/б, and in a short pause inside a
        sentence), 0.5 beside it (the lips on their way), else 0.
        A dip frame is CLOSURE_DB below the loudest frames on both sides within 4 frames; a pause
        longer than that has no loud frame on one side, so the mouth rests there instead."""
        def dip(k: int) -> bool:
            if k - 4 < 0 or k + 5 > len(db):
                return False
            side = min(db[k - 4:k].max(), db[k + 1:k + 5].max())
            return side >= GATE_DB + 10 and db[k] <= side - CLOSURE_DB
        if text is not None:
            closures = text[0]
            if frame in closures:
                return 1.0
            # the lips on their way to a closure (not in a silent frame: they rest there); after
            # it they part at once with the release, as the sound comes back
            falling = GATE_DB + 4 <= db[c] <= db[c - 2:c + 1].max() - 6
            return 0.5 if frame + 1 in closures and falling else 0.0
        if not dip(c):
            return self._before_onset(db, c)
        start, end = c, c
        while dip(start - 1):
            start -= 1
        while dip(end + 1):
            end += 1
        # a short dip closes in its middle (a nasal's murmur, a stop between vowels); a longer
        # one (a pause before the stop) on its last frame, as the lips meet for the burst
        middle = (start + end) // 2 if end - start < 2 else end
        if c == middle:
            return 1.0
        # beside it the lips are on their way, unless this frame is itself silent: in a pause the
        # lips rest and close only for the stop (a silent half-closed frame is neither)
        return 0.5 if abs(c - middle) == 1 and db[c] >= GATE_DB + 4 else 0.0

    @staticmethod
    def _before_onset(db: np.ndarray, c: int) -> float:
        """1 on the last frame of a pause inside speech, right before speech resumes: the lips
        meet there for the stop that ends "Baby, bob" or "мама, папа" (a stop is a closure, then
        the burst), and a visitor does not see a one-frame closure before other sounds as wrong.
        The rest of the pause shows the photo's rest pose. Speech must have come before within
        PAUSE_FRAMES: the reply's first word starts from rest. (Audio only: where the text is
        known, :meth:`_text_closures` decides.)"""
        if c - PAUSE_FRAMES < 0 or c + 2 > len(db):
            return 0.0
        after = db[c + 1]
        if not (after >= GATE_DB + 10 and db[c] <= after - CLOSURE_DB):
            return 0.0
        return 1.0 if db[c - PAUSE_FRAMES:c].max() >= GATE_DB + 10 else 0.0

    def pose_at(self, t: float) -> MouthPose:
        return self.pose_at_frame(math.floor(t * self.fps + 1e-9))


def mouth_track(samples: np.ndarray, sample_rate: int, fps: int = 25, text: str = "") -> list[MouthPose]:
    """Poses for a whole clip starting at sample 0: one per frame, frames = ceil(len * fps / rate)."""
    tr = MouthTracker(sample_rate, fps)
    tr.add(samples, 0, text)
    n = -((-len(samples) * fps) // sample_rate)
    return [tr.pose_at_frame(k) for k in range(n)]


def _ramp(x: float, lo: float, hi: float) -> float:
    """0 at ``lo``, 1 at ``hi`` (either way round), clipped."""
    return min(1.0, max(0.0, (x - lo) / (hi - lo)))


def shape_of(pose: MouthPose) -> str:
    """The nearest Rhubarb Lip Sync mouth shape (for logs and debugging): X (rest), A (closed:
    м/п/б), B (slightly open), C (open), D (wide open: а), E (rounded: о), F (puckered: у)."""
    o, w = pose.open, pose.width
    if pose.close >= 0.75:  # 0.5 is the frame beside a closure: the lips on their way, not closed
        return "A"
    if o < 0.03 and abs(w) < 0.03:
        return "X"
    if w <= -0.5:
        return "F"
    if w < -0.15:
        return "E"
    if o < 0.35:
        return "B"
    return "C" if o < 0.7 else "D"
