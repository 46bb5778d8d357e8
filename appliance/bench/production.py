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
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

STAGES = ("stt", "llm", "tts", "lipsync")           # pipeline order (the table)
LOAD_ORDER = ("llm", "tts", "stt", "lipsync")       # vram_plan's order: largest first
GOALS = {"ttfa_s": 1.0, "lipsync_ms": 40.0, "vram_mb": 10240}
CLIP_S = 3.0
PROMPT_TOKENS = 300
GEN_TOKENS = 64
SENTENCE_TOKENS = 12
TTS_SENTENCE = "The nearest star to our Sun is about four light years away from us."  # 13 words
WORDS_PER_S = 2.7  # conversational speech; where random weights never stop, audio is cut there
PERSONA = (
    "You are Anna, a friendly guide at the city science museum. You talk with visitors of every age "
    "at a kiosk in the main hall. Answer in the visitor's language, English or Russian. Keep every "
    "answer short: one to three sentences, plain words, no lists, no markdown, no emoji, because your "
    "answer is spoken aloud. If you do not know something, say so honestly and suggest asking the staff "
    "at the information desk. The museum is open from nine to six, every day except Monday. The planetarium "
    "shows start every hour on the hour; tickets are sold at the entrance. The cafe is on the second floor "
    "next to the space hall. Children under seven enter for free. Never give medical, legal or financial "
    "advice. Never ask for personal details. Be warm, curious and a little playful, and encourage the "
    "visitor to explore the exhibits about space, the human body and the history of flight. "
) * 4
QUESTIONS = ["Why is the sky blue?", "How far away is the moon from the earth?",
             "What do astronauts eat in space?", "When does the next planetarium show start?"]


class StageSkipped(Exception):
    """A stage that cannot run here (missing package, no model builder): printed, the rest goes on."""


# ------------------------------------------------------------------------------------ helpers
def _p50(values: list[float]) -> float:
    return float(np.percentile(values, 50)) if values else float("nan")


def _cuda_available() -> bool:
    with contextlib.suppress(Exception):
        import torch

        if torch.cuda.is_available():
            return True
    from ..engines.select import cuda_available

    return cuda_available()


class Gpu:
    """VRAM readings; every call is guarded and returns None where nothing can be read."""

    def __init__(self, on: bool) -> None:
        self.on = on
        self.nvml = None
        self.handle = None
        self.how = "none"
        if not on:
            return
        try:
            import pynvml

            pynvml.nvmlInit()
            idx = int((os.environ.get("CUDA_VISIBLE_DEVICES") or "0").split(",")[0] or 0)
            self.handle = pynvml.nvmlDeviceGetHandleByIndex(idx)
            self.nvml = pynvml
            self.how = "nvml"
        except Exception:  # noqa: BLE001 - no pynvml, or no driver
            self.how = "nvidia-smi"

    def process_mb(self) -> float | None:
        """This process' GPU memory (MB), or the device's used memory where per-process is unavailable."""
        if not self.on:
            return None
        pid = os.getpid()
        if self.nvml is not None:
            try:
                procs = self.nvml.nvmlDeviceGetComputeRunningProcesses(self.handle)
                for p in procs:
                    if p.pid == pid and p.usedGpuMemory is not None:
                        return p.usedGpuMemory / 2**20
                if not procs:
                    return 0.0
                return self.nvml.nvmlDeviceGetMemoryInfo(self.handle).used / 2**20
            except Exception:  # noqa: BLE001
                pass
        try:
            out = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                                 capture_output=True, text=True, timeout=10).stdout
            for line in out.splitlines():
                parts = [x.strip() for x in line.split(",")]
                if len(parts) == 2 and parts[0] == str(pid):
                    return float(parts[1])
            return 0.0 if out.strip() == "" else None
        except Exception:  # noqa: BLE001 - no nvidia-smi
            return None

    @staticmethod
    def torch_mb() -> tuple[float, float] | None:
        """(allocated, peak allocated) of torch's CUDA allocator, MB."""
        try:
            import torch

            if not torch.cuda.is_available():
                return None
            torch.cuda.synchronize()
            return torch.cuda.memory_allocated() / 2**20, torch.cuda.max_memory_allocated() / 2**20
        except Exception:  # noqa: BLE001
            return None

    @staticmethod
    def torch_reset_peak() -> None:
        with contextlib.suppress(Exception):
            import torch

            if torch.cuda.is_available():
                torch.cuda.reset_peak_memory_stats()


