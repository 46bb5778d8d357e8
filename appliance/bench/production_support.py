"""Constants and helpers shared by ``bench --production``'s stages and its report: the GPU's memory
readings, the speech clip, the production config."""

from __future__ import annotations

import contextlib
import os
import subprocess
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
