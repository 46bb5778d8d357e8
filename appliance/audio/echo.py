"""The self-hearing guard: the kiosk must never take its own voice for a visitor.

Without acoustic echo cancellation (on the box PipeWire's ``module-echo-cancel`` can provide it)
the microphone hears the speaker. Each microphone frame is compared with what the speaker played
just before it (the *reference*, kept here at 16 kHz): we search the lag of best normalised
correlation over the plausible echo delay, fit the gain, and look at what remains after
subtracting the scaled reference. A frame is *explained by echo* when that residual is a small part
of the frame's energy, or the frame is quiet next to what was played. Only speech the echo path
cannot explain may start a turn or barge in.

A real room adds reverberation, which a single delayed copy does not model, so a second, energy
test backs the correlation (a Geigel-style double-talk detector): the echo path's loss is learned
as the 90th percentile of microphone-to-reference level ratios of frames judged to be echo (the last
60 ms of microphone against the reference's mean power over the delay span), starting from the
cautious assumption that the microphone hears us as loud as we play; microphone audio no louder
than ``margin`` times that level is echo too. A visitor barging in must therefore be clearly louder than our
own voice as the microphone hears it — which, at a kiosk, someone talking to it is.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from ..messages import MIC_RATE


class EchoGuard:
    """Reference ring buffer (the speaker's output, indexed by speaker sample position at 16 kHz).

    ``max_delay_s`` covers device buffering plus the acoustic path; ``tail_s`` is how long after
    playback stops the room still rings (reverb + buffers)."""

    FIT_S = 0.12  # microphone audio over which the echo's lag and gain are fitted

    def __init__(self, max_delay_s: float = 0.35, history_s: float = 3.0, residual_ratio: float = 0.35,
                 tail_s: float = 0.4, margin: float = 1.6, initial_echo_gain: float = 1.0) -> None:
        self.max_delay = int(max_delay_s * MIC_RATE)
        self.residual_ratio = residual_ratio
        self.tail = int(tail_s * MIC_RATE)
        self._buf = np.zeros(int(history_s * MIC_RATE), np.float32)
        self._end = 0            # speaker position (16 kHz samples) of the buffer's last sample
        self._last_loud = -10**9  # position of the last non-silent reference sample
        self.fit = int(self.FIT_S * MIC_RATE)
        self._mic = np.zeros(0, np.float32)  # the last FIT_S of microphone audio
        self.margin = margin
        # Until measured, assume the microphone hears us as loud as we play (no barge-in over it).
        self.echo_gain = initial_echo_gain
        self._ratios: deque[float] = deque(maxlen=250)  # mic/reference level ratios, last ~5 s of play

    def add_reference(self, samples16k: np.ndarray, end_pos: int) -> None:
        """Record what the speaker played; ``end_pos`` = its clock (16 kHz samples) after these."""
        x = samples16k.astype(np.float32) / 32768.0 if samples16k.dtype == np.int16 else samples16k.astype(np.float32)
        gap = end_pos - len(x) - self._end
        if gap > 0:  # the clock moved on without reference audio: that was silence
            self._push(np.zeros(min(gap, len(self._buf)), np.float32))
        self._push(x)
        self._end = end_pos
        if len(x) and np.abs(x).max() > 1e-3:
            nz = np.nonzero(np.abs(x) > 1e-3)[0]
            self._last_loud = end_pos - len(x) + int(nz[-1])

    def _push(self, x: np.ndarray) -> None:
        if len(x) >= len(self._buf):
            self._buf[:] = x[-len(self._buf):]
        elif len(x):
            self._buf = np.roll(self._buf, -len(x))
            self._buf[-len(x):] = x

    def active(self, pos: int) -> bool:
        """Is the echo path possibly carrying our voice at speaker position ``pos``?"""
        return pos - self._last_loud <= self.max_delay + self.tail

    def explained(self, frame: np.ndarray, pos: int) -> bool:
        """True if this microphone frame (captured when the speaker clock read ``pos``) is our echo.

        ``pos`` is the speaker's played position (16 kHz samples) when the frame's last sample
        was captured; the echo of sample ``p`` reaches the microphone at ``p + delay``. The lag
        and gain are fitted over the last ``FIT_S`` of microphone audio (one 20 ms frame of voiced
        speech matches *some* lag of any other voice at a similar pitch; 120 ms does not), and
        the verdict is on the newest frame's residual. Call it for *every* microphone frame, so
        the window has no holes."""
        m = frame.astype(np.float32) / 32768.0 if frame.dtype == np.int16 else frame.astype(np.float32)
        self._mic = np.concatenate([self._mic, m])[-self.fit:]
        if not self.active(pos):
            return False
        n = len(m)
        e_m = float(np.dot(m, m))
        w = self._mic
        nw = len(w)
        # Reference that can have produced the window: [pos - nw - max_delay, pos].
        back = self._end - pos
        stop = len(self._buf) - max(back, 0)
        start = max(stop - nw - self.max_delay, 0)
        ref = self._buf[start:stop]
        if len(ref) < nw:
            return e_m < 1e-8
        c2 = np.cumsum(np.concatenate([[0.0], ref.astype(np.float64) ** 2]))
        energies = np.maximum(c2[nw:] - c2[:-nw], 1e-12)
        # The energy test's yardstick: how loud the room returns what we play (see the module doc).
        # Reverberation smears our voice over a few hundred ms, so the echo's level follows the
        # reference's mean power over the whole delay span, not its instantaneous level.
        ref_power = float(c2[-1]) / len(ref)
        recent = w[-3 * n:]  # the last 60 ms (one 20 ms frame swings too much with the syllables)
        level = float(np.sqrt(float(np.dot(recent, recent)) / len(recent) / ref_power)) if ref_power > 1e-7 else 0.0
        if e_m < 1e-8:
            if ref_power > 1e-7:
                self._learn(level)  # we play and the microphone hears nothing: no echo path
            return True  # digital silence: nothing to explain
        if ref_power <= 1e-7:
            return False
        size = 1 << int(np.ceil(np.log2(len(ref) + nw)))
        corr = np.fft.irfft(np.fft.rfft(ref, size) * np.conj(np.fft.rfft(w, size)), size)[: len(ref) - nw + 1]
        energies = energies[: len(corr)]
        score = corr * np.abs(corr) / energies  # signed energy of the projection onto each lag
        k = int(np.argmax(score))
        if corr[k] > 0:
            gain = corr[k] / energies[k]
            seg = ref[k + nw - n: k + nw]  # the reference aligned with the newest frame
            residual = m - gain * seg
            if float(np.dot(residual, residual)) <= self.residual_ratio * e_m:
                self._learn(level)
                return True
        if level <= self.margin * self.echo_gain:
            self._learn(level)
            return True
        return False

    def _learn(self, level: float) -> None:
        """Only frames judged to be echo teach the echo level: a visitor talking over us must not
        raise the bar they have to clear."""
        self._ratios.append(level)
        if len(self._ratios) >= 25:
            self.echo_gain = float(np.percentile(self._ratios, 90))
