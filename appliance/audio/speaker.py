"""Speakers: a playback buffer and the played-samples clock, the master clock of the kiosk.

The renderer picks the face frame for "now" from :attr:`Speaker.played_seconds`, never from wall
time. The clock counts every sample sent to the device, silence included, so it runs at exactly
the device's rate for as long as the speaker is open.

* :class:`PyAudioSpeaker` — PortAudio output stream in callback mode, fed from the buffer.
* :class:`RecordingSpeaker` — no device: its clock advances only when told to (by the amount of
  microphone audio time that has passed), and everything it "plays" is recorded for a WAV file.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from pathlib import Path

import numpy as np

from .. import logs
from ..messages import MIC_RATE
from .resample import resample
from .wav import write_wav

log = logging.getLogger(__name__)


class Speaker:
    """The buffer and the clock; subclasses move samples out of it (device callback or ``advance``).

    All methods are thread-safe: the device callback runs on PortAudio's thread."""

    def __init__(self, rate: int, volume: float = 1.0) -> None:
        self.rate = rate
        self.volume = volume
        self._lock = threading.Lock()
        self._queue: deque[np.ndarray] = deque()
        self._queued = 0
        self._played = 0
        self._played_at = time.perf_counter()  # when the clock last moved (the renderer's lateness)
        # Recently played output at 16 kHz for the echo guard: (end position at 16 kHz, samples).
        self._ref: deque[tuple[int, np.ndarray]] = deque(maxlen=400)
        # Listeners to the output, called as (end position at 16 kHz, samples at 16 kHz) — e.g. a
        # loop-back microphone that puts the kiosk's own voice into the room (tests, demo).
        self.taps: list = []
        self._ducked = False

    # -- the clock -------------------------------------------------------------------------
    @property
    def played_samples(self) -> int:
        with self._lock:
            return self._played

    @property
    def played_at(self) -> float:
        """perf_counter() time the clock last moved: how long ago ``played_samples`` became true."""
        with self._lock:
            return self._played_at

    @property
    def played_seconds(self) -> float:
        return self.played_samples / self.rate

    @property
    def queued_seconds(self) -> float:
        with self._lock:
            return self._queued / self.rate

    @property
    def busy(self) -> bool:
        with self._lock:
            return self._queued > 0

    # -- feeding ---------------------------------------------------------------------------
    def write(self, samples: np.ndarray, rate: int) -> float:
        """Queue float32 audio; returns the speaker-clock time (s) at which it will start playing."""
        x = resample(samples.astype(np.float32, copy=False), rate, self.rate) * self.volume
        with self._lock:
            start = (self._played + self._queued) / self.rate
            if len(x):
                self._queue.append(x.astype(np.float32))
                self._queued += len(x)
        return start

    def flush(self) -> float:
        """Drop everything not yet played (barge-in); returns the clock time playback stopped at."""
        with self._lock:
            self._queue.clear()
            self._queued = 0
            self._ducked = False
            return self._played / self.rate

    def duck(self, on: bool) -> None:
        """Mute the output while the queue plays on (the clock and chunk positions are untouched).

        Used while a possible barge-in is being confirmed: the kiosk falls silent at once, and
        if it was only noise it carries on where the audio has got to."""
        with self._lock:
            self._ducked = on

    @property
    def ducked(self) -> bool:
        with self._lock:
            return self._ducked

    def _pull(self, n: int) -> np.ndarray:
        """Take ``n`` samples for the device (zeros where the buffer runs dry); advances the clock."""
        out = np.zeros(n, np.float32)
        with self._lock:
            got = 0
            while got < n and self._queue:
                head = self._queue[0]
                take = min(n - got, len(head))
                out[got:got + take] = head[:take]
                got += take
                if take == len(head):
                    self._queue.popleft()
                else:
                    self._queue[0] = head[take:]
            self._queued -= got
            self._played += n
            self._played_at = time.perf_counter()
            if self._ducked:
                out[:] = 0.0
                got = 0  # nothing audible: no echo reference either
            end16 = int(self._played * MIC_RATE / self.rate)
        if got or self.taps:
            out16 = resample(out, self.rate, MIC_RATE)
            if got:
                self._ref.append((end16, out16))
            for tap in self.taps:
                tap(end16, out16)
        return out

    def take_reference(self) -> list[tuple[int, np.ndarray]]:
        """Played audio since the last call, at 16 kHz, as (end position, samples) — for the echo guard."""
        with self._lock:
            items = list(self._ref)
            self._ref.clear()
        return items

    @property
    def played_pos16k(self) -> int:
        with self._lock:
            return int(self._played * MIC_RATE / self.rate)

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def advance(self, seconds: float) -> None:
        """Virtual-time speakers move their clock here; device speakers ignore it."""


