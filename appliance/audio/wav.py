"""WAV helpers: read any PCM WAV as 16 kHz mono int16 (what the microphone path expects), write float or int16."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from ..messages import MIC_RATE
from .resample import resample


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """Samples as float32 in [-1, 1], shape (n, channels), and the sample rate."""
    with wave.open(path if hasattr(path, "read") else str(path), "rb") as w:
        rate, channels, width, n = w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes()
        raw = w.readframes(n)
    if width == 1:  # 8-bit WAV is unsigned
        data = (np.frombuffer(raw, np.uint8).astype(np.float32) - 128.0) / 128.0
    elif width == 2:
        data = np.frombuffer(raw, "<i2").astype(np.float32) / 32768.0
    elif width == 3:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3)
        ints = (b[:, 0].astype(np.int32) | (b[:, 1].astype(np.int32) << 8) | (b[:, 2].astype(np.int32) << 16))
        ints = np.where(ints >= 1 << 23, ints - (1 << 24), ints)
        data = ints.astype(np.float32) / float(1 << 23)
    elif width == 4:
        data = np.frombuffer(raw, "<i4").astype(np.float32) / float(1 << 31)
    else:
        raise ValueError(f"{path}: {width * 8}-bit samples are not supported")
    return data.reshape(-1, channels), rate


def to_int16(x: np.ndarray) -> np.ndarray:
    """float [-1, 1] -> int16 with clipping (int16 input passes through)."""
    if x.dtype == np.int16:
        return x
    return (np.clip(x, -1.0, 1.0) * 32767.0).astype(np.int16)


def to_float(x: np.ndarray) -> np.ndarray:
    if x.dtype == np.int16:
        return x.astype(np.float32) / 32768.0
    return x.astype(np.float32, copy=False)


def read_mono_16k(path: Path) -> np.ndarray:
    """Any PCM WAV (8 kHz stereo included) as the microphone's format: 16 kHz mono int16."""
    data, rate = read_wav(path)
    mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    return to_int16(resample(mono.astype(np.float32), rate, MIC_RATE))


def write_wav(path: Path, samples: np.ndarray, rate: int) -> None:
    """Mono WAV, 16-bit; float input is clipped to [-1, 1]."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(to_int16(np.asarray(samples)).tobytes())
