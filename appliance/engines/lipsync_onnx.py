"""Neural lip-sync on the GPU box: a Wav2Lip-class ONNX model repaints the mouth region.

I/O contract (the Wav2Lip-GAN 96×96 export used by facefusion, manifest id ``lipsync-wav2lip-onnx``):

* input ``source``: float32 [1, 1, 80, 16] — 16 mel frames (80 per second of audio) ending at the
  video frame's time: log10 mel of pre-emphasised 16 kHz speech, scaled ×1.6 +3.2, clipped to ±4;
* input ``target``: float32 [1, 6, 96, 96] — the face crop (BGR, 0…1) twice: channels 0–2 with the
  lower half zeroed (what to paint), channels 3–5 unmasked (whose face it is);
* output 0: float32 [1, 3, 96, 96] — the repainted crop, BGR, 0…1.

The repainted lower half is blended back into the frame the mesh-warp animator made (it keeps
blinks, breathing and head sway) with a feathered mask, so no seam shows at the crop border.
Licence note: Wav2Lip weights are non-commercial (see models/manifest.toml).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

SR = 16000
N_FFT, HOP, N_MELS, FMIN, FMAX = 800, 200, 80, 55.0, 7600.0
MEL_FPS = SR / HOP  # 80 mel frames per second
CHUNK = 16
CROP = 96


def _mel_filters() -> np.ndarray:
    import librosa

    return librosa.filters.mel(sr=SR, n_fft=N_FFT, n_mels=N_MELS, fmin=FMIN, fmax=FMAX)


class MelTrack:
    """Mel spectrogram of a whole utterance, sliced per video frame."""

    def __init__(self, audio16k: np.ndarray, filters: np.ndarray | None = None) -> None:
        from scipy.signal import lfilter, stft

        a = np.asarray(audio16k, dtype=np.float32)
        peak = float(np.max(np.abs(a))) if len(a) else 0.0
        if peak > 0:
            a = a / peak
        a = lfilter([1.0, -0.97], [1.0], a)
        _, _, z = stft(a, nperseg=N_FFT, nfft=N_FFT, noverlap=N_FFT - HOP, boundary=None, padded=False)
        mel = (filters if filters is not None else _mel_filters()) @ np.abs(z)
        mel = np.log10(np.maximum(mel, 1e-5)) * 1.6 + 3.2
        self.mel = np.clip(mel, -4.0, 4.0).astype(np.float32)  # [80, T]

    def chunk_at(self, t: float) -> np.ndarray:
        """The [1, 1, 80, 16] window ending at audio time ``t`` (zero-padded at the start)."""
        end = int(round(t * MEL_FPS))
        start = end - CHUNK
        out = np.full((N_MELS, CHUNK), -4.0, dtype=np.float32)
        lo, hi = max(start, 0), min(end, self.mel.shape[1])
        if hi > lo:
            out[:, lo - start:hi - start] = self.mel[:, lo:hi]
        return out[None, None]


class LipsyncModel:
    """The ONNX session; CUDA when onnxruntime-gpu is installed, else the CPU."""

    def __init__(self, path: Path, device: str = "cuda") -> None:
        import onnxruntime as ort

        available = ort.get_available_providers()
        providers = ["CUDAExecutionProvider"] if device == "cuda" and "CUDAExecutionProvider" in available else []
        providers.append("CPUExecutionProvider")
        self.session = ort.InferenceSession(str(path), providers=providers)
        names = {i.name: i.shape for i in self.session.get_inputs()}
        if set(names) != {"source", "target"}:
            raise ValueError(f"{path.name}: expected inputs 'source' and 'target', found {sorted(names)}")
        self.providers = self.session.get_providers()

    def paint(self, mel_chunk: np.ndarray, crop_bgr: np.ndarray) -> np.ndarray:
        """96×96×3 uint8 BGR face crop + mel chunk -> repainted 96×96×3 uint8 BGR crop."""
        face = crop_bgr.astype(np.float32) / 255.0
        masked = face.copy()
        masked[CROP // 2:] = 0.0
        target = np.concatenate([masked, face], axis=2).transpose(2, 0, 1)[None]
        out = self.session.run(None, {"source": mel_chunk.astype(np.float32), "target": target})[0]
        return (np.clip(out[0].transpose(1, 2, 0), 0.0, 1.0) * 255.0).astype(np.uint8)


def _feather_mask(h: int, w: int) -> np.ndarray:
    """1 over the lower-middle of the crop, fading to 0 at its edges and above the nose line."""
    y = np.linspace(0.0, 1.0, h)[:, None]
    x = np.linspace(0.0, 1.0, w)[None, :]
    vert = np.clip((y - 0.45) / 0.15, 0, 1) * np.clip((1.0 - y) / 0.08, 0, 1)
    horiz = np.clip(x / 0.15, 0, 1) * np.clip((1.0 - x) / 0.15, 0, 1)
    return (vert * horiz).astype(np.float32)[..., None]


class SpeechBuffer:
    """The reply audio on the speaker's timeline (16 kHz), as it streams in sentence by sentence.

    The face must move with the first chunk while the TTS still writes the rest, so the model's
    mel window is cut from this buffer per frame instead of from a finished utterance. Old audio
    is forgotten (the kiosk runs for months)."""

    KEEP_S = 20.0

    def __init__(self) -> None:
        self.segments: list[tuple[float, np.ndarray]] = []  # (start_s, samples), in time order
        self.peak = 0.0
        self._runs: list[tuple[float, float]] | None = None  # speech runs, derived once per change

    def add(self, samples16k: np.ndarray, start_s: float) -> None:
        a = np.asarray(samples16k, dtype=np.float32).reshape(-1)
        if not len(a):
            return
        if not self.segments or start_s - self.end_s > 1.0:
            self.peak = 0.0  # a new utterance: the level is measured afresh
        self.peak = max(self.peak, float(np.max(np.abs(a))))
        self.segments.append((float(start_s), a))
        horizon = start_s - self.KEEP_S
        self.segments = [seg for seg in self.segments if seg[0] + len(seg[1]) / SR > horizon]
        self._runs = None

    @property
    def end_s(self) -> float:
        return max((s + len(a) / SR for s, a in self.segments), default=0.0)

    def clear(self, after_s: float | None = None) -> None:
        """Forget everything (``None``), or what was to play after ``after_s`` (a barge-in)."""
        self._runs = None
        if after_s is None:
            self.segments = []
            return
        kept = []
        for s, a in self.segments:
            if s < after_s:
                kept.append((s, a[: max(0, int(round((after_s - s) * SR)))]))
        self.segments = [(s, a) for s, a in kept if len(a)]

    def speaking(self, t: float) -> float:
        """How far into speech ``t`` is: 0 outside the audio, ramping to 1 within 80 ms of its edges
        (the painted mouth fades in and out instead of popping). Chunks that follow each other
        (one sentence streamed in pieces, the next sentence right after) count as one run."""
        for s, e in self.runs():
            if s <= t <= e:
                return float(min(1.0, (t - s) / 0.08 + 0.25, (e - t) / 0.08 + 0.25))
        return 0.0

    def runs(self) -> list[tuple[float, float]]:
        """(start_s, end_s) of each stretch of speech; recomputed only after add/clear, not per frame."""
        if self._runs is None:
            runs: list[list[float]] = []
            for s, a in sorted(self.segments, key=lambda seg: seg[0]):
                e = s + len(a) / SR
                if runs and s - runs[-1][1] <= 0.25:
                    runs[-1][1] = max(runs[-1][1], e)
                else:
                    runs.append([s, e])
            self._runs = [(s, e) for s, e in runs]
        return self._runs

    def window(self, start_s: float, n: int) -> np.ndarray:
        """``n`` samples from ``start_s`` on (silence where nothing was said), peak-normalised."""
        out = np.zeros(n, dtype=np.float32)
        i0 = int(round(start_s * SR))
        for s, a in self.segments:
            j0 = int(round(s * SR))
            lo, hi = max(i0, j0), min(i0 + n, j0 + len(a))
            if hi > lo:
                out[lo - i0:hi - i0] = a[lo - j0:hi - j0]
        return out / self.peak if self.peak > 0 else out


class NeuralLipsync:
    """Paints the mouth of ``frame_rgb`` inside ``box`` (x0, y0, x1, y1) for audio time ``t``."""

    def __init__(self, model: LipsyncModel) -> None:
        import cv2

        self.cv2 = cv2
        self.model = model
        self.speech = SpeechBuffer()
        self.filters = _mel_filters()

    @classmethod
    def from_settings(cls, settings) -> NeuralLipsync:
        from ..models import load_manifest

        model = load_manifest(settings.paths.manifest).get(settings.config.face.lipsync_model)
        onnx = next(f.name for f in model.files if f.name.endswith(".onnx"))
        return cls(LipsyncModel(model.path(settings.paths.models_dir, onnx), device="cuda"))

    def add_audio(self, samples16k: np.ndarray, start_s: float) -> None:
        """A chunk of reply audio that starts playing at speaker-clock time ``start_s``."""
        self.speech.add(samples16k, start_s)

    def set_speech(self, audio16k: np.ndarray, t0: float) -> None:
        """A whole utterance, starting at audio-clock time ``t0``."""
        self.speech.clear()
        self.speech.add(audio16k, t0)

    def clear(self, after_s: float | None = None) -> None:
        self.speech.clear(after_s)

    def mel_chunk(self, t: float) -> np.ndarray:
        """The model's [1, 1, 80, 16] input for time ``t``: the same frames MelTrack.chunk_at gives,
        cut from the streaming buffer (16 STFT frames ending at ``t``)."""
        from scipy.signal import lfilter, stft

        end = int(round(t * MEL_FPS))
        n = N_FFT + HOP * (CHUNK - 1)
        a = lfilter([1.0, -0.97], [1.0], self.speech.window((end - CHUNK) * HOP / SR, n))
        _, _, z = stft(a, nperseg=N_FFT, nfft=N_FFT, noverlap=N_FFT - HOP, boundary=None, padded=False)
        mel = np.log10(np.maximum(self.filters @ np.abs(z), 1e-5)) * 1.6 + 3.2
        return np.clip(mel, -4.0, 4.0).astype(np.float32)[None, None, :, :CHUNK]

    def apply(self, frame_rgb: np.ndarray, box: tuple[int, int, int, int], t: float) -> np.ndarray:
        weight = self.speech.speaking(t)
        if weight <= 0.0:
            return frame_rgb
        cv2 = self.cv2
        x0, y0, x1, y1 = box
        crop = frame_rgb[y0:y1, x0:x1]
        small = cv2.resize(crop[:, :, ::-1], (CROP, CROP), interpolation=cv2.INTER_AREA)
        painted = self.model.paint(self.mel_chunk(t), small)[:, :, ::-1]
        big = cv2.resize(painted, (x1 - x0, y1 - y0), interpolation=cv2.INTER_CUBIC).astype(np.float32)
        mask = _feather_mask(y1 - y0, x1 - x0) * weight
        out = frame_rgb.copy()
        out[y0:y1, x0:x1] = (big * mask + crop.astype(np.float32) * (1 - mask)).astype(np.uint8)
        return out


def face_box(rig) -> tuple[int, int, int, int]:
    """The square face crop the model was trained on (a face detector's box: brow to just below
    the chin, cheek to cheek), from the rig's landmarks, in the animator's portrait pixels."""
    pts = rig.landmarks - rig.margin
    x0, y0 = pts.min(0)
    x1, y1 = pts.max(0)
    side = max(x1 - x0, (y1 - y0) * 1.05)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 + 0.03 * side  # Wav2Lip pads the box below the chin
    half = side / 2
    lo_x, lo_y = int(max(0, round(cx - half))), int(max(0, round(cy - half)))
    hi_x, hi_y = int(min(rig.size, round(cx + half))), int(min(rig.size, round(cy + half)))
    return lo_x, lo_y, hi_x, hi_y


class NeuralLipsyncAnimator:
    """The ``neural-lipsync`` face engine: the mesh-warp animator's frame, mouth repainted by the model.

    ``base`` is any FaceAnimator (the mesh warp keeps the face alive between words); ``face_box``
    is the face's square box in the animator's output image.
    """

    @classmethod
    def for_rig(cls, rig, settings) -> NeuralLipsyncAnimator:
        """The ``neural-lipsync`` face engine for this rig (the engine factory's entry): the model
        over the mesh warp, which keeps blinks, sway and breathing."""
        from ..face.animator import MeshWarpAnimator

        lipsync = NeuralLipsync.from_settings(settings)
        animator = cls(MeshWarpAnimator.for_rig(rig, settings), lipsync, face_box(rig))
        log.info("face: neural lip-sync (%s, %s), face box %s", settings.config.face.lipsync_model,
                 "+".join(lipsync.model.providers), animator.face_box)
        return animator

    def __init__(self, base, lipsync: NeuralLipsync, face_box: tuple[int, int, int, int]) -> None:
        self.base = base
        self.lipsync = lipsync
        self.face_box = face_box

    def set_speech(self, audio16k: np.ndarray, t0: float) -> None:
        self.lipsync.set_speech(audio16k, t0)

    def add_audio(self, samples16k: np.ndarray, start_s: float) -> None:
        self.lipsync.add_audio(samples16k, start_s)

    def clear(self, after_s: float | None = None) -> None:
        self.lipsync.clear(after_s)

    def frame(self, t: float, mouth) -> np.ndarray:
        img = self.base.frame(t, mouth)
        return self.lipsync.apply(img, self.face_box, t)