class RecordingSpeaker(Speaker):
    """A null speaker that records: its clock advances as audio time passes (``advance``).

    The conversation advances it by each microphone frame's duration when the microphone runs in
    virtual time (a WAV file read as fast as possible), so what was "played" lines up with what
    was "heard" exactly as it would in a room."""

    virtual = True

    def __init__(self, rate: int = 22050, volume: float = 1.0, keep_s: float | None = None) -> None:
        super().__init__(rate, volume)
        self._recorded: deque[np.ndarray] = deque()
        self._kept = 0
        # None: keep everything (a demo, --speaker-out); else only the last keep_s seconds — a service
        # run on a recorded visitor for hours (the soak) must not hold all it "played" (5 MB a minute).
        self._keep = None if keep_s is None else int(keep_s * rate)
        self._carry = 0.0

    def advance(self, seconds: float) -> None:
        exact = seconds * self.rate + self._carry
        n = int(exact)
        self._carry = exact - n
        if n > 0:
            out = self._pull(n)
            self._recorded.append(out)
            self._kept += len(out)
            while self._keep is not None and self._kept - len(self._recorded[0]) >= self._keep:
                self._kept -= len(self._recorded.popleft())

    def recording(self) -> np.ndarray:
        return np.concatenate(self._recorded) if self._recorded else np.zeros(0, np.float32)

    def drain(self) -> None:
        """Play out whatever is queued (end of a file run: nothing else advances the clock)."""
        while self.busy:
            self.advance(0.1)

    def save(self, path: Path) -> None:
        write_wav(path, self.recording(), self.rate)


class PyAudioSpeaker(Speaker):
    """PortAudio output in callback mode. The callback only copies from the buffer (never blocks)."""

    virtual = False

    def __init__(self, rate: int, device_name: str = "", volume: float = 1.0, block: int = 512) -> None:
        super().__init__(rate, volume)
        self.device_name = device_name
        self.block = block
        self._pa = None
        self._stream = None

    def start(self) -> None:
        import pyaudio

        self._pa = pyaudio.PyAudio()
        index = find_device(self._pa, self.device_name, output=True)

        def callback(in_data, frame_count, time_info, status):  # PortAudio's thread
            return (self._pull(frame_count).tobytes(), pyaudio.paContinue)

        try:
            self._stream = self._pa.open(format=pyaudio.paFloat32, channels=1, rate=self.rate, output=True,
                                         output_device_index=index, frames_per_buffer=self.block,
                                         stream_callback=callback)
        except OSError as e:
            log.error("speaker %r cannot be opened: %s", self.device_name or "default", e,
                      extra=logs.fields(logs.DEVICE_LOST, device=self.device_name or "default"))
            self._pa.terminate()
            self._pa = None
            raise

    def stop(self) -> None:
        if self._stream is not None:
            self._stream.stop_stream()
            self._stream.close()
            self._stream = None
        if self._pa is not None:
            self._pa.terminate()
            self._pa = None

    def wait_drained(self, timeout: float = 60.0) -> None:
        import time

        deadline = time.monotonic() + timeout
        while self.busy and time.monotonic() < deadline:
            time.sleep(0.05)


def find_device(pa, name: str, *, output: bool) -> int | None:
    """Index of the first device whose name contains ``name`` (case-insensitive); None = default."""
    if not name:
        return None
    key = "maxOutputChannels" if output else "maxInputChannels"
    for i in range(pa.get_device_count()):
        info = pa.get_device_info_by_index(i)
        if info.get(key, 0) > 0 and name.lower() in str(info.get("name", "")).lower():
            return i
    kind = "output" if output else "input"
    raise OSError(f"no {kind} device named like {name!r}")
