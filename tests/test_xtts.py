"""The XTTS voice-cloning engine's real code paths (coqui-tts' Xtts classes) on the CPU, with a
checkpoint of the same architecture and file layout built here at a tiny size (random weights)."""

from __future__ import annotations

import numpy as np
import pytest

from appliance.demo import pick_voice_samples
from appliance.engines.tts_xtts import XttsTTS, normalize

pytest.importorskip("TTS", reason="the gpu extra (coqui-tts) is installed by bootstrap.sh test")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    import xtts_tiny

    return xtts_tiny.build(tmp_path_factory.mktemp("xtts-v2"))


def test_normalize_spells_out_numbers_and_abbreviations():
    assert normalize("Dr. Smith is 42 km away", "en") == "doctor Smith is forty-two kilometres away"
    assert normalize("Мне 34 года, т.е. много", "ru") == "Мне тридцать четыре года, то есть много"
    assert normalize("3,5 km", "en") == "three point five kilometres"
    assert normalize("Ракета", "ru") == "Ракета"


def test_latents_are_computed_cached_and_reloaded(checkpoint, tmp_path):
    tts = XttsTTS(checkpoint, device="cuda")  # no GPU here: the engine falls back to the CPU
    assert tts.device == "cpu" and tts.sample_rate == 24000
    with pytest.raises(RuntimeError, match="no speaker latents"):
        next(tts.synthesize("Hello", "en"))
    out = tmp_path / "xtts_latents.pt"
    tts.compute_latents(pick_voice_samples(total_s=20), out)
    assert out.exists() and not out.with_suffix(".partial").exists()
    again = XttsTTS(checkpoint, device="cpu", latents=out)
    assert again.speaker_embedding.shape == (1, 512, 1)
    assert np.allclose(again.gpt_cond_latent.numpy(), tts.gpt_cond_latent.numpy())


@pytest.mark.parametrize("text, lang", [("Hello there, I have 25 planets to show you!", "en"),
                                        ("Привет! Мне 34 года.", "ru")])
def test_synthesis_streams_in_chunks(checkpoint, tmp_path, text, lang):
    tts = XttsTTS(checkpoint, device="cpu", stream_chunk_size=4)
    tts.compute_latents(pick_voice_samples(total_s=10))
    chunks = list(tts.synthesize(text, lang))
    assert len(chunks) >= 2  # streamed, not one block at the end
    assert all(c.dtype == np.float32 and c.ndim == 1 and len(c) > 0 for c in chunks)
    assert np.isfinite(np.concatenate(chunks)).all()
