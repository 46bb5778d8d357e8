"""Sample-rate conversion with soxr (whole buffers and streams keep their dtype family)."""

from __future__ import annotations

import numpy as np
import soxr


def resample(x: np.ndarray, in_rate: int, out_rate: int) -> np.ndarray:
    """Resample a mono buffer; float stays float32, int16 stays int16."""
    if in_rate == out_rate or len(x) == 0:
        return x
    if x.dtype == np.int16:
        y = soxr.resample(x.astype(np.float32) / 32768.0, in_rate, out_rate, quality="HQ")
        return (np.clip(y, -1.0, 1.0) * 32767.0).astype(np.int16)
    return soxr.resample(x.astype(np.float32, copy=False), in_rate, out_rate, quality="HQ").astype(np.float32)


class StreamResampler:
    """Resamples a stream chunk by chunk without clicks at chunk borders (keeps the filter state).

    Used for a capture device that only offers 44.1/48 kHz: the microphone path is 16 kHz."""

    def __init__(self, in_rate: int, out_rate: int) -> None:
        self.in_rate, self.out_rate = in_rate, out_rate
        self._rs = None if in_rate == out_rate else soxr.ResampleStream(in_rate, out_rate, 1, dtype="float32")

    def process(self, x: np.ndarray, last: bool = False) -> np.ndarray:
        """int16 in, int16 out."""
        if self._rs is None:
            return x
        y = self._rs.resample_chunk(x.astype(np.float32) / 32768.0, last=last)
        return (np.clip(y, -1.0, 1.0) * 32767.0).astype(np.int16)
