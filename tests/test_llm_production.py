"""The production LLM configuration (a GGUF named in the manifest, all layers offloaded) through the
real engine, on a tiny random llama GGUF written here with the `gguf` package."""

from __future__ import annotations

import dataclasses
import threading

from appliance import config, paths
from appliance.engines.llm_llama import LlamaPersonaLLM
from appliance.messages import ChatMessage


def test_production_gguf_loads_offloaded_and_streams(tmp_path, manifest, settings):
    import gguf_tiny

    model = manifest.get("qwen2.5-7b-instruct-q4km")
    folder = tmp_path / "models" / model.id
    folder.mkdir(parents=True)
    gguf_tiny.build(folder / model.files[0].name)
    cfg = config.replace(settings.config, "llm", model=model.id, n_gpu_layers=-1, n_ctx=512, max_reply_tokens=16)
    s = paths.Settings(cfg, dataclasses.replace(settings.paths, models_dir=tmp_path / "models"))
    llm = LlamaPersonaLLM.from_settings(s)  # -1 = every layer on the GPU; a CPU build runs them on the CPU
    msgs = [ChatMessage("system", "You are Anna, a museum guide."), ChatMessage("user", "Привет! Hi!")]
    pieces = list(llm.generate(msgs, threading.Event()))
    assert pieces and all(isinstance(p, str) for p in pieces)
    cancel = threading.Event()
    cancel.set()
    assert len(list(llm.generate(msgs, cancel))) <= 1  # a cancelled generation stops at once
