"""Voice checks and the voice profile: the recordings are audio, long enough, not clipped, not noisy,
not silent; the cleanest 30–60 s become the reference every voice engine works from.

Each file is decoded (any rate, any channel count), mixed to mono and resampled to 16 kHz. A simple
energy analysis in 20 ms frames gives, per file: the noise floor (10th percentile), the speech frames
(12 dB over the floor and above -45 dBFS), the signal-to-noise ratio and the share of clipped samples.
Clipped, noisy or silent files are left out with a note; provisioning fails only when the speech that
is left is shorter than the minimum.

Minimum (``provisioning.min_voice_s``, default 30 s of *speech*, pauses not counted): the reference
is the cleanest 30–60 s, so 30 s is the least that fills it; the speaker embedding needs several
seconds per window and is unstable on a few sentences; cloning engines (XTTS) condition on up to 30 s.
5–10 minutes is recommended so the cleanest part can be chosen.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import ProvisionError

RATE = 16000
FRAME = 320  # 20 ms
CHUNK_S = 10.0
REF_MIN_S, REF_MAX_S = 30.0, 60.0
CLIP_LEVEL = 0.999
MAX_CLIP_FRACTION = 0.001   # 0.1 % of samples at full scale: audibly distorted
MIN_SNR_DB = 15.0
MIN_FILE_SPEECH_S = 0.3
MAX_TOTAL_S = 45 * 60  # more than this is not needed and only makes provisioning slow
NOISY_FLOOR_DB = -45.0  # a 'quiet' part this loud is background noise, not silence


@dataclass
class Chunk:
    file: str
    start_s: float
    audio: np.ndarray   # 16 kHz float32, silence trimmed at the edges
    speech_s: float
    snr_db: float
    clip: float

    @property
    def score(self) -> float:
        return self.snr_db - 1000.0 * self.clip


@dataclass
class FileVoice:
    name: str
    seconds: float
    speech_s: float
    snr_db: float
    clip: float
    rate: int
    channels: int
    usable: bool
    note: str = ""


@dataclass
class VoiceCheck:
    files: list[FileVoice]
    chunks: list[Chunk] = field(default_factory=list)

    @property
    def speech_s(self) -> float:
        return sum(f.speech_s for f in self.files)

    @property
    def usable_s(self) -> float:
        return sum(f.speech_s for f in self.files if f.usable)

    @property
    def notes(self) -> list[str]:
        return [f.note for f in self.files if f.note]


def _bad(code: str, msg: str) -> ProvisionError:
    return ProvisionError(code, msg, step="validate")


def load_mono16k(path: Path) -> tuple[np.ndarray, int, int, float]:
    """(16 kHz float32 mono, original rate, channels, clipped fraction); refuses what is not audio."""
    import soundfile as sf
    import soxr

    try:
        info = sf.info(str(path))
        if info.format not in ("WAV", "WAVEX", "RF64", "W64"):
            raise _bad("voice-format", f"{path.name} is not a WAV file ({info.format}) — export the recording as WAV")
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except ProvisionError:
        raise
    except Exception:  # soundfile raises LibsndfileError/RuntimeError/ValueError for broken files
        # (its message names the file by its staging path: of no use to the installer, so left out)
        size = path.stat().st_size if path.exists() else 0
        what = "is empty (0 bytes)" if size == 0 else "is damaged or not a WAV sound file"
        raise _bad("voice-corrupt", f"The recording {path.name} {what} — export it again as WAV") from None
    if data.size == 0 or rate <= 0:
        raise _bad("voice-corrupt", f"The recording {path.name} is empty — export it again")
    if not np.isfinite(data).all():
        raise _bad("voice-corrupt", f"The recording {path.name} holds invalid samples — export it again")
    clip = float(np.mean(np.abs(data) >= CLIP_LEVEL))
    mono = data.mean(axis=1)
    if rate != RATE:
        mono = soxr.resample(mono, rate, RATE, quality="HQ").astype(np.float32)
    return np.ascontiguousarray(mono, dtype=np.float32), int(rate), int(data.shape[1]), clip


def _frames_db(x: np.ndarray) -> np.ndarray:
    n = len(x) // FRAME
    if n == 0:
        return np.full(1, -100.0)
    fr = x[: n * FRAME].reshape(n, FRAME)
    return 10 * np.log10(np.mean(fr * fr, axis=1) + 1e-10)


def analyse_file(path: Path) -> tuple[FileVoice, list[Chunk]]:
    audio, rate, channels, clip = load_mono16k(path)
    seconds = len(audio) / RATE
    db = _frames_db(audio)
    floor = float(np.percentile(db, 10))
    speech = db > max(floor + 12.0, -45.0)
    speech_s = float(speech.sum()) * FRAME / RATE
    snr = float(np.median(db[speech]) - floor) if speech.any() else 0.0
    name = path.name
    fv = FileVoice(name, seconds, speech_s, snr, clip, rate, channels, usable=True)
    if speech_s < MIN_FILE_SPEECH_S and floor > NOISY_FLOOR_DB:
        fv.usable, fv.note = False, (f"{name}: too much background noise (no speech stands out of it) — left out; "
                                     "record in a quiet room")
    elif speech_s < MIN_FILE_SPEECH_S:
        fv.usable, fv.note = False, f"{name}: no speech found (silent or too quiet) — left out"
    elif clip > MAX_CLIP_FRACTION:
        fv.usable, fv.note = False, (f"{name}: {clip * 100:.1f} % of it is clipped (recorded too loud) — left out; "
                                     "record it again with lower gain")
    elif snr < MIN_SNR_DB:
        fv.usable, fv.note = False, (f"{name}: too much background noise (speech only {snr:.0f} dB above it) — "
                                     "left out; record in a quiet room")
    chunks: list[Chunk] = []
    if fv.usable:
        per = int(CHUNK_S * RATE / FRAME)
        for i in range(0, len(db), per):
            sp = speech[i:i + per]
            if not sp.any():
                continue
            idx = np.flatnonzero(sp)
            a = max(0, (i + idx[0] - 5)) * FRAME
            b = min(len(audio), (i + idx[-1] + 6) * FRAME)
            seg_db = db[i:i + per]
            chunks.append(Chunk(name, a / RATE, audio[a:b].copy(), float(sp.sum()) * FRAME / RATE,
                                float(np.median(seg_db[sp]) - floor), clip))
    return fv, chunks


def check_voices(paths: list[Path], min_speech_s: float) -> VoiceCheck:
    import soundfile as sf

    total = 0.0
    for p in paths:
        try:
            total += sf.info(str(p)).duration
        except Exception:  # noqa: BLE001 - a broken file gets its own message when it is read below
            continue
    if total > MAX_TOTAL_S:
        raise _bad("voice-too-long", f"The voice recordings last {total / 60:.0f} minutes — use at most "
                   f"{MAX_TOTAL_S // 60} minutes (5–10 minutes of the clearest speech is best)")
    files, chunks = [], []
    for p in paths:
        fv, ch = analyse_file(p)
        files.append(fv)
        chunks += ch
    vc = VoiceCheck(files, chunks)
    need = f"record at least {min_speech_s:.0f} seconds of speech (5–10 minutes is best)"
    if vc.speech_s < min_speech_s:
        why = f" ({'; '.join(vc.notes[:3])})" if vc.notes else ""
        raise _bad("voice-too-short", f"The voice recordings hold only {vc.speech_s:.0f} seconds of speech{why} "
                   f"— {need}")
    if vc.usable_s < min_speech_s:
        reasons = "; ".join(vc.notes[:3])
        raise _bad("voice-quality", f"Only {vc.usable_s:.0f} seconds of the recordings are clean enough ({reasons}) "
                   f"— {need}, in a quiet room, not too loud")
    return vc


def choose_reference(vc: VoiceCheck) -> tuple[np.ndarray, list[Chunk]]:
    """The cleanest 30–60 s of speech, in recording order, joined with short pauses, peak at -1 dBFS."""
    chosen: list[Chunk] = []
    got = 0.0
    for c in sorted(vc.chunks, key=lambda c: -c.score):
        dur = len(c.audio) / RATE
        if got >= REF_MIN_S and got + dur > REF_MAX_S:
            continue
        chosen.append(c)
        got += dur
        if got >= REF_MAX_S:
            break
    order = {f.name: i for i, f in enumerate(vc.files)}
    chosen.sort(key=lambda c: (order[c.file], c.start_s))
    gap = np.zeros(int(0.2 * RATE), np.float32)
    parts: list[np.ndarray] = []
    for c in chosen:
        parts += [c.audio, gap]
    ref = np.concatenate(parts[:-1]) if parts else np.zeros(RATE, np.float32)
    ref = ref[: int(REF_MAX_S * RATE)]
    peak = float(np.max(np.abs(ref))) or 1.0
    return (ref * (0.89 / peak)).astype(np.float32), chosen


def write_wav(path: Path, audio: np.ndarray, rate: int = RATE) -> None:
    import soundfile as sf

    sf.write(str(path), audio, rate, subtype="PCM_16")


# ----------------------------------------------------------------------------- speaker embedding

def speaker_embedding(audio16k: np.ndarray, onnx_path: Path) -> np.ndarray:
    """256-d L2-normalised d-vector (appliance.voice.embedding: the embedder's own recipe)."""
    from appliance.voice.embedding import SpeakerEmbedder

    return SpeakerEmbedder(onnx_path).embed(audio16k)