def _speech_clip(settings, seconds: float = CLIP_S) -> tuple[np.ndarray, str]:
    """``seconds`` of 16 kHz int16 speech (the repo's piper voice), or noise if piper cannot run."""
    from ..audio.resample import resample
    from ..audio.wav import to_int16

    n = int(seconds * 16000)
    try:
        from ..engines.tts_piper import PiperEspeakTTS

        tts = PiperEspeakTTS.from_settings(settings)
        text = "Hello! Could you tell me how far away the moon is, and what astronauts eat in space?"
        audio = to_int16(resample(np.concatenate(list(tts.synthesize(text, "en"))), tts.sample_rate, 16000))
        what = "piper speech"
    except Exception as e:  # noqa: BLE001 - any failure: noise is an acceptable stand-in
        audio = (np.random.default_rng(0).standard_normal(n) * 3000).astype(np.int16)
        what = f"noise ({type(e).__name__})"
    if len(audio) < n:
        audio = np.concatenate([audio, np.zeros(n - len(audio), np.int16)])
    return audio[:n], what


def _voice_wavs(settings, tmp: Path) -> list[Path]:
    """A few seconds of speech for XTTS' speaker latents: the demo voice samples, else piper speech."""
    from ..demo import pick_voice_samples

    with contextlib.suppress(Exception):
        return pick_voice_samples(total_s=10)
    from ..audio.wav import write_wav

    clip, _ = _speech_clip(settings, 6.0)
    path = tmp / "voice.wav"
    write_wav(path, clip, 16000)
    return [path]


def _production_config(settings, device: str):
    from .. import config

    cfg = settings.config
    gpu = device == "cuda"
    cfg = config.replace(cfg, "stt", model="faster-whisper-small", device=device,
                         compute_type="int8_float16" if gpu else "int8")
    cfg = config.replace(cfg, "llm", model="qwen2.5-7b-instruct-q4km", n_gpu_layers=-1 if gpu else 0)
    cfg = config.replace(cfg, "tts", engine="xtts", device=device)
    return config.replace(cfg, "face", engine="neural-lipsync")


# ------------------------------------------------------------------------------------ stages
class Context:
    def __init__(self, settings, size: str, device: str, reps: int, gpu: Gpu) -> None:
        self.settings = settings
        self.size = size
        self.device = device
        self.reps = reps
        self.gpu = gpu
        self.cache = settings.paths.cache_dir / "bench-models"
        self.keep: list = []  # engines kept loaded on CUDA so the VRAM total is real
        self._clip: tuple[np.ndarray, str] | None = None
        self.tmp = Path(tempfile.mkdtemp(prefix="bench-production-"))

    def clip(self) -> tuple[np.ndarray, str]:
        if self._clip is None:
            self._clip = _speech_clip(self.settings)
        return self._clip

    def say(self, msg: str) -> None:
        print(f"  {msg}", flush=True)


