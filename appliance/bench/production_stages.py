"""The stages of ``bench --production``: each builds its production-size model once, loads it through
the real engine class and times it (see :mod:`.production`)."""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from .production_support import (
    CLIP_S,
    GEN_TOKENS,
    PERSONA,
    PROMPT_TOKENS,
    QUESTIONS,
    SENTENCE_TOKENS,
    TTS_SENTENCE,
    WORDS_PER_S,
    Gpu,
    StageSkipped,
    _p50,
    _speech_clip,
    _voice_wavs,
)


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
        llm.forget_prefixes()
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
