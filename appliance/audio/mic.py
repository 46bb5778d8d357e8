"""Microphones: async iterators of 16 kHz mono int16 :class:`AudioChunk` frames.

* :class:`WavFileMic` — "speaks" a recording, in real time or as fast as possible. As fast as
  possible is *virtual time*: before each frame it awaits ``pace`` (given by the conversation, see conversation/pacing.py),
  which holds the audio clock still while the kiosk is computing, as if compute were instant;
  the bench measures compute on the wall clock instead. After the file, the room stays quiet
  (silence frames) until the conversation stops.
* :class:`PyAudioMic` — PortAudio capture in callback mode; the callback hands raw bytes to the
  loop with ``call_soon_threadsafe``. Device chosen by name; 16 kHz if the device offers it,
  else 48/44.1 kHz resampled. A missing or unplugged device gives one journal line, a retry every
  ``reconnect_s``, and a journal line when it is back — no restart needed.
* :class:`LoopbackMic` — wraps another mic and mixes the speaker's output into it at a given
  gain and delay: the kiosk hearing itself, for tests and the demo.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import numpy as np

from .. import logs
from ..messages import MIC_RATE, AudioChunk
from .resample import StreamResampler
from .wav import read_mono_16k

log = logging.getLogger(__name__)

Pace = Callable[[], Awaitable[None]]


class Mic:
    virtual = False        # True: audio time is decoupled from wall time (see WavFileMic)
    recording = False      # True: a recording, which starts when the kiosk is ready (a person comes any time)
    generation = 0         # bumped on every (re)connect: audio before it is unrelated to after
    pace: Pace | None = None

    def frames(self) -> AsyncIterator[AudioChunk]:  # pragma: no cover - interface
        raise NotImplementedError

    def stop(self) -> None:
        self._stopped = True


class WavFileMic(Mic):
    def __init__(self, path: Path | None = None, *, samples: np.ndarray | None = None, frame_ms: int = 20,
                 realtime: bool = False, lead_s: float = 0.3) -> None:
        self.samples = read_mono_16k(path) if path is not None else np.asarray(samples, np.int16)
        lead = np.zeros(int(lead_s * MIC_RATE), np.int16)
        self.samples = np.concatenate([lead, self.samples])
        self.frame = MIC_RATE * frame_ms // 1000
        self.realtime = realtime
        self.virtual = not realtime
        self.recording = True
        self.finished = False   # the whole recording has been heard
        self._stopped = False

    @property
    def duration(self) -> float:
        return len(self.samples) / MIC_RATE

    async def frames(self) -> AsyncIterator[AudioChunk]:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        i = 0
        silence = np.zeros(self.frame, np.int16)
        while not self._stopped:
            if self.pace is not None and self.virtual:
                await self.pace()
            elif self.realtime:
                delay = t0 + i / MIC_RATE - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            if i + self.frame <= len(self.samples):
                frame = self.samples[i:i + self.frame]
            else:
                rest = self.samples[i:] if i < len(self.samples) else np.zeros(0, np.int16)
                frame = np.concatenate([rest, silence[: self.frame - len(rest)]])
                self.finished = True
            yield AudioChunk(frame, i / MIC_RATE)
            i += self.frame
            if self.virtual and i % (self.frame * 50) == 0:
                await asyncio.sleep(0)  # let the rest of the loop breathe between bursts


class LoopbackMic(Mic):
    """The room: visitor audio from ``inner`` plus the kiosk's own output at ``gain``, ``delay_s`` late."""

    def __init__(self, inner: Mic, speaker, gain: float = 0.5, delay_s: float = 0.05,
                 noise_rms: float = 0.0, impulse_response: np.ndarray | None = None) -> None:
        self.inner = inner
        # A room's reverberation (16 kHz FIR), applied by overlap-add across frames.
        self.ir = None if impulse_response is None else np.asarray(impulse_response, np.float32)
        self._ir_tail = np.zeros(0, np.float32)
        self.gain = gain
        self.delay = int(delay_s * MIC_RATE)
        self.noise_rms = noise_rms
        self._echo = np.zeros(0, np.float32)  # speaker output at 16 kHz not yet mixed in
        self._rng = np.random.default_rng(0)
        self._echo_pending = np.zeros(self.delay, np.float32)
        speaker.taps.append(self._tap)

    @property
    def virtual(self) -> bool:  # type: ignore[override]
        return self.inner.virtual

    @property
    def recording(self) -> bool:  # type: ignore[override]
        return self.inner.recording

    @property
    def finished(self) -> bool:
        return getattr(self.inner, "finished", False)

    def _tap(self, end16: int, out16: np.ndarray) -> None:
        self._echo_pending = np.concatenate([self._echo_pending, out16.astype(np.float32)])

    def stop(self) -> None:
        self.inner.stop()

    async def frames(self) -> AsyncIterator[AudioChunk]:
        self.inner.pace = self.pace
        async for chunk in self.inner.frames():
            n = len(chunk.samples)
            echo = self._echo_pending[:n]
            self._echo_pending = self._echo_pending[len(echo):]
            if self.ir is not None:
                wet = np.convolve(np.pad(echo, (0, n - len(echo))), self.ir)
                wet[: len(self._ir_tail)] += self._ir_tail
                self._ir_tail = wet[n:]
                echo = wet[:n]
            x = chunk.samples.astype(np.float32)
            x[: len(echo)] += echo * self.gain * 32767.0
            if self.noise_rms:
                x += self._rng.normal(0, self.noise_rms, n).astype(np.float32)
            yield AudioChunk(np.clip(x, -32768, 32767).astype(np.int16), chunk.t)


