"""Which engines actually run: the configured ones where their weights are present, else the embedded
default for that role — plus the VRAM plan for the GPU box.

A production engine whose weights are missing or the wrong size (a quick check at start; `doctor`
and `models verify` hash them fully), or which asks for CUDA on a machine without a usable GPU,
falls back to the embedded default with a journal line (ENGINE_FALLBACK) and a doctor warning —
never a crash loop. This is a pure function of the config, the manifest and the models folder, so
it is tested without a GPU.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

from .. import logs
from ..config import Config
from ..models import Manifest, ModelError, check_file

log = logging.getLogger(__name__)

RTX3060_MB = 12288
HEADROOM_MB = 2048         # the product goal: <= 10 GB of the 3060's 12 GB
CUDA_CONTEXT_MB = 450      # one process' CUDA context + cuBLAS/cuDNN workspaces (estimate)


@dataclass(frozen=True)
class Fallback:
    role: str
    wanted: str
    using: str
    reason: str

    def describe(self) -> str:
        return f"{self.role}: {self.wanted} is not usable ({self.reason}); using {self.using}"


def _missing(manifest: Manifest, model_id: str, models_dir: Path) -> str:
    """'' when every file of the model is present with the right size, else why not."""
    try:
        model = manifest.get(model_id)
    except ModelError as e:
        return str(e)
    for f in model.files:
        st = check_file(model, f, models_dir, full=False)
        if not f.pinned and st.state in ("unpinned", "missing"):
            what = "has no recorded checksum" if st.state == "unpinned" else "is missing"
            return f"{f.name} {what} — bring it on a USB bundle, which checks and records its checksum " \
                   "(no checksum is published for it, so it is never downloaded)"
        if not st.ok:
            return f"{f.name} {'is missing' if st.state == 'missing' else 'has the wrong size'} — " \
                   f"run `avatar-kiosk models fetch {model.role}` or bring it on the USB stick"
    return ""


def cuda_available() -> bool:
    try:
        import ctranslate2

        return ctranslate2.get_cuda_device_count() > 0
    except Exception:  # noqa: BLE001 - any failure to talk to CUDA means: no GPU here
        return False


def resolve(cfg: Config, manifest: Manifest, models_dir: Path, *, gpu: bool | None = None) -> tuple[Config, list[Fallback]]:
    """The config with every unusable production choice replaced by its embedded default."""
    gpu = cuda_available() if gpu is None else gpu
    fallbacks: list[Fallback] = []
    emb = {role: ids["embedded"] for role, ids in manifest.roles.items()}

    why = _missing(manifest, cfg.stt.model, models_dir) or ("no CUDA GPU" if cfg.stt.device == "cuda" and not gpu else "")
    if why:
        fallbacks.append(Fallback("stt", f"{cfg.stt.model} on {cfg.stt.device}", f"{emb['stt']} on cpu", why))
        cfg = dataclasses.replace(cfg, stt=dataclasses.replace(cfg.stt, model=emb["stt"], device="cpu", compute_type="int8"))

    why = _missing(manifest, cfg.llm.model, models_dir)
    if why:
        fallbacks.append(Fallback("llm", cfg.llm.model, emb["llm"], why))
        cfg = dataclasses.replace(cfg, llm=dataclasses.replace(cfg.llm, model=emb["llm"], n_gpu_layers=0))
    elif cfg.llm.n_gpu_layers != 0 and not gpu:
        fallbacks.append(Fallback("llm", f"{cfg.llm.model} on the GPU", f"{cfg.llm.model} on the CPU", "no CUDA GPU"))
        cfg = dataclasses.replace(cfg, llm=dataclasses.replace(cfg.llm, n_gpu_layers=0))

    if cfg.tts.engine == "xtts":
        why = _missing(manifest, cfg.tts.model, models_dir)
        if not why:
            try:
                import TTS  # noqa: F401 - the coqui-tts package (the gpu extra)
            except ImportError:
                why = "coqui-tts is not installed (pip install '.[gpu]')"
        if why:
            fallbacks.append(Fallback("tts", f"xtts ({cfg.tts.model})", "piper-espeak", why))
            cfg = dataclasses.replace(cfg, tts=dataclasses.replace(cfg.tts, engine="piper-espeak", device="cpu"))

    if cfg.face.engine == "neural-lipsync":
        why = _missing(manifest, cfg.face.lipsync_model, models_dir)
        if why:
            fallbacks.append(Fallback("face", f"neural-lipsync ({cfg.face.lipsync_model})", "mesh-warp", why))
            cfg = dataclasses.replace(cfg, face=dataclasses.replace(cfg.face, engine="mesh-warp"))

    for fb in fallbacks:
        log.warning("engine fallback: %s", fb.describe(), extra=logs.fields(logs.ENGINE_FALLBACK, stage=fb.role))
    return cfg, fallbacks


@dataclass(frozen=True)
class VramPlan:
    """Load order and footprint of the GPU engines; ``fits`` against the budget with headroom."""

    items: tuple[tuple[str, int], ...]  # (what, MB) in load order
    total_mb: int
    budget_mb: int

    @property
    def fits(self) -> bool:
        return self.total_mb <= self.budget_mb

    def describe(self) -> str:
        parts = ", ".join(f"{name} {mb} MB" for name, mb in self.items)
        verdict = "fits" if self.fits else "DOES NOT FIT"
        return f"VRAM plan: {parts} = {self.total_mb} MB of {self.budget_mb} MB budget: {verdict}"


class VramError(RuntimeError):
    """The configured GPU engines do not fit this GPU's memory: said on the maintenance screen."""


