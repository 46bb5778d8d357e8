"""Tiny random llama GGUF builder for tests; the code lives in :mod:`appliance.benchmodels.llama_gguf`."""

from appliance.benchmodels.llama_gguf import build  # noqa: F401
