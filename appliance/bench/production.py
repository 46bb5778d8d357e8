"""``avatar-kiosk bench --production``: the production engines at production size, random weights.

The real weights (Qwen2.5-7B Q4_K_M, XTTS-v2, faster-whisper small, Wav2Lip) cannot be fetched
everywhere, but latency does not depend on weight values: each stage builds (once, cached under
``<cache_dir>/bench-models``) a model of the production architecture and size with random weights,
loads it through the real engine class with the production settings, warms it up and times it.

* STT  — :class:`~appliance.engines.stt_whisper.WhisperSTT`, whisper-small dims, int8_float16 on
  CUDA / int8 on the CPU, the config's beam size; a 3 s clip with en/ru language choice.
* LLM  — :class:`~appliance.engines.llm_llama.LlamaPersonaLLM`, llama architecture at Qwen2.5-7B
  dims in Q4_K_M, all layers offloaded on CUDA, the config's n_ctx; a ~300-token system+user prompt,
  cold (whole prompt evaluated) and with the persona prefix cached as the daemon keeps it.
* TTS  — :class:`~appliance.engines.tts_xtts.XttsTTS`, XTTS-v2 dims; speaker latents computed from a
  few seconds of speech first, then one ~12-word sentence streamed.
* Lip-sync — :class:`~appliance.engines.lipsync_onnx.NeuralLipsync` on a Wav2Lip-architecture ONNX,
  a 512×512 frame with a 256 px face box.

On CUDA each stage's VRAM footprint is read (torch's allocator for XTTS, the process' memory from
NVML / nvidia-smi for all) and the engines stay loaded, as on the box, so the total is real; it is
printed next to :func:`appliance.engines.select.vram_plan`'s estimate. ``--size tiny`` builds toy
models of the same architectures (for tests); ``--stages`` picks stages.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from .production_stages import STAGE_FUNCS, Context
from .production_support import (
    GOALS,
    LOAD_ORDER,
    SENTENCE_TOKENS,
    STAGES,
    Gpu,
    StageSkipped,
    _cuda_available,
    _production_config,
)


# ------------------------------------------------------------------------------------ report
def _fmt(v, spec: str = ".0f") -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "—"
    return format(v, spec)


def _table(res: dict) -> list[str]:
    rows: list[tuple[str, str, str, str]] = []
    st = res["stages"]
    if "stt" in st and "error" not in st["stt"]:
        s = st["stt"]
        rows += [("STT", f"transcribe {s['clip']} ({s['compute_type']}, beam {s['beam_size']})",
                  _fmt(s["transcribe_s"] * 1000), "ms")]
    if "llm" in st and "error" not in st["llm"]:
        s = st["llm"]
        rows += [("LLM", f"first token, cold ({s['prompt_tokens']}-token prompt)", _fmt(s["first_token_s"] * 1000), "ms"),
                 ("LLM", f"first {SENTENCE_TOKENS}-token sentence, cold", _fmt(s["first_sentence_s"] * 1000), "ms"),
                 ("LLM", f"first token, persona prefix cached ({s['prefix_tokens']} tokens)",
                  _fmt(s["cached_first_token_s"] * 1000), "ms"),
                 ("LLM", f"first {SENTENCE_TOKENS}-token sentence, prefix cached",
                  _fmt(s["cached_first_sentence_s"] * 1000), "ms"),
                 ("LLM", f"generation ({_fmt(s['generated_tokens'])} tokens)", _fmt(s["tokens_per_s"], ".1f"),
                  "tokens/s")]
    if "tts" in st and "error" not in st["tts"]:
        s = st["tts"]
        rows += [("TTS", f"first audio chunk ({s['stream_chunk_size']} GPT tokens)", _fmt(s["first_chunk_s"] * 1000), "ms"),
                 ("TTS", f"real-time factor ({_fmt(s['audio_s'], '.1f')} s of audio)", _fmt(s["rtf"], ".2f"), "x"),
                 ("TTS", "speaker latents (once, at provisioning)", _fmt(s["latents_s"] * 1000), "ms")]
    if "lipsync" in st and "error" not in st["lipsync"]:
        s = st["lipsync"]
        rows += [("lip-sync", f"NeuralLipsync.apply, 512x512 frame, {s['box_px']} px face",
                  _fmt(s["ms_per_frame"], ".1f"), "ms/frame")]
    for name in STAGES:
        s = st.get(name, {})
        if s.get("load_s") is not None and "error" not in s:
            rows.append((name if name != "lipsync" else "lip-sync", "load + warm-up", _fmt(s["load_s"], ".1f"), "s"))
    w = max([len(r[1]) for r in rows] + [10])
    out = [f"{'stage':9s} {'measure (p50)':{w}s} {'value':>9s}  unit", "-" * (w + 28)]
    out += [f"{a:9s} {b:{w}s} {c:>9s}  {d}" for a, b, c, d in rows]
    return out


def _summary(res: dict, eos_s: float) -> dict:
    st = res["stages"]
    ok = {k: v for k, v in st.items() if "error" not in v}
    out: dict = {"eos_s": eos_s, "goals": GOALS}
    parts = {"stt": ("stt", "transcribe_s"), "llm": ("llm", "cached_first_sentence_s"),
             "tts": ("tts", "first_chunk_s")}
    missing = [k for k in parts if k not in ok]
    if not missing:
        vals = {k: ok[s][f] for k, (s, f) in parts.items()}
        out["ttfa_parts_s"] = vals
        out["ttfa_s"] = eos_s + sum(vals.values())
        out["ttfa_met"] = out["ttfa_s"] <= GOALS["ttfa_s"]
    else:
        out["ttfa_missing"] = missing
    if "lipsync" in ok:
        out["lipsync_met"] = ok["lipsync"]["ms_per_frame"] <= GOALS["lipsync_ms"]
    return out


def run(settings, args) -> int:
    size = getattr(args, "size", None) or "full"
    device = getattr(args, "device", None) or "cuda"
    reps = max(1, int(getattr(args, "reps", None) or 3))
    stages_arg = getattr(args, "stages", None) or ",".join(STAGES)
    wanted = [s.strip() for s in stages_arg.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in STAGES]
    if unknown:
        print(f"unknown stage(s) {unknown}; choose from {','.join(STAGES)}", file=sys.stderr)
        return 2
    if device == "cuda" and not _cuda_available():
        print("note: no CUDA GPU here — running on the CPU (--device cpu)")
        device = "cpu"
    settings.paths.ensure()
    gpu = Gpu(device == "cuda")
    ctx = Context(settings, size, device, reps, gpu)
    print(f"production engines, random weights, production-size architectures — size {size}, device {device}, "
          f"{reps} rep(s) per figure (p50)")
    print(f"models cached in {ctx.cache}; stages: {', '.join(s for s in LOAD_ORDER if s in wanted)}")
    res: dict = {"kind": "random weights, production-size architectures", "size": size, "device": device,
                 "reps": reps, "cpu_count": os.cpu_count(), "stages": {}}
    rc = 0
    for name in LOAD_ORDER:
        if name not in wanted:
            continue
        print(f"[{name}]", flush=True)
        t = time.perf_counter()
        try:
            r = STAGE_FUNCS[name](ctx)
            ctx.say(f"done in {time.perf_counter() - t:.1f} s ({r.get('model', '')})")
        except StageSkipped as e:
            ctx.say(f"skipped: {e}")
            r = {"error": str(e), "skipped": True}
        except Exception as e:  # noqa: BLE001 - one broken stage must not hide the others
            ctx.say(f"FAILED: {type(e).__name__}: {e}")
            r = {"error": f"{type(e).__name__}: {e}"}
            rc = 1
        res["stages"][name] = r

    print()
    print(f"== production bench: random weights, production-size architectures "
          f"(size {size}, device {device}, {os.cpu_count()} CPU cores) ==")
    for line in _table(res):
        print(line)
    for name in STAGES:
        if name in res["stages"] and "error" in res["stages"][name]:
            print(f"{name}: not measured — {res['stages'][name]['error']}")

    if device == "cuda":
        _print_vram(res, settings, device, gpu)
    else:
        with contextlib.suppress(Exception):
            from ..engines.select import vram_plan
            from ..models import load_manifest

            plan = vram_plan(_production_config(settings, "cuda"), load_manifest(settings.paths.manifest))
            print(f"\nVRAM: not measured on the CPU; estimate for the GPU box — {plan.describe()}")
    eos_s = settings.config.vad.end_silence_ms / 1000.0
    summ = res["summary"] = _summary(res, eos_s)
    print()
    if "ttfa_s" in summ:
        p = summ["ttfa_parts_s"]
        verdict = "met" if summ["ttfa_met"] else "NOT met"
        where = "" if device == "cuda" else f" (the goal is for a 3060-class GPU; this ran on {device})"
        print(f"projected time to first audio: end-of-speech {eos_s * 1000:.0f} ms + STT {p['stt'] * 1000:.0f} ms"
              f" + LLM first sentence (prefix cached) {p['llm'] * 1000:.0f} ms + TTS first chunk {p['tts'] * 1000:.0f} ms"
              f" = {summ['ttfa_s'] * 1000:.0f} ms; goal <= {GOALS['ttfa_s'] * 1000:.0f} ms: {verdict}{where}")
    else:
        print(f"projected time to first audio: needs stt, llm and tts (missing: {', '.join(summ['ttfa_missing'])})")
    if "lipsync_met" in summ:
        fps = res["stages"]["lipsync"]["ms_per_frame"]
        print(f"lip-sync: {fps:.1f} ms/frame; goal 25 FPS -> <= {GOALS['lipsync_ms']:.0f} ms/frame: "
              f"{'met' if summ['lipsync_met'] else 'NOT met'}")
    if "vram" in res and res["vram"].get("total_mb") is not None:
        v = res["vram"]
        print(f"VRAM: {v['total_mb']:.0f} MB measured; goal <= {GOALS['vram_mb']} MB: "
              f"{'met' if v['total_mb'] <= GOALS['vram_mb'] else 'NOT met'}")
    print("(random weights: the LLM and STT decode garbage and XTTS never emits its stop token, so the "
          "decodes run to their caps and the TTS audio is cut at the sentence's natural length)")

    json_path = getattr(args, "json", None)
    if json_path:
        Path(json_path).write_text(json.dumps(res, indent=2, default=str))
        print(f"figures: {json_path}", file=sys.stderr)
    return rc


def _print_vram(res: dict, settings, device: str, gpu: Gpu) -> None:
    from ..engines.select import vram_plan
    from ..models import load_manifest

    plan = vram_plan(_production_config(settings, device), load_manifest(settings.paths.manifest))
    per = {name: res["stages"][name].get("vram_mb") for name in LOAD_ORDER if name in res["stages"]}
    total = gpu.process_mb()
    res["vram"] = {"how": gpu.how, "per_stage_mb": per, "total_mb": total,
                   "plan": {"items": [list(i) for i in plan.items], "total_mb": plan.total_mb,
                            "budget_mb": plan.budget_mb}}
    tts = res["stages"].get("tts", {})
    print()
    print(f"VRAM ({gpu.how}; the first stage loaded also carries the CUDA context):")
    for name, mb in per.items():
        est = next((m for what, m in plan.items if what.startswith(name + " ")), None)
        extra = ""
        if name == "tts" and "torch_peak_mb" in tts:
            extra = f" (torch allocated {tts['torch_allocated_mb']:.0f} MB, peak {tts['torch_peak_mb']:.0f} MB)"
        print(f"  {name:9s} {_fmt(mb):>7s} MB measured   {_fmt(est):>7s} MB planned{extra}")
    print(f"  {'total':9s} {_fmt(total):>7s} MB measured   {plan.total_mb:>7d} MB planned "
          f"(budget {plan.budget_mb} MB)")
    print(f"  {plan.describe()}")
