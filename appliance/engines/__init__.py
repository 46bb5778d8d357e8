"""Engine interfaces and the registry that picks an implementation by its config name.

Each role has a one-method interface (``base.py``), a production engine for the RTX 3060 box and
an embedded default that runs on a CPU with models from packages; :mod:`.factory` builds them. Small
deterministic fakes for the conversation's tests live in ``tests/support/fakes.py``, never here. Implementations are imported lazily, so choosing the embedded
default never imports torch, and a missing GPU stack only matters to the engine that needs it.
"""

from __future__ import annotations

import importlib
from typing import Any

# role -> config name -> "module:Class"
REGISTRY: dict[str, dict[str, str]] = {
    "stt": {
        "faster-whisper": "appliance.engines.stt_whisper:WhisperSTT",
    },
    "llm": {
        "llama-cpp": "appliance.engines.llm_llama:LlamaPersonaLLM",
        "openai-server": "appliance.engines.llm_remote:ServerPersonaLLM",
    },
    "tts": {
        "piper-espeak": "appliance.engines.tts_piper:PiperEspeakTTS",
        "xtts": "appliance.engines.tts_xtts:XttsTTS",
    },
    "face": {
        "mesh-warp": "appliance.face.animator:MeshWarpAnimator",
        "neural-lipsync": "appliance.engines.lipsync_onnx:NeuralLipsyncAnimator",
    },
}


class EngineError(RuntimeError):
    """An engine could not be created or run; the message says which and why."""


def engine_class(role: str, name: str) -> type:
    try:
        target = REGISTRY[role][name]
    except KeyError:
        known = ", ".join(sorted(REGISTRY.get(role, {})))
        raise EngineError(f"no {role} engine named {name!r} (known: {known})") from None
    module, _, cls = target.partition(":")
    try:
        return getattr(importlib.import_module(module), cls)
    except ImportError as e:
        raise EngineError(f"{role} engine {name!r} cannot be imported: {e}") from e


def create(role: str, name: str, *args: Any, **kwargs: Any) -> Any:
    return engine_class(role, name)(*args, **kwargs)