def _need(module: str, why: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise StageSkipped(f"{why}: {e}") from e


def _build_once(ctx: Context, res: dict, name: str, built: bool, build) -> None:
    """Build a stage's random-weight model unless the cache has it (minutes for the 7B)."""
    if built:
        return
    ctx.say(f"building {name} (once; cached) …")
    t = time.perf_counter()
    build()
    res["build_s"] = time.perf_counter() - t


def stage_stt(ctx: Context) -> dict:
    _need("faster_whisper", "faster-whisper is not installed")
    _need("transformers", "transformers is not installed (the gpu extra) — needed to build the model")
    from ..engines.stt_whisper import WhisperSTT
    from .models import whisper_ct2

    res: dict = {"model": f"whisper {'small' if ctx.size == 'full' else 'tiny'} dims, CTranslate2"}
    folder = ctx.cache / f"whisper-{ctx.size}"
    _build_once(ctx, res, folder.name, whisper_ct2.is_built(folder),
                lambda: whisper_ct2.build(folder, ctx.size, tokenizer_from=whisper_ct2.embedded_folder(ctx.settings)))
    cfg = ctx.settings.config.stt
    compute = "int8_float16" if ctx.device == "cuda" else "int8"
    before = ctx.gpu.process_mb()
    t = time.perf_counter()
    stt = WhisperSTT(folder, device=ctx.device, compute_type=compute, threads=cfg.threads,
                     beam_size=cfg.beam_size, language=cfg.language)
    if hasattr(stt, "set_names"):
        stt.set_names(["Anna", "Анна"])  # the persona's name hints, as the daemon sets them
    stt.warm()
    res["load_s"] = time.perf_counter() - t
    clip, what = ctx.clip()
    languages = ("en", "ru") if cfg.language == "auto" else (cfg.language,)
    times = []
    for _ in range(ctx.reps):
        t = time.perf_counter()
        stt.transcribe(clip, languages, None)
        times.append(time.perf_counter() - t)
    res.update(compute_type=compute, beam_size=cfg.beam_size, clip=f"{CLIP_S:.0f} s {what}",
               languages=list(languages), transcribe_s=_p50(times), runs=times)
    res["vram_mb"] = _delta(before, ctx.gpu.process_mb())
    _keep_or_drop(ctx, stt)
    return res


def stage_llm(ctx: Context) -> dict:
    _need("llama_cpp", "llama-cpp-python is not installed")
    _need("gguf", "the gguf package is not installed (the test and gpu extras) — needed to build the model")
    import llama_cpp

    from ..engines.llm_llama import LlamaPersonaLLM, _common_prefix
    from ..messages import ChatMessage
    from .models import llama_gguf

    preset = llama_gguf.SIZE_PRESET[ctx.size]
    res: dict = {"model": f"llama arch at {preset} dims" + (" Q4_K_M" if preset != "tiny" else " f32")}
    path = ctx.cache / f"llm-{preset}" / "model.gguf"
    _build_once(ctx, res, path.parent.name, path.is_file(), lambda: llama_gguf.build(path, preset, log=ctx.say))
    res["file_mb"] = path.stat().st_size / 2**20
    cfg = ctx.settings.config.llm
    gpu_layers = -1 if ctx.device == "cuda" else 0
    if ctx.device == "cuda" and not llama_cpp.llama_supports_gpu_offload():
        ctx.say("note: this llama-cpp-python build has no GPU offload: the layers run on the CPU")
        res["note"] = "llama-cpp-python without GPU offload"
    before = ctx.gpu.process_mb()
    t = time.perf_counter()
    llm = LlamaPersonaLLM(path, n_ctx=cfg.n_ctx, threads=cfg.threads, n_gpu_layers=gpu_layers,
                          max_tokens=4, temperature=cfg.temperature, repeat_penalty=cfg.repeat_penalty)
    system = _fit_system_prompt(llm, ChatMessage, QUESTIONS[0])
    # warm-up with a prompt of the measured size: kernels, compute buffers, a full-size batch
    list(llm.generate([ChatMessage("system", system), ChatMessage("user", QUESTIONS[-1])], threading.Event()))
    res["load_s"] = time.perf_counter() - t
    prompt_tokens = len(llm._format([ChatMessage("system", system), ChatMessage("user", QUESTIONS[0])]))
    a = llm._format([ChatMessage("system", system), ChatMessage("user", "Hi")])
    prefix_tokens = _common_prefix(a, llm._format([ChatMessage("system", system), ChatMessage("user", "What?")]))
    llm.max_tokens = GEN_TOKENS

    # Token times are taken where llama-cpp-python samples each token: the text pieces the engine
    # yields can lag behind them (random byte tokens make incomplete UTF-8 that is held back).
    sampled: list[float] = []
    original_sample = llm.llm.sample

    def sample(*a, **k):
        token = original_sample(*a, **k)
        sampled.append(time.perf_counter())
        return token

    llm.llm.sample = sample

    def one(question: str) -> dict:
        sampled.clear()
        first_piece = None
        t0 = time.perf_counter()
        for _piece in llm.generate([ChatMessage("system", system), ChatMessage("user", question)], threading.Event()):
            if first_piece is None:
                first_piece = time.perf_counter() - t0
        stamps = [x - t0 for x in sampled]
        if not stamps:
            return {}
        n = len(stamps)
        return {"first_token_s": stamps[0], "first_sentence_s": stamps[min(SENTENCE_TOKENS, n) - 1],
                "first_text_piece_s": first_piece, "tokens": n,
                "tokens_per_s": (n - 1) / (stamps[-1] - stamps[0]) if n > 1 else float("nan")}

    cold, warm = [], []
    for i in range(ctx.reps):  # cold: the whole prompt evaluated (no KV reuse)
        llm.llm.reset()
        llm._prefix_tokens, llm._prefix_state = [], None
        cold.append(one(QUESTIONS[i % len(QUESTIONS)]))
    llm.warm([ChatMessage("system", system)])  # the daemon's start-up: persona prefix evaluated once
    for i in range(ctx.reps):
        warm.append(one(QUESTIONS[(i + 1) % len(QUESTIONS)]))
    cold, warm = [r for r in cold if r], [r for r in warm if r]
    if not cold:
        raise RuntimeError("the LLM produced no tokens")
    res.update(n_ctx=cfg.n_ctx, n_gpu_layers=gpu_layers, threads=cfg.threads, prompt_tokens=prompt_tokens,
               prefix_tokens=prefix_tokens,
               first_token_s=_p50([r["first_token_s"] for r in cold]),
               first_sentence_s=_p50([r["first_sentence_s"] for r in cold]),
               tokens_per_s=_p50([r["tokens_per_s"] for r in cold + warm]),
               generated_tokens=_p50([r["tokens"] for r in cold + warm]),
               cached_first_token_s=_p50([r["first_token_s"] for r in warm]),
               cached_first_sentence_s=_p50([r["first_sentence_s"] for r in warm]),
               runs={"cold": cold, "prefix_cached": warm})
    res["vram_mb"] = _delta(before, ctx.gpu.process_mb())
    _keep_or_drop(ctx, llm)
    return res


def _fit_system_prompt(llm, ChatMessage, question: str, target: int = PROMPT_TOKENS) -> str:
    """The longest prefix of PERSONA (whole words) with system + user <= ``target`` tokens."""
    words = PERSONA.split()
    lo, hi = 1, len(words)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        n = len(llm._format([ChatMessage("system", " ".join(words[:mid])), ChatMessage("user", question)]))
        if n <= target:
            lo = mid
        else:
            hi = mid - 1
    return " ".join(words[:lo])


def stage_tts(ctx: Context) -> dict:
    _need("TTS", "coqui-tts is not installed (the gpu extra)")
    from ..engines.tts_xtts import XttsTTS
    from .models import xtts

    res: dict = {"model": f"XTTS {'v2' if ctx.size == 'full' else 'tiny'} dims"}
    folder = ctx.cache / f"xtts-{ctx.size}"
    _build_once(ctx, res, folder.name, xtts.is_built(folder), lambda: xtts.build(folder, ctx.size))
    before = ctx.gpu.process_mb()
    Gpu.torch_reset_peak()
    torch_before = Gpu.torch_mb()
    t = time.perf_counter()
    tts = XttsTTS(folder, device=ctx.device)
    res["load_s"] = time.perf_counter() - t
    res["device"] = tts.device
    t = time.perf_counter()
    tts.compute_latents(_voice_wavs(ctx.settings, ctx.tmp))
    res["latents_s"] = time.perf_counter() - t
    for _chunk in tts.synthesize("Hello there.", "en"):  # warm-up
        break
    cut_s = len(TTS_SENTENCE.split()) / WORDS_PER_S
    firsts, rtfs, audio_s = [], [], []
    for _ in range(ctx.reps):
        n = 0
        t0 = time.perf_counter()
        first = None
        gen = tts.synthesize(TTS_SENTENCE, "en")
        for chunk in gen:
            if first is None:
                first = time.perf_counter() - t0
            n += len(chunk)
            if n / tts.sample_rate >= cut_s:
                break
        gen.close()
        total = time.perf_counter() - t0
        secs = n / tts.sample_rate
        firsts.append(first if first is not None else float("nan"))
        audio_s.append(secs)
        rtfs.append(total / secs if secs > 0 else float("nan"))
    res.update(sentence=TTS_SENTENCE, stream_chunk_size=tts.stream_chunk_size, first_chunk_s=_p50(firsts),
               rtf=_p50(rtfs), audio_s=_p50(audio_s), audio_cut_s=cut_s, runs={"first_chunk_s": firsts, "rtf": rtfs})
    tb = Gpu.torch_mb()
    if tb is not None:
        res["torch_allocated_mb"] = tb[0] - (torch_before[0] if torch_before else 0.0)
        res["torch_peak_mb"] = tb[1]
    res["vram_mb"] = _delta(before, ctx.gpu.process_mb())
    _keep_or_drop(ctx, tts)
    return res


def stage_lipsync(ctx: Context) -> dict:
    _need("onnxruntime", "onnxruntime is not installed")
    _need("cv2", "opencv is not installed")
    try:
        from .models import wav2lip
    except ImportError as e:
        raise StageSkipped(f"appliance.bench.models.wav2lip: not built ({e})") from e
    from ..engines.lipsync_onnx import LipsyncModel, NeuralLipsync

    res: dict = {"model": f"Wav2Lip {'96 (36.3 M params)' if ctx.size == 'full' else 'tiny'} ONNX"}
    path = ctx.cache / f"wav2lip-{ctx.size}" / "wav2lip.onnx"
    path.parent.mkdir(parents=True, exist_ok=True)
    _build_once(ctx, res, path.parent.name, path.is_file(), lambda: wav2lip.build(path, ctx.size))
    before = ctx.gpu.process_mb()
    t = time.perf_counter()
    model = LipsyncModel(path, device=ctx.device)
    res["load_s"] = time.perf_counter() - t
    res["providers"] = list(model.providers)
    if ctx.device == "cuda" and "CUDAExecutionProvider" not in model.providers:
        ctx.say("note: onnxruntime has no CUDA provider here (onnxruntime-gpu not installed): runs on the CPU")
    lips = NeuralLipsync(model)
    clip, _ = ctx.clip()
    lips.set_speech(clip, 0.0)
    frame = (np.random.default_rng(0).random((512, 512, 3)) * 200 + 30).astype(np.uint8)
    box = (128, 128, 384, 384)
    for i in range(3):  # warm-up
        lips.apply(frame, box, 0.5 + i * 0.04)
    times = []
    n_frames = max(10, 10 * ctx.reps)
    for i in range(n_frames):
        tt = 0.2 + (i % 60) * 0.04
        t = time.perf_counter()
        lips.apply(frame, box, tt)
        times.append(time.perf_counter() - t)
    res.update(frame="512x512", box_px=box[2] - box[0], frames=n_frames, ms_per_frame=_p50(times) * 1000,
               p95_ms=float(np.percentile(times, 95)) * 1000)
    res["vram_mb"] = _delta(before, ctx.gpu.process_mb())
    _keep_or_drop(ctx, model)
    return res


STAGE_FUNCS = {"stt": stage_stt, "llm": stage_llm, "tts": stage_tts, "lipsync": stage_lipsync}


def _delta(before: float | None, after: float | None) -> float | None:
    return None if before is None or after is None else after - before


def _keep_or_drop(ctx: Context, engine) -> None:
    if ctx.device == "cuda":
        ctx.keep.append(engine)  # as on the box: every engine resident at once
    else:
        del engine
        import gc

        gc.collect()


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