def gpu_total_mb() -> int | None:
    """The first NVIDIA GPU's memory in MB (nvidia-smi), None when there is none or no driver."""
    import shutil
    import subprocess

    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=5).stdout.split()
        return int(out[0]) if out and out[0].isdigit() else None
    except (OSError, subprocess.SubprocessError):
        return None


def check_vram(cfg: Config, manifest: Manifest, total_mb: int | None = None) -> VramPlan:
    """Before any engine loads: the plan for this GPU (its real size when nvidia-smi answers, else a
    3060's), or VramError — a box whose engines would run out of GPU memory mid-conversation must
    say so on screen at start instead of crashing in the first reply."""
    plan = vram_plan(cfg, manifest, total_mb or gpu_total_mb() or RTX3060_MB)
    if plan.items and not plan.fits:
        raise VramError(f"the GPU engines need {plan.total_mb} MB but this GPU allows {plan.budget_mb} MB "
                        f"({plan.describe()}) — use smaller models, fewer GPU engines or a shorter llm.n_ctx "
                        "in config.toml")
    return plan


def vram_plan(cfg: Config, manifest: Manifest, gpu_total_mb: int = RTX3060_MB) -> VramPlan:
    """Largest first (the LLM wants one contiguous block), then TTS, STT, lip-sync; each engine is
    warmed up right after loading so its workspaces are counted before the next one loads."""
    items: list[tuple[str, int]] = []
    if cfg.llm.n_gpu_layers != 0:
        m = manifest.get(cfg.llm.model)
        kv_mb = cfg.llm.n_ctx * 56 // 1024  # ~56 KB/token of fp16 KV cache for a 7B GQA model (Qwen2.5-7B)
        items.append((f"llm {m.id}", m.vram_mb + kv_mb))
    if cfg.tts.engine == "xtts" and cfg.tts.device == "cuda":
        items.append((f"tts {cfg.tts.model}", manifest.get(cfg.tts.model).vram_mb))
    if cfg.stt.device == "cuda":
        items.append((f"stt {cfg.stt.model}", manifest.get(cfg.stt.model).vram_mb))
    if cfg.face.engine == "neural-lipsync":
        items.append((f"lipsync {cfg.face.lipsync_model}", manifest.get(cfg.face.lipsync_model).vram_mb))
    if items:
        items.insert(0, ("cuda context", CUDA_CONTEXT_MB))
    total = sum(mb for _, mb in items)
    return VramPlan(tuple(items), total, gpu_total_mb - HEADROOM_MB)
