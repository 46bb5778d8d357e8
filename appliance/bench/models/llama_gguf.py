"""Llama-architecture GGUF files with random weights, written with the ``gguf`` package and loaded by
the real LLM engine (:class:`appliance.engines.llm_llama.LlamaPersonaLLM`, llama-cpp-python).

Presets:

* ``"tiny"``: 64-dim, 2 layers, float32, a byte-fallback SentencePiece vocabulary of ~350 tokens —
  the engine's loading, offload settings and streaming run in a blink (tests).
* ``"qwen2.5-7b"``: the **llama architecture at Qwen2.5-7B-Instruct's dimensions**, quantized to
  Q4_K_M like the production file (``qwen2.5-7b-instruct-q4km``): n_embd 3584, 28 layers, 28 query
  heads and 4 KV heads (GQA), n_ff 18944, vocabulary 152064 (a byte-fallback vocabulary padded with
  dummy tokens, ChatML control tokens included), untied output matrix, RoPE base 1e6, RMS eps 1e-6,
  q/k/v biases (llama.cpp's llama graph adds them when present, as Qwen2's does). What differs from
  the real Qwen2 graph is only the RoPE variant (normal vs NeoX pairing: the same cost) and the
  tokenizer (character-level here: a prompt is sized in tokens, not characters, by the bench).
  The file is ~4.7 GB, like the real one; writing it goes through a ~15 GB float16 intermediate that
  is deleted after quantizing (``llama_cpp.llama_model_quantize``).

Random values: latency does not depend on weight values, so the float16 data is drawn from one
64 Mi-value block of normal numbers (re-used at random offsets) instead of 7.6 G fresh draws.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
TINY_TEMPLATE = ("{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
                 "{% if add_generation_prompt %}assistant: {% endif %}")

PRESETS: dict[str, dict] = {
    "tiny": {"n_embd": 64, "n_layer": 2, "n_head": 4, "n_head_kv": None, "n_ff": 128, "n_ctx": 512},
    "qwen2.5-7b": {"n_embd": 3584, "n_layer": 28, "n_head": 28, "n_head_kv": 4, "n_ff": 18944, "n_ctx": 32768,
                   "n_vocab": 152064, "rope_base": 1e6, "rms_eps": 1e-6, "qkv_bias": True, "chatml": True,
                   "quant": "Q4_K_M"},
}
SIZE_PRESET = {"tiny": "tiny", "full": "qwen2.5-7b"}  # the bench's --size -> preset


def _vocab(n_vocab: int | None, chatml: bool) -> tuple[list[str], list[int], int]:
    """(tokens, token types, eos id): SentencePiece-style with byte fallback, padded to ``n_vocab``."""
    import gguf

    byte_tokens = [f"<0x{b:02X}>" for b in range(256)]
    pieces = ["\u2581"] + [chr(c) for c in range(33, 127)]
    tokens = ["<unk>", "<s>", "</s>"] + byte_tokens + pieces
    types = ([gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
             + [gguf.TokenType.BYTE] * 256 + [gguf.TokenType.NORMAL] * len(pieces))
    eos = 2
    if chatml:
        tokens += ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
        types += [gguf.TokenType.CONTROL] * 3
        eos = len(tokens) - 1
    if n_vocab is not None:
        pad = n_vocab - len(tokens)
        if pad < 0:
            raise ValueError(f"n_vocab {n_vocab} < {len(tokens)} base tokens")
        # Dummy words (never produced by the tokenizer: "▁x" is not itself in the vocabulary).
        tokens += [f"\u2581x{i}" for i in range(pad)]
        types += [gguf.TokenType.NORMAL] * pad
    return tokens, [int(t) for t in types], eos


class _Block:
    """Random normal float16 values for any shape, cut from one pre-drawn block at random offsets."""

    def __init__(self, rng: np.random.Generator, n: int = 1 << 26, scale: float = 0.02) -> None:
        self.rng = rng
        self.data = (rng.standard_normal(n, dtype=np.float32) * scale).astype(np.float16)

    def __call__(self, *shape: int) -> np.ndarray:
        n = int(np.prod(shape))
        out = np.empty(n, dtype=np.float16)
        pos = 0
        while pos < n:
            off = int(self.rng.integers(0, len(self.data) // 2))
            take = min(n - pos, len(self.data) - off)
            out[pos:pos + take] = self.data[off:off + take]
            pos += take
        return out.reshape(shape)


def build(path: Path, preset: str = "tiny", *, n_embd: int | None = None, n_layer: int | None = None,
          n_head: int | None = None, n_ff: int | None = None, n_ctx: int | None = None, seed: int = 0,
          threads: int | None = None, log=print) -> Path:
    """Write the GGUF for ``preset`` (keyword arguments override its dimensions) at ``path``."""
    spec = dict(PRESETS[preset])
    for key, val in (("n_embd", n_embd), ("n_layer", n_layer), ("n_head", n_head), ("n_ff", n_ff), ("n_ctx", n_ctx)):
        if val is not None:
            spec[key] = val
    quant = spec.get("quant")
    path.parent.mkdir(parents=True, exist_ok=True)
    if not quant:
        _write(path, spec, seed, np.float32)
        return path
    tmp_f16 = path.with_name(path.name + ".f16.partial")
    tmp_q = path.with_name(path.name + ".partial")
    need = _param_count(spec) * 2 + (5 << 30)
    free = shutil.disk_usage(path.parent).free
    if free < need:
        raise OSError(f"building {preset} needs ~{need / 2**30:.0f} GiB free in {path.parent}, "
                      f"{free / 2**30:.0f} GiB there")
    try:
        log(f"  writing the float16 intermediate ({_param_count(spec) * 2 / 2**30:.1f} GiB)…")
        _write(tmp_f16, spec, seed, np.float16)
        log(f"  quantizing to {quant}…")
        _quantize(tmp_f16, tmp_q, quant, threads or os.cpu_count() or 1)
        tmp_q.replace(path)
    finally:
        tmp_f16.unlink(missing_ok=True)
        tmp_q.unlink(missing_ok=True)
    return path


def _param_count(spec: dict) -> int:
    tokens, _, _ = _vocab(spec.get("n_vocab"), spec.get("chatml", False))
    e, f, hkv = spec["n_embd"], spec["n_ff"], spec.get("n_head_kv") or spec["n_head"]
    kv = e // spec["n_head"] * hkv
    layer = 2 * e * e + 2 * e * kv + 3 * e * f
    return 2 * len(tokens) * e + spec["n_layer"] * layer


def _write(path: Path, spec: dict, seed: int, dtype) -> None:
    import gguf

    rng = np.random.default_rng(seed)
    n_embd, n_layer, n_head, n_ff = spec["n_embd"], spec["n_layer"], spec["n_head"], spec["n_ff"]
    n_head_kv = spec.get("n_head_kv") or n_head
    n_kv = n_embd // n_head * n_head_kv
    tokens, types, eos = _vocab(spec.get("n_vocab"), spec.get("chatml", False))
    n_vocab = len(tokens)

    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("random-llama-qwen2.5-7b-dims" if spec.get("chatml") else "tiny-random-llama")
    w.add_context_length(spec["n_ctx"])
    w.add_embedding_length(n_embd)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head_kv)
    w.add_rope_dimension_count(n_embd // n_head)
    if "rope_base" in spec:
        w.add_rope_freq_base(spec["rope_base"])
    w.add_layer_norm_rms_eps(spec.get("rms_eps", 1e-5))
    w.add_file_type(gguf.LlamaFileType.ALL_F32 if dtype == np.float32 else gguf.LlamaFileType.MOSTLY_F16)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores([0.0] * n_vocab)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(eos)
    w.add_unk_token_id(0)
    if spec.get("chatml"):
        w.add_add_bos_token(False)
    w.add_chat_template(CHATML if spec.get("chatml") else TINY_TEMPLATE)

    # Tensors in llama.cpp's order, as (name, shape, kind): "w" random matrix, "one" norm, "b" bias.
    plan: list[tuple[str, tuple[int, ...], str]] = [("token_embd.weight", (n_vocab, n_embd), "w"),
                                                    ("output_norm.weight", (n_embd,), "one"),
                                                    ("output.weight", (n_vocab, n_embd), "w")]
    for i in range(n_layer):
        b = f"blk.{i}."
        plan += [(b + "attn_norm.weight", (n_embd,), "one"),
                 (b + "attn_q.weight", (n_embd, n_embd), "w"),
                 (b + "attn_k.weight", (n_kv, n_embd), "w"),
                 (b + "attn_v.weight", (n_kv, n_embd), "w"),
                 (b + "attn_output.weight", (n_embd, n_embd), "w")]
        if spec.get("qkv_bias"):
            plan += [(b + "attn_q.bias", (n_embd,), "b"), (b + "attn_k.bias", (n_kv,), "b"),
                     (b + "attn_v.bias", (n_kv,), "b")]
        plan += [(b + "ffn_norm.weight", (n_embd,), "one"),
                 (b + "ffn_gate.weight", (n_ff, n_embd), "w"),
                 (b + "ffn_up.weight", (n_ff, n_embd), "w"),
                 (b + "ffn_down.weight", (n_embd, n_ff), "w")]

    if dtype == np.float32:  # small: fresh draws, all tensors in memory (the original tiny writer)
        for name, shape, kind in plan:
            if kind == "w":
                w.add_tensor(name, (rng.standard_normal(shape) * 0.05).astype(np.float32))
            elif kind == "one":
                w.add_tensor(name, np.ones(shape, dtype=np.float32))
            else:
                w.add_tensor(name, (rng.standard_normal(shape) * 0.02).astype(np.float32))
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        return

    # Large: declare every tensor, then stream them to the file one at a time (bounded memory).
    block = _Block(rng)

    def nbytes(shape: tuple[int, ...], kind: str) -> tuple[np.dtype, int]:
        dt = np.dtype(np.float16) if kind == "w" else np.dtype(np.float32)  # 1-D tensors stay f32
        return dt, int(np.prod(shape)) * dt.itemsize

    for name, shape, kind in plan:
        dt, n = nbytes(shape, kind)
        w.add_tensor_info(name, shape, dt, n)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    for _name, shape, kind in plan:
        if kind == "w":
            w.write_tensor_data(block(*shape))
        elif kind == "one":
            w.write_tensor_data(np.ones(shape, dtype=np.float32))
        else:
            w.write_tensor_data(block(*shape).astype(np.float32))
    w.close()


def _quantize(src: Path, dst: Path, quant: str, threads: int) -> None:
    import llama_cpp

    ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{quant}")
    params = llama_cpp.llama_model_quantize_default_params()
    params.nthread = threads
    params.ftype = ftype
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), llama_cpp.byref(params))
    if rc != 0:
        raise RuntimeError(f"llama_model_quantize({src.name} -> {quant}) failed with {rc}")
