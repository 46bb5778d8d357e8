"""Switching config.toml to the production engines, proven with same-architecture models: a tiny
random llama GGUF, a tiny XTTS checkpoint (coqui's Xtts classes, XTTS-v2's file layout) and a tiny
ONNX of the lip-sync model's I/O stand in for the production weights under their production ids, in
a models folder whose manifest pins them. The real load path (select.resolve, load_engines, the
kiosk app) runs them on this CPU; a profile provisioned before the switch gets its XTTS latents."""

from __future__ import annotations

import asyncio
import dataclasses
import tomllib

import numpy as np
import pytest
from gguf_tiny import build as build_gguf
from lipsync_tiny import tiny_wav2lip
from support import bundles as T
from xtts_tiny import build as build_xtts

from appliance import config as config_mod
from appliance import logs
from appliance import models as models_mod
from appliance import paths as paths_mod
from appliance.app.kiosk import KioskApp
from appliance.audio.mic import WavFileMic
from appliance.audio.speaker import RecordingSpeaker
from appliance.engines.lipsync_onnx import NeuralLipsyncAnimator
from appliance.engines.llm_llama import LlamaPersonaLLM
from appliance.paths import Settings

pytest.importorskip("TTS")

PERSONA = """name = "Anna"
languages = ["en"]
[greeting]
en = "Hello there!"
"""


def pinned_manifest(text: str, model_id: str, folder) -> str:
    """The manifest with ``model_id``'s files replaced by what ``folder`` holds (sizes, sha256)."""
    block_start = text.index(f'id = "{model_id}"')
    files_start = text.index("files = [", block_start)
    files_end = text.index("\n]\n", files_start) + 3
    rows = [f'  {{ name = "{p.name}", size = {p.stat().st_size}, sha256 = "{models_mod.sha256_file(p)}" }},'
            for p in sorted(folder.iterdir()) if not p.name.endswith(models_mod.PIN_SUFFIX)]
    return text[:files_start] + "files = [\n" + "\n".join(rows) + "\n]\n" + text[files_end:]


@pytest.fixture
def production_box(settings, models_dir, manifest, tmp_path, monkeypatch):
    own = tmp_path / "models"
    own.mkdir()
    for m in manifest.for_tier("embedded"):
        if m.folder(models_dir).exists():
            (own / m.id).symlink_to(m.folder(models_dir), target_is_directory=True)
    (own / "qwen2.5-7b-instruct-q4km").mkdir()
    build_gguf(own / "qwen2.5-7b-instruct-q4km" / "Qwen2.5-7B-Instruct-Q4_K_M.gguf")
    build_xtts(own / "xtts-v2")
    (own / "lipsync-wav2lip-onnx").mkdir()
    tiny_wav2lip(own / "lipsync-wav2lip-onnx" / "wav2lip_gan_96.onnx")
    text = settings.paths.manifest.read_text(encoding="utf-8")
    for mid in ("qwen2.5-7b-instruct-q4km", "xtts-v2", "lipsync-wav2lip-onnx"):
        text = pinned_manifest(text, mid, own / mid)
    tomllib.loads(text)
    test_manifest = tmp_path / "manifest.toml"
    test_manifest.write_text(text, encoding="utf-8")
    monkeypatch.setattr(paths_mod.Paths, "manifest", property(lambda self: test_manifest))

    # a profile provisioned while the kiosk ran the embedded voice: no XTTS latents in it yet
    prof = settings.paths.current_profile
    (prof / "derived").mkdir(parents=True)
    (prof / "voice").mkdir()
    (prof / "persona.toml").write_text(PERSONA, encoding="utf-8")
    T.save_photo(T.photo("one"), prof / "photo.png")
    T.save_speech(prof / "derived" / "voice_reference.wav", 8.0)

    cfg = settings.config
    cfg = config_mod.replace(cfg, "llm", model="qwen2.5-7b-instruct-q4km", n_gpu_layers=-1, max_reply_tokens=24)
    cfg = config_mod.replace(cfg, "tts", engine="xtts", model="xtts-v2", device="cpu")
    cfg = config_mod.replace(cfg, "face", engine="neural-lipsync")
    return Settings(cfg, dataclasses.replace(settings.paths, models_dir=own))


def test_production_config_runs_the_production_engines(production_box, caplog):
    s = production_box
    mic = WavFileMic(samples=np.zeros(16000 * 600, np.int16), realtime=True)
    speaker = RecordingSpeaker(s.config.audio.output_rate)
    show = KioskApp(s, mic=mic, speaker=speaker, headless=True, greet=False)
    replies = []

    async def main() -> None:
        await show.start()
        try:
            eng = show.conv.engines
            assert type(eng.tts).__name__ == "XttsTTS" and eng.tts.sample_rate == 24000
            assert isinstance(eng.llm, LlamaPersonaLLM)
            assert isinstance(show.animator, NeuralLipsyncAnimator)
            # the LLM fell back from the GPU to the CPU (no CUDA here), with the same production file
            assert eng.config.llm.model == "qwen2.5-7b-instruct-q4km" and eng.config.llm.n_gpu_layers == 0
            replies.append(await show.conv.typed_turn("Tell me about the Moon.", "en"))
            while speaker.busy:  # the reply plays out on the microphone's clock
                await asyncio.sleep(0.05)
        finally:
            await show.stop()

    asyncio.run(main())
    latents = s.paths.current_profile / "voice" / "xtts_latents.pt"
    assert latents.is_file()  # computed once from the profile's reference and cached with it
    reply, _metrics = replies[0]
    assert isinstance(reply, str)  # random weights: any text, but the turn went through the LLM
    heard = speaker.recording()
    assert len(heard) and float(np.max(np.abs(heard))) > 1e-3  # XTTS (random weights) made sound
    speech = show.lipsync.lipsync.speech
    assert speech.segments  # the XTTS audio reached the lip-sync
    fell_back = {getattr(r, "stage", "") for r in caplog.records if getattr(r, "message_id", "") == logs.ENGINE_FALLBACK}
    assert fell_back == {"llm"}  # only the GPU offload (no CUDA here); tts and face run as configured
