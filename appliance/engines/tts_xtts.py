"""Voice-cloning TTS for the GPU box: Coqui XTTS-v2 (the maintained ``coqui-tts`` package).

* Loaded only from the local model folder (manifest id ``xtts-v2``: config.json, model.pth, vocab.json;
  speakers_xtts.pth optional) — never from a hub.
* Speaker latents (the GPT conditioning latent and the 512-d speaker embedding) are computed once,
  at provisioning time, from the profile's cleanest samples and cached with the profile as
  ``voice/xtts_latents.pt``; at run time they are only loaded.
* Streaming: ``inference_stream`` yields audio every ``stream_chunk_size`` GPT tokens, so the first
  chunk leaves long before the sentence is done. The generator is consumed in the engine's worker
  thread (the conversation's rule for every engine).
* Text is normalised per language first (numbers and common abbreviations spelled out), because the
  model reads digits and abbreviations badly and its own cleaners do not cover Russian abbreviations.

Licence: the XTTS-v2 weights are under the Coqui Public Model License (non-commercial).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from ..profile import Profile

log = logging.getLogger(__name__)

_ABBREVIATIONS = {
    "en": {"dr.": "doctor", "mr.": "mister", "mrs.": "missus", "st.": "saint", "e.g.": "for example",
           "i.e.": "that is", "etc.": "et cetera", "vs.": "versus", "km": "kilometres"},
    "ru": {"т.е.": "то есть", "т.д.": "так далее", "т.п.": "тому подобное", "г.": "год", "км": "километров",
           "др.": "другие", "напр.": "например", "см.": "смотрите", "руб.": "рублей"},
}
_NUMBER = re.compile(r"(?<![\w.])(\d+(?:[.,]\d+)?)(?![\w])")


def normalize(text: str, language: str) -> str:
    """Spell out numbers and abbreviations so the model reads them as words."""
    lang = "ru" if language.startswith("ru") else "en"
    out = text
    for abbr, full in _ABBREVIATIONS[lang].items():
        out = re.sub(rf"(?<!\w){re.escape(abbr)}(?!\w)", full, out, flags=re.IGNORECASE)
    try:
        from num2words import num2words
    except ImportError:  # coqui-tts depends on num2words; without it digits are left as they are
        return out

    def spell(m: re.Match) -> str:
        s = m.group(1).replace(",", ".")
        try:
            return num2words(float(s) if "." in s else int(s), lang=lang)
        except (NotImplementedError, OverflowError, ValueError):
            return m.group(1)
    return _NUMBER.sub(spell, out)


class XttsTTS:
    """The ``xtts`` TTS engine. ``synthesize(text, language)`` streams float32 mono at 24 kHz."""

    sample_rate = 24000

    def __init__(self, model_dir: Path, *, device: str = "cuda", latents: Path | None = None,
                 stream_chunk_size: int = 20, temperature: float = 0.7) -> None:
        import torch
        from TTS.tts.configs.xtts_config import XttsConfig
        from TTS.tts.models.xtts import Xtts

        self.torch = torch
        if device == "cuda" and not torch.cuda.is_available():
            device = "cpu"
        self.device = device
        config = XttsConfig()
        config.load_json(str(model_dir / "config.json"))
        self.model = Xtts.init_from_config(config)
        self.model.load_checkpoint(config, checkpoint_dir=str(model_dir), eval=True, use_deepspeed=False)
        self.model.to(device)
        self.sample_rate = int(config.model_args.output_sample_rate)
        self.stream_chunk_size = stream_chunk_size
        self.temperature = temperature
        self.gpt_cond_latent = None
        self.speaker_embedding = None
        if latents is not None:
            self.load_latents(latents)

    @classmethod
    def from_settings(cls, settings) -> XttsTTS:
        from ..models import load_manifest

        cfg = settings.config.tts
        folder = load_manifest(settings.paths.manifest).get(cfg.model).path(settings.paths.models_dir)
        engine = cls(folder, device=cfg.device)
        engine.use_profile(settings.paths.current_profile)
        return engine

    def use_profile(self, profile: Path) -> None:
        """Clone the voice of the profile at ``profile``: its latents (written by provisioning), else
        computed once from its reference recording and cached with it."""
        files = Profile(profile)
        latents = files.xtts_latents
        if latents.is_file():
            self.load_latents(latents)
            return
        reference = files.voice_reference
        if reference.is_file():
            # A profile provisioned while the kiosk still ran the embedded voice: switching config.toml
            # to XTTS must not leave it mute, so the latents are computed from the profile's cleanest
            # samples once, here, and cached with the profile like provisioning does.
            log.info("XTTS: no speaker latents in the profile yet; computing them from %s", reference.name)
            self.compute_latents([reference], out=latents)

    # --- speaker latents (provisioning computes them once; the daemon only loads them)
    def compute_latents(self, wavs: Sequence[Path], out: Path | None = None) -> None:
        gpt_cond, spk = self.model.get_conditioning_latents(audio_path=[str(w) for w in wavs],
                                                            max_ref_length=30, gpt_cond_len=6)
        self.gpt_cond_latent, self.speaker_embedding = gpt_cond, spk
        if out is not None:
            tmp = out.with_suffix(".partial")
            self.torch.save({"gpt_cond_latent": gpt_cond.cpu(), "speaker_embedding": spk.cpu()}, tmp)
            tmp.replace(out)

    def load_latents(self, path: Path) -> None:
        data = self.torch.load(path, map_location="cpu", weights_only=True)
        self.gpt_cond_latent = data["gpt_cond_latent"]
        self.speaker_embedding = data["speaker_embedding"]

    # --- synthesis
    def synthesize(self, text: str, language: str) -> Iterator[np.ndarray]:
        if self.gpt_cond_latent is None:
            raise RuntimeError("XTTS has no speaker latents: provision a profile with voice samples first")
        lang = "ru" if language.startswith("ru") else "en"
        with self.torch.inference_mode():
            for chunk in self.model.inference_stream(
                normalize(text, lang), lang, self.gpt_cond_latent, self.speaker_embedding,
                stream_chunk_size=self.stream_chunk_size, temperature=self.temperature,
                enable_text_splitting=False,
            ):
                yield chunk.detach().float().cpu().numpy().reshape(-1)
