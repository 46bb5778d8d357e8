"""Tiny random llama GGUF builder for tests; the code lives in :mod:`appliance.bench.models.llama_gguf`."""

from appliance.bench.models.llama_gguf import build  # noqa: F401
