"""The persona LLM through llama-cpp-python (GGUF). Blocking and streaming: run it in the LLM
worker thread; it yields text pieces and stops promptly when ``cancel`` is set.

The persona prefix's KV state is kept: the system prompt is evaluated once at load time and its
state saved; llama.cpp reuses the longest common token prefix between calls, and if another
prompt ever pushed the prefix out we restore the saved state instead of re-evaluating ~600
tokens (10 s on 2 cores).

The cells are also kept on disk (``<cache>/llm-prefixes``, keyed by the model file, the
llama-cpp-python version and the prefix's tokens), so a restarted kiosk is warm at once instead of
evaluating both languages' prefixes with their facts again (~23 s on 2 cores).

Only the KV cells of the prefix are saved (``llama_state_seq_get_data``, ~28 KB a token for
Qwen2.5-1.5B), not ``Llama.save_state``: that one also copies a row of logits per token (152k
floats each: 370 MB for a 600-token prefix) and took 0.95 s to restore, on every language switch.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import threading
from array import array
from collections.abc import Iterator, Sequence
from pathlib import Path

from ..messages import ChatMessage

log = logging.getLogger(__name__)

CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


MAX_PREFIXES = 4  # two languages, and room for a persona switch without evicting the live one mid-turn
CACHED_ON_DISK = 8  # prefix files kept (the newest): this persona's languages and a few before it


class LlamaPersonaLLM:
    def __init__(self, model_path: Path, *, n_ctx: int = 2048, threads: int = 2, n_gpu_layers: int = 0,
                 max_tokens: int = 80, temperature: float = 0.6, repeat_penalty: float = 1.3,
                 seed: int = 1234, cache_dir: Path | None = None) -> None:
        from llama_cpp import Llama

        self.llm = Llama(model_path=str(model_path), n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads,
                         n_gpu_layers=n_gpu_layers, seed=seed, verbose=False)
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.repeat_penalty = repeat_penalty
        # The persona prefix's KV state per prompt language (a Russian and an English prefix): a
        # turn in either language restores its own instead of evaluating ~600 tokens again (10 s here).
        self._prefixes: dict[tuple[int, ...], bytes] = {}
        self.cache_dir = cache_dir
        import llama_cpp

        st = Path(model_path).stat()
        self._identity = f"{Path(model_path).name}:{st.st_size}:{int(st.st_mtime)}:{llama_cpp.__version__}:{n_ctx}"

    @classmethod
    def from_settings(cls, settings) -> LlamaPersonaLLM:
        from ..models import load_manifest

        cfg = settings.config.llm
        model = load_manifest(settings.paths.manifest).get(cfg.model)
        path = model.path(settings.paths.models_dir, model.files[0].name)
        return cls(path, n_ctx=cfg.n_ctx, threads=cfg.threads, n_gpu_layers=cfg.n_gpu_layers,
                   max_tokens=cfg.max_reply_tokens, temperature=cfg.temperature,
                   repeat_penalty=cfg.repeat_penalty, cache_dir=settings.paths.cache_dir / "llm-prefixes")

    # -- prompt formatting (the GGUF's own chat template) -------------------------------------
    def _format(self, messages: Sequence[ChatMessage]) -> list[int]:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        fmt = getattr(self, "_formatter", None)
        if fmt is None:
            meta = self.llm.metadata
            # A GGUF without a template gets ChatML (SmolLM2's and Qwen's own format).
            template = meta.get("tokenizer.chat_template") or CHATML
            eos = self.llm._model.token_get_text(self.llm.token_eos())
            bos = self.llm._model.token_get_text(self.llm.token_bos())
            fmt = self._formatter = Jinja2ChatFormatter(template, eos_token=eos, bos_token=bos,
                                                        add_generation_prompt=True)
            self._stop = [eos, "<|im_end|>", "<|im_start|>"]
        res = fmt(messages=[{"role": m.role, "content": m.content} for m in messages])
        return self.llm.tokenize(res.prompt.encode("utf-8"), add_bos=False, special=True)

    def warm(self, prefix: Sequence[ChatMessage]) -> None:
        """Evaluate the persona prefix once and keep its KV state (called at start-up)."""
        # Only the tokens every later prompt starts with: formatting adds a generation prompt
        # after the last message, so take what two different continuations have in common.
        a = self._format([*prefix, ChatMessage("user", "Hi")])
        b = self._format([*prefix, ChatMessage("user", "What?")])
        prefix = tuple(a[: _common_prefix(a, b)])
        if prefix in self._prefixes:
            return  # already cached (several conversations share one engine)
        cells = self._read_cached(prefix)
        if cells is None:
            self.llm.reset()
            self.llm.eval(list(prefix))
            cells = self._save_cells()
            self._write_cached(prefix, cells)
        if len(self._prefixes) >= MAX_PREFIXES:  # a new persona: its prefixes replace the old ones
            self._prefixes.pop(next(iter(self._prefixes)))
        self._prefixes[prefix] = cells

    def forget_prefixes(self) -> None:
        """Drop the cached prefix states (the next prompt is evaluated whole: a cold start)."""
        self._prefixes.clear()

    def generate(self, messages: Sequence[ChatMessage], cancel: threading.Event, *,
                 continue_from: str = "") -> Iterator[str]:
        """``continue_from``: the start of the reply someone else already wrote (a shared server
        that died mid-sentence); the model goes on from it instead of starting over, so the
        visitor hears one reply, not half of one and then another."""
        tokens = self._format(messages)
        max_tokens = self.max_tokens
        if continue_from:
            more = self.llm.tokenize(continue_from.encode("utf-8"), add_bos=False, special=False)
            tokens += more
            max_tokens = max(self.max_tokens - len(more), 8)
        for p, state in self._prefixes.items():
            if tuple(tokens[: len(p)]) == p:
                shared = _common_prefix(self.llm.input_ids[: self.llm.n_tokens].tolist(), tokens)
                if shared < len(p):  # the cached prefix was overwritten: restore it rather than re-evaluate
                    self._restore_cells(p, state)
                break
        text = ""
        stop = self._stop
        for out in self.llm.create_completion(tokens, max_tokens=max_tokens, temperature=self.temperature,
                                              repeat_penalty=self.repeat_penalty, top_p=0.9, top_k=40,
                                              stream=True, stop=stop):
            if cancel.is_set():
                break
            piece = out["choices"][0]["text"]
            if piece:
                text += piece
                yield piece


    def _cache_file(self, prefix: tuple[int, ...]) -> Path | None:
        if self.cache_dir is None:
            return None
        h = hashlib.sha256(self._identity.encode())
        h.update(array("i", prefix).tobytes())
        return self.cache_dir / f"{h.hexdigest()[:24]}.kv"

    def _read_cached(self, prefix: tuple[int, ...]) -> bytes | None:
        """The prefix's cells from disk, put in place; None when there are none (or they don't load)."""
        path = self._cache_file(prefix)
        if path is None or not path.is_file():
            return None
        try:
            cells = path.read_bytes()
            self._restore_cells(prefix, cells)
        except (OSError, RuntimeError) as e:
            log.warning("the LLM's saved prompt state %s is unusable (%s): evaluating the prompt again", path, e)
            return None
        return cells

    def _write_cached(self, prefix: tuple[int, ...], cells: bytes) -> None:
        path = self._cache_file(prefix)
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(cells)
            os.replace(tmp, path)
            for old in sorted(path.parent.glob("*.kv"), key=lambda p: p.stat().st_mtime)[:-CACHED_ON_DISK]:
                old.unlink(missing_ok=True)  # our own files only: this folder is the engine's
        except OSError as e:  # a full disk costs the next start some seconds, nothing else
            log.warning("could not keep the LLM's prompt state on disk: %s", e)

    def _save_cells(self) -> bytes:
        """The KV cells of sequence 0 (all there is: one conversation at a time)."""
        import llama_cpp

        ctx = self.llm._ctx.ctx
        size = llama_cpp.llama_state_seq_get_size(ctx, 0)
        buf = (ctypes.c_uint8 * size)()
        written = llama_cpp.llama_state_seq_get_data(ctx, buf, size, 0)
        return bytes(buf[:written])

    def _restore_cells(self, tokens: tuple[int, ...], cells: bytes) -> None:
        """Put a saved prefix back: its KV cells, and the tokens llama-cpp-python matches prompts on.
        The logits are stale, but every prompt goes on past the prefix, so they are computed anew."""
        import llama_cpp

        ctx = self.llm._ctx.ctx
        llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(ctx), True)
        buf = (ctypes.c_uint8 * len(cells)).from_buffer_copy(cells)
        if llama_cpp.llama_state_seq_set_data(ctx, buf, len(cells), 0) != len(cells):
            raise RuntimeError("could not restore the persona prefix's KV state")
        self.llm.input_ids[: len(tokens)] = tokens
        self.llm.n_tokens = len(tokens)


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n
