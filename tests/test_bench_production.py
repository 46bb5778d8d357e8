"""``avatar-kiosk bench --production`` end to end at toy size on the CPU: every stage builds its
random-weight model, loads it through the real engine class and reports positive figures."""

from __future__ import annotations

import argparse
import importlib.util
import json

import pytest

from appliance.bench import production as bench_production

pytest.importorskip("TTS", reason="the gpu extra (coqui-tts) is installed by bootstrap.sh test")
pytest.importorskip("gguf", reason="the test extra (gguf) builds the LLM file")

HAVE_WAV2LIP = importlib.util.find_spec("appliance.bench.models.wav2lip") is not None


def test_cli_parses_the_production_flags():
    from appliance.cli import _build_parser

    args = _build_parser().parse_args(["bench", "--production", "--size", "tiny", "--device", "cpu",
                                       "--stages", "stt,llm", "--reps", "1"])
    assert args.production and args.size == "tiny" and args.device == "cpu" and args.stages == "stt,llm"
    default = _build_parser().parse_args(["bench"])
    assert not default.production and default.size == "full" and default.device == "cuda"


def test_tiny_production_bench_end_to_end(settings, tmp_path, capsys):
    out = tmp_path / "bench.json"
    args = argparse.Namespace(production=True, size="tiny", device="cuda", stages="stt,llm,tts,lipsync",
                              reps=1, json=out, turns=0, face=False, voice=False)
    from appliance.bench import main

    assert main(settings, args) == 0  # --production hands over to bench_production.run
    printed = capsys.readouterr().out
    assert "random weights, production-size architectures" in printed
    assert "no CUDA GPU here" in printed  # cuda asked for, none here: the CPU, with a note
    res = json.loads(out.read_text())
    assert res["device"] == "cpu" and res["size"] == "tiny"
    st = res["stages"]
    assert st["stt"]["transcribe_s"] > 0
    for key in ("first_token_s", "first_sentence_s", "tokens_per_s", "cached_first_token_s"):
        assert st["llm"][key] > 0, key
    assert st["llm"]["prompt_tokens"] > 200
    assert st["tts"]["first_chunk_s"] > 0 and st["tts"]["rtf"] > 0
    if HAVE_WAV2LIP:
        assert st["lipsync"]["ms_per_frame"] > 0
    else:
        assert st["lipsync"].get("skipped") and "not built" in printed
    assert res["summary"]["ttfa_s"] > res["summary"]["eos_s"]
    assert "projected time to first audio" in printed

    # a second run reuses the cached models (no build) and --stages picks stages
    res2_path = tmp_path / "again.json"
    args2 = argparse.Namespace(production=True, size="tiny", device="cpu", stages="stt", reps=1, json=res2_path)
    assert bench_production.run(settings, args2) == 0
    again = json.loads(res2_path.read_text())["stages"]
    assert set(again) == {"stt"} and "build_s" not in again["stt"]

    check_cached_models_load(settings.paths.cache_dir / "bench-models")


def check_cached_models_load(cache):
    """The cached toy models are exactly what the engine classes load in production."""
    import threading

    from appliance.bench.models import whisper_ct2, xtts
    from appliance.engines.llm_llama import LlamaPersonaLLM
    from appliance.engines.stt_whisper import WhisperSTT
    from appliance.engines.tts_xtts import XttsTTS
    from appliance.messages import ChatMessage

    assert whisper_ct2.is_built(cache / "whisper-tiny")
    WhisperSTT(cache / "whisper-tiny", device="cpu", compute_type="int8").warm()
    llm = LlamaPersonaLLM(cache / "llm-tiny" / "model.gguf", n_ctx=512, max_tokens=4)
    assert list(llm.generate([ChatMessage("user", "Hi")], threading.Event()))
    assert xtts.is_built(cache / "xtts-tiny")
    assert XttsTTS(cache / "xtts-tiny", device="cpu").sample_rate == 24000
    if HAVE_WAV2LIP:
        from appliance.engines.lipsync_onnx import LipsyncModel

        assert LipsyncModel(cache / "wav2lip-tiny" / "wav2lip.onnx", device="cpu").providers


