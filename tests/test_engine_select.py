"""Production engines fall back to the embedded defaults where their weights (or the GPU) are missing."""

from __future__ import annotations

import logging

from appliance import config, logs
from appliance.engines.select import resolve, vram_plan


def production_config() -> config.Config:
    cfg = config.Config()
    cfg = config.replace(cfg, "stt", model="faster-whisper-small", device="cuda", compute_type="int8_float16")
    cfg = config.replace(cfg, "llm", model="qwen2.5-7b-instruct-q4km", n_gpu_layers=-1, n_ctx=4096)
    cfg = config.replace(cfg, "tts", engine="xtts", device="cuda")
    return config.replace(cfg, "face", engine="neural-lipsync")


def test_missing_weights_fall_back_role_by_role(manifest, models_dir, caplog):
    with caplog.at_level(logging.WARNING):
        cfg, fallbacks = resolve(production_config(), manifest, models_dir, gpu=True)
    assert {f.role for f in fallbacks} == {"stt", "llm", "tts", "face"}
    assert (cfg.stt.model, cfg.stt.device, cfg.stt.compute_type) == ("whisper-base", "cpu", "int8")
    assert (cfg.llm.model, cfg.llm.n_gpu_layers) == ("qwen2.5-coder-1.5b-q4km", 0)
    assert cfg.tts.engine == "piper-espeak" and cfg.face.engine == "mesh-warp"
    assert "model.bin is missing" in next(f for f in fallbacks if f.role == "stt").reason
    records = [r for r in caplog.records if getattr(r, "message_id", None) == logs.ENGINE_FALLBACK]
    assert len(records) == 4


def test_present_weights_are_used_and_no_gpu_is_a_reason(manifest, models_dir, tmp_path):
    # A models folder that has the production STT "weights" (right names and sizes; `doctor` hashes them).
    md = tmp_path / "models"
    md.mkdir()
    for m in manifest.for_tier("embedded"):
        src = m.folder(models_dir)
        if src.exists():
            (md / m.id).symlink_to(src, target_is_directory=True)
    small = manifest.get("faster-whisper-small")
    (md / small.id).mkdir()
    for f in small.files:
        with open(md / small.id / f.name, "wb") as fh:
            fh.truncate(f.size)
    cfg, fallbacks = resolve(production_config(), manifest, md, gpu=True)
    assert cfg.stt.model == "faster-whisper-small" and cfg.stt.device == "cuda"
    assert "stt" not in {f.role for f in fallbacks}
    cfg, fallbacks = resolve(production_config(), manifest, md, gpu=False)
    stt = next(f for f in fallbacks if f.role == "stt")
    assert stt.reason == "no CUDA GPU" and cfg.stt.device == "cpu"


def test_embedded_defaults_need_no_fallback(manifest, models_dir):
    cfg, fallbacks = resolve(config.Config(), manifest, models_dir, gpu=False)
    assert fallbacks == [] and cfg == config.Config()


def test_vram_plan_fits_the_3060_with_headroom(manifest):
    plan = vram_plan(production_config(), manifest)
    assert [name.split()[0] for name, _ in plan.items] == ["cuda", "llm", "tts", "stt", "lipsync"]
    assert plan.fits and plan.total_mb <= 10240, plan.describe()
    huge = config.replace(production_config(), "llm", n_ctx=32768)
    assert not vram_plan(huge, manifest).fits  # a context too big for the card is caught before loading
    assert vram_plan(config.Config(), manifest).items == ()
