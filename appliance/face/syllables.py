"""Which pauses between syllables hold the lips together: the sentence's text, aligned to its audio.

Public API::

    Syllables.of(text: str) -> Syllables | None     # None: nothing to go by (no letters)
    Syllables.nuclei / .bilabial                     # vowel nuclei; bilabial[j]: м/п/б/m/p/b before nucleus j
    peaks(db: np.ndarray, hop_s: float) -> np.ndarray              # syllable peaks in a loudness track
    align(peak_s, syllables, start_s) -> Alignment   # .lips per gap between peaks, .rounded per peak

The audio alone cannot tell м from н or п from т: a dip in loudness between syllables looks the
same for all of them, and pressing the lips together on every dip shows a closed mouth for т/д/с/к
too — the wrong shape, and on a smiling photo a mouth shut tighter than its rest. The text says
where the bilabials are; the audio says where the syllables are. So the sentence's vowel nuclei
(from its letters: Russian spelling is close to its sound, and English m/p/b are bilabial except in
"ph" and a silent initial "ps"/"pn") are matched to the loudness peaks by a monotone alignment that
keeps the timing in proportion to the letters at a plausible speaking rate (the TTS may merge or
drop a nucleus, and a noisy peak may have no nucleus), and each gap between two peaks is a closure
only if the consonants between their nuclei include a bilabial.

Letters, not phonemes, because the text is all every TTS engine gives, and espeak's phonemizer
keeps global state that piper's synthesis thread also sets. Digits are spelled out by the TTS in
words the letters do not show: a digit counts as two nuclei whose consonants may be bilabial.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

RU_VOWELS = frozenset("аеёиоуыэюя")
EN_VOWELS = frozenset("aeiouy")
BILABIAL = frozenset("мпбmpb")
ROUNDED = frozenset("оуёюou")
PAUSE_UNITS = 3.0          # a comma or dash takes about as long as three letters
RATE_S = np.geomspace(0.045, 0.11, 12)   # seconds per letter: TTS voices speak 9-22 letters a second
SKIP_TEXT = 0.5            # cost of a nucleus with no peak (merged or reduced: "museum", "the")
SKIP_PEAK = 0.8            # cost of a peak with no nucleus (a loud consonant, a split vowel)
PROMINENCE_DB = 3.0
DRIFT = 4.0                # letters a peak may stray from where its nucleus should be, per unit of cost
_TOKEN = re.compile(r"[a-zа-яё']+|\d+|[,;:—–\-!?.…]")


@dataclass(frozen=True)
class Syllables:
    """A sentence's vowel nuclei: ``positions`` in letter units from its start, and ``bilabial``
    (one longer): whether the consonants before nucleus j (j = nuclei: after the last one) hold
    a bilabial. ``rounded``: whether the
    nucleus's letters allow rounded lips (the audio's low formants read a nasal's murmur and the
    vowel after it as у, so «мама» looked like «муму»)."""

    positions: tuple[float, ...]
    bilabial: tuple[bool, ...]
    rounded: tuple[bool, ...]   # per nucleus: may the lips round (о/у/ё/ю, o/u; not а/и/э, a/e/i)

    @property
    def nuclei(self) -> int:
        return len(self.positions)

    @classmethod
    def of(cls, text: str) -> Syllables | None:
        pos, lips, positions, bilabial, rounded = 0.0, False, [], [], []
        for tok in _TOKEN.findall(text.lower()):
            if tok.isdigit():  # spoken as words the letters do not show: assume the worst
                for _ in range(2 * len(tok)):
                    bilabial.append(True)
                    rounded.append(True)
                    positions.append(pos + 1.5)
                    pos += 3.0
                lips = True
                continue
            if not tok[0].isalpha():
                pos += PAUSE_UNITS if tok not in "-" else 0.0
                continue
            prev_vowel = False
            for letter, vowel, lip in _units(tok):
                if vowel and not prev_vowel:
                    bilabial.append(lips)
                    rounded.append(False)
                    positions.append(pos + 0.5)
                    lips = False
                if vowel and letter in ROUNDED:
                    rounded[-1] = True
                elif not vowel:
                    lips = lips or lip
                prev_vowel = vowel and not ("а" <= letter <= "я" or letter == "ё")  # Russian: each vowel letter a syllable
                pos += 1.0
        if not positions:
            return None
        return cls(tuple(positions), (*bilabial, lips), tuple(rounded))


def _units(word: str) -> list[tuple[str, bool, bool]]:
    """(letter, is a vowel nucleus letter, is bilabial) per sounded letter of ``word``."""
    if word[0] in RU_VOWELS or "а" <= word[0] <= "я" or word[0] == "ё":
        return [(c, c in RU_VOWELS, c in BILABIAL) for c in word if c.isalpha()]
    w = word.replace("'", "")
    if w.startswith(("ps", "pn")):   # psychology, pneumonia: the p is silent
        w = w[1:]
    out: list[tuple[str, bool, bool]] = []
    i = 0
    while i < len(w):
        c = w[i]
        nxt = w[i + 1] if i + 1 < len(w) else ""
        if c + nxt in ("th", "sh", "ch", "ng", "ck", "wh", "gh") or (nxt == c and c not in EN_VOWELS):
            out.append((c, False, False))  # one sound for two letters
            i += 2
            continue
        if c + nxt == "ph":              # phone: an f, not a p
            out.append((c, False, False))
            i += 2
            continue
        vowel = c in EN_VOWELS and not (c == "y" and i == 0)
        out.append((c, vowel, c in BILABIAL))
        i += 1
    vowels = [k for k, u in enumerate(out) if u[1]]
    # a silent final e ("time", "make") is not a syllable when the word has another vowel before it
    if len(out) > 2 and out[-1][0] == "e" and not out[-2][1] and len(vowels) > 1 and out[-2][0] != "l":
        out[-1] = ("e", False, False)
    return out


def peaks(db: np.ndarray, hop_s: float) -> np.ndarray:
    """Indices of syllable peaks in a loudness track (dB per hop): local maxima standing at least
    5 dB above the dips on both sides, within 30 dB of the loudest, at least 80 ms apart."""
    from scipy.signal import find_peaks

    if db.size < 3:
        return np.zeros(0, int)
    smooth = np.convolve(db, np.ones(3) / 3, mode="same")
    idx, _ = find_peaks(smooth, prominence=PROMINENCE_DB, height=float(smooth.max()) - 30.0,
                        distance=max(1, round(0.08 / hop_s)))
    return idx


@dataclass(frozen=True)
class Alignment:
    """A sentence's text on its audio: ``lips`` per gap around the peaks (len(peaks) + 1: gap 0
    before the first peak, gap i between peaks i-1 and i, the last after the last peak), True
    where the consonants there hold a bilabial; ``rounded`` per peak, False where its nucleus's
    letters do not round the lips (a peak no nucleus took: True, the audio decides)."""

    lips: np.ndarray
    rounded: np.ndarray


def align(peak_s: np.ndarray, syl: Syllables, start_s: float) -> Alignment:
    """Match the peaks (seconds) to the nuclei: each peak is a nucleus or nothing, in order;
    between two matched peaks the time should be the letters between their nuclei times the
    voice's rate (one rate per sentence, tried over the plausible range), and each peak near
    where the letters put it from the speech's start ``start_s``. The text may run past the
    audio (the sentence's later pieces have not arrived yet), so its end is free."""
    n_a, n_t = len(peak_s), syl.nuclei
    flags = np.ones(n_a + 1, bool)
    if n_a == 0:
        flags[0] = any(syl.bilabial)
        return Alignment(flags, np.ones(0, bool))
    match = _align(peak_s, np.asarray(syl.positions), start_s)
    lips = np.asarray(syl.bilabial)
    rounded = np.array([m < 0 or syl.rounded[m] for m in match], bool)
    # gap i lies between peak i-1 and peak i: the consonants between their nuclei (all of them,
    # including those of nuclei no peak took). A peak no nucleus took shares its neighbours' gap;
    # after the last matched peak, the consonants up to the next nucleus (the sentence may go on
    # in a piece still being converted; nuclei no peak took there are the TTS's to merge).
    prev = -1  # nucleus of the last matched peak before the gap
    for i in range(n_a + 1):
        m = match[i] if i < n_a else -1
        if m >= 0:
            flags[i] = _between(lips, prev, m, n_t)
            prev = m
        else:
            flags[i] = _between(lips, prev, next((x for x in match[i:] if x >= 0), prev + 1), n_t)
    return Alignment(flags, rounded)


def _between(lips: np.ndarray, a: int, b: int, n_t: int) -> bool:
    """Any bilabial in the consonants after nucleus ``a`` (-1: the sentence's start) and before
    nucleus ``b`` (n_t: the end), across any nuclei between them."""
    lo, hi = a + 1, min(b, n_t)
    return bool(lips[lo:hi + 1].any()) if hi >= lo else bool(lips[min(lo, n_t)])


def _align(t: np.ndarray, pos: np.ndarray, t0: float) -> list[int]:
    """Monotone peaks -> nuclei matching from the speech's start ``t0``, at the best of RATE_S
    (seconds per letter); the nucleus of each peak, -1 for none. A match costs how far the peak is
    from where the letters put its nucleus (in units of DRIFT letters) plus how far the interval
    to the previous matched peak is from the letters' (log ratio): the first keeps a missed peak
    from shifting everything after it, the second lets the voice's pace change a little along the
    sentence. All rates at once (numpy over the rate axis): a few ms for a long sentence."""
    n_a, n_t = len(t), len(pos)
    inf = np.inf
    rate = RATE_S[:, None]
    js = np.arange(n_t)
    node = np.abs(t[None, :, None] - (t0 + rate[:, :, None] * pos[None, None, :])) / (rate[:, :, None] * DRIFT)
    cost = np.full((len(RATE_S), n_a, n_t), inf)
    back_i = np.full(cost.shape, -1)
    back_j = np.full(cost.shape, -1)
    for i in range(n_a):
        # the first matched peak: earlier peaks unmatched, earlier nuclei skipped
        best = np.broadcast_to(i * SKIP_PEAK + js * SKIP_TEXT, (len(RATE_S), n_t)).copy()
        arg_i = np.full(best.shape, -1)
        arg_j = np.full(best.shape, -1)
        for pi in range(max(0, i - 3), i):
            dt = max(float(t[i] - t[pi]), 1e-3)
            for d in range(1, min(6, n_t)):      # the previous matched nucleus: j - d
                c = (cost[:, pi, : n_t - d] + np.abs(np.log(dt / (rate * (pos[d:] - pos[: n_t - d]))))
                     + ((i - pi - 1) * SKIP_PEAK + (d - 1) * SKIP_TEXT))
                better = c < best[:, d:]
                best[:, d:] = np.where(better, c, best[:, d:])
                arg_i[:, d:] = np.where(better, pi, arg_i[:, d:])
                arg_j[:, d:] = np.where(better, js[None, : n_t - d], arg_j[:, d:])
        cost[:, i] = np.where(node[:, i] > 4.0, inf, best + node[:, i])
        back_i[:, i], back_j[:, i] = arg_i, arg_j
    # the end: the last matched peak, later peaks unmatched; later nuclei free (the text may run on)
    end = cost + ((n_a - 1 - np.arange(n_a)) * SKIP_PEAK)[None, :, None]
    if not np.isfinite(end).any():
        return [-1] * n_a
    r, i, j = (int(v) for v in np.unravel_index(int(np.argmin(end)), end.shape))
    match = [-1] * n_a
    while i >= 0:
        match[i] = j
        i, j = int(back_i[r, i, j]), int(back_j[r, i, j])
    return match
