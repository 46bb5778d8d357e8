"""The persona LLM on a shared OpenAI-compatible server, with the box's own model as the fallback.

A fleet runs one bigger model on one GPU machine (llama.cpp's server, vLLM, Ollama) instead of a
model per kiosk. The turn does not change: the same messages (persona prompt, fact sheet, history)
go to the server, and its reply streams back piece by piece into the same sentence chunker and
safety checks as the local model's.

A visitor never waits on a dead server: with no first word within ``llm.server_first_token_s`` the
local model (kept loaded for exactly this) answers the turn; a server that dies or stalls mid-reply
is taken over by the local model from the words already said, so the visitor hears one reply. Each
such turn is an ENGINE_FALLBACK line in the journal. While the server is down, turns go straight to
the local model and a background probe asks the server every ``llm.server_retry_s`` whether it is
back (ENGINE_BACK when it is) — so a dead server costs one timeout, not one per turn.
"""

from __future__ import annotations

import logging
import stat
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

from .. import logs
from ..messages import ChatMessage
from . import EngineError
from .openai_stream import Endpoint, ServerError, answers, stream_chat

log = logging.getLogger(__name__)


def read_api_key(path: Path) -> str:
    """The API key from its file, refused unless only the file's owner can read it."""
    try:
        st = path.stat()
    except OSError as e:
        raise EngineError(f"llm.server_api_key_file {path} cannot be read: {e.strerror or e}") from e
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise EngineError(f"llm.server_api_key_file {path} is open to other users (mode "
                          f"{stat.S_IMODE(st.st_mode):04o}): the key must be readable by the service only — "
                          f"`sudo chown avatar {path} && sudo chmod 600 {path}`")
    try:
        key = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as e:
        raise EngineError(f"llm.server_api_key_file {path} cannot be read: {e}") from e
    if not key or any(c.isspace() for c in key):
        raise EngineError(f"llm.server_api_key_file {path} must hold the key alone, on one line")
    return key


def endpoint_of(cfg) -> Endpoint:
    """The server the ``[llm]`` section names, with its key read (raises EngineError on a bad key file)."""
    key = read_api_key(Path(cfg.server_api_key_file)) if cfg.server_api_key_file else ""
    return Endpoint(cfg.server_url, cfg.server_model, key, cfg.server_ca_file)


class ServerPersonaLLM:
    """``generate`` streams from the server and falls back to ``local`` (any PersonaLLM whose
    ``generate`` takes ``continue_from``) when the server does not answer in time."""

    def __init__(self, endpoint: Endpoint, local, *, max_tokens: int = 80, temperature: float = 0.3,
                 first_token_s: float = 1.5, stall_s: float = 2.0, retry_s: float = 10.0) -> None:
        self.endpoint = endpoint
        self.local = local
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.first_token_s = first_token_s
        self.stall_s = stall_s
        self.retry_s = retry_s
        self.fallbacks: Counter[str] = Counter()  # turns the local model answered, by reason (metrics)
        self.server_turns = 0                     # turns the server answered in full
        self._up = threading.Event()
        self._up.set()  # until a turn says otherwise
        self._lock = threading.Lock()
        self._probe: threading.Thread | None = None
        self._closed = threading.Event()

    @classmethod
    def from_settings(cls, settings) -> ServerPersonaLLM:
        from .llm_llama import LlamaPersonaLLM

        cfg = settings.config.llm
        endpoint = endpoint_of(cfg)
        if cfg.server_ca_file and not Path(cfg.server_ca_file).is_file():
            raise EngineError(f"llm.server_ca_file {cfg.server_ca_file} does not exist")
        # The fallback is loaded now, not when the server dies: loading takes seconds a visitor
        # must not wait through.
        return cls(endpoint, LlamaPersonaLLM.from_settings(settings), max_tokens=cfg.max_reply_tokens,
                   temperature=cfg.temperature, first_token_s=cfg.server_first_token_s,
                   stall_s=cfg.server_stall_s, retry_s=cfg.server_retry_s)

    @property
    def server_up(self) -> bool:
        return self._up.is_set()

    # The local model's persona prefix is warmed like the plain local engine's, so a fallback turn
    # is as fast as a local one.
    def warm(self, prefix: Sequence[ChatMessage]) -> None:
        if hasattr(self.local, "warm"):
            self.local.warm(prefix)

    def forget_prefixes(self) -> None:
        if hasattr(self.local, "forget_prefixes"):
            self.local.forget_prefixes()

    def generate(self, messages: Sequence[ChatMessage], cancel: threading.Event) -> Iterator[str]:
        if not self._up.is_set():
            self.fallbacks["server_down"] += 1
            log.info("llm server still down: the local model answers this turn",
                     extra=logs.fields(logs.ENGINE_FALLBACK, stage="llm", code="server_down"))
            yield from self.local.generate(messages, cancel)
            return
        said: list[str] = []
        body = {"model": self.endpoint.model or "default",
                "messages": [{"role": m.role, "content": m.content} for m in messages],
                "max_tokens": self.max_tokens, "temperature": self.temperature, "top_p": 0.9}
        try:
            for piece in stream_chat(self.endpoint, body, cancel, first_token_s=self.first_token_s,
                                     stall_s=self.stall_s):
                said.append(piece)
                yield piece
            if not cancel.is_set():
                self.server_turns += 1
            return
        except ServerError as e:
            self._went_down(e, len(said))
        if cancel.is_set():
            return
        yield from self.local.generate(messages, cancel, continue_from="".join(said))

    def _went_down(self, e: ServerError, pieces: int) -> None:
        self.fallbacks[e.code] += 1
        where = f"after {pieces} pieces of the reply, the local model finishes it" if pieces else \
            "the local model answers this turn"
        log.warning("llm server %s: %s; %s", self.endpoint.base_url, e, where,
                    extra=logs.fields(logs.ENGINE_FALLBACK, stage="llm", code=e.code))
        with self._lock:
            self._up.clear()
            if self._probe is None or not self._probe.is_alive():
                self._probe = threading.Thread(target=self._wait_for_server, name="llm-server-retry", daemon=True)
                self._probe.start()

    def _wait_for_server(self) -> None:
        while not self._closed.wait(self.retry_s):
            if answers(self.endpoint, timeout=min(self.retry_s, 2.0)):
                self._up.set()
                log.info("llm server %s answers again: turns go to it", self.endpoint.base_url,
                         extra=logs.fields(logs.ENGINE_BACK, stage="llm"))
                return

    def close(self) -> None:
        self._closed.set()