class DeviceHandle:
    """What a capture backend returns from ``open``: the rate it runs at, a liveness check, close."""

    rate: int

    def is_active(self) -> bool:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError


class PyAudioBackend:
    """Opens a PortAudio capture stream that calls ``on_data(bytes)`` from PortAudio's thread."""

    RATES = (16000, 48000, 44100)

    def open(self, device_name: str, frame_ms: int, on_data: Callable[[bytes], None]) -> DeviceHandle:
        import pyaudio

        from .speaker import find_device

        pa = pyaudio.PyAudio()
        try:
            index = find_device(pa, device_name, output=False)
            if index is None:
                index = pa.get_default_input_device_info()["index"]  # raises OSError with no device
            rate = None
            for r in self.RATES:
                try:
                    if pa.is_format_supported(r, input_device=index, input_channels=1,
                                              input_format=pyaudio.paInt16):
                        rate = r
                        break
                except ValueError:
                    continue
            if rate is None:
                raise OSError("the microphone offers none of 16000, 48000, 44100 Hz mono int16")

            def callback(in_data, frame_count, time_info, status):
                on_data(in_data)
                return (None, pyaudio.paContinue)

            stream = pa.open(format=pyaudio.paInt16, channels=1, rate=rate, input=True,
                             input_device_index=index, frames_per_buffer=rate * frame_ms // 1000,
                             stream_callback=callback)
        except Exception:
            pa.terminate()
            raise

        class _Handle(DeviceHandle):
            def __init__(self) -> None:
                self.rate = rate

            def is_active(self) -> bool:
                try:
                    return stream.is_active()
                except OSError:
                    return False

            def close(self) -> None:
                try:
                    stream.stop_stream()
                    stream.close()
                except OSError:
                    pass
                pa.terminate()

        return _Handle()


class PyAudioMic(Mic):
    """A capture device that survives being unplugged (see module docstring)."""

    def __init__(self, device_name: str = "", frame_ms: int = 20, reconnect_s: float = 3.0,
                 backend=None, stall_s: float = 2.0) -> None:
        self.device_name = device_name
        self.frame = MIC_RATE * frame_ms // 1000
        self.frame_ms = frame_ms
        self.reconnect_s = reconnect_s
        self.stall_s = stall_s  # no data for this long = the device is gone
        self.backend = backend or PyAudioBackend()
        self.generation = 0
        self.lost = False
        self._stopped = False

    async def frames(self) -> AsyncIterator[AudioChunk]:
        loop = asyncio.get_running_loop()
        t_samples = 0
        name = self.device_name or "default"
        while not self._stopped:
            queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=500)

            def on_data(data: bytes, q=queue) -> None:  # PortAudio's thread
                try:
                    loop.call_soon_threadsafe(_put_drop_oldest, q, data)
                except RuntimeError:  # the loop has closed under a still-running stream: drop it
                    pass

            try:
                handle = await loop.run_in_executor(None, self.backend.open, self.device_name,
                                                    self.frame_ms, on_data)
            except Exception as e:  # noqa: BLE001 - any failure to open means "not there (yet)"
                if not self.lost:
                    log.warning("microphone %r is missing (%s); retrying every %.0f s", name, e,
                                self.reconnect_s, extra=logs.fields(logs.DEVICE_LOST, device=name))
                    self.lost = True
                await asyncio.sleep(self.reconnect_s)
                continue
            if self.lost:
                log.info("microphone %r is back", name, extra=logs.fields(logs.DEVICE_BACK, device=name))
                self.lost = False
            self.generation += 1
            resampler = StreamResampler(handle.rate, MIC_RATE)
            pending = np.zeros(0, np.int16)
            try:
                while not self._stopped:
                    try:
                        data = await asyncio.wait_for(queue.get(), timeout=self.stall_s)
                    except TimeoutError:
                        data = None
                    if data is None or not handle.is_active():
                        raise OSError("the stream stopped delivering audio")
                    pending = np.concatenate([pending, resampler.process(np.frombuffer(data, np.int16))])
                    while len(pending) >= self.frame:
                        yield AudioChunk(pending[: self.frame].copy(), t_samples / MIC_RATE)
                        pending = pending[self.frame:]
                        t_samples += self.frame
            except OSError as e:
                log.warning("microphone %r was lost (%s); retrying every %.0f s", name, e, self.reconnect_s,
                            extra=logs.fields(logs.DEVICE_LOST, device=name))
                self.lost = True
            finally:
                await loop.run_in_executor(None, handle.close)
            if not self._stopped:
                await asyncio.sleep(self.reconnect_s)


def _put_drop_oldest(q: asyncio.Queue, item) -> None:
    """Bounded queue from a device: when the loop falls behind, old audio goes, new audio stays."""
    if q.full():
        q.get_nowait()
    q.put_nowait(item)
