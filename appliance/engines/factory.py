"""The one engine factory: what the config names, after fallbacks, built once.

Used by the kiosk app (daemon and demo), ``ask`` / ``say`` / ``listen`` / ``bench``, the smoke check
and provisioning. Every role goes through the registry (:mod:`appliance.engines`), the face too.

Production engines whose weights (or GPU) are missing are replaced by the embedded default for their
role first (:func:`.select.resolve`: an ENGINE_FALLBACK journal line each), and the GPU engines'
memory plan is checked against the card before anything loads (:func:`.select.check_vram`), so a
box missing a model keeps talking instead of crash-looping.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from ..audio.vad import SileroCheck
from ..config import Config
from ..messages import MouthPose
from ..models import load_manifest
from ..paths import Settings
from . import engine_class
from .base import FaceAnimator, PersonaLLM, SpeechToText, TextToSpeech, WakeDetector
from .select import check_vram, resolve

log = logging.getLogger(__name__)


@dataclass
class Engines:
    """The loaded engines of one kiosk (a role not asked for is None)."""

    stt: SpeechToText | None
    llm: PersonaLLM | None
    tts: TextToSpeech | None
    silero: SileroCheck | None = None
    wake: WakeDetector | None = None  # wake mode only
    config: Config | None = None      # the config after fallbacks: what really runs


def resolved(settings: Settings) -> Settings:
    """``settings`` with each role's engine as it will really run (fallbacks applied)."""
    cfg, _fallbacks = resolve(settings.config, load_manifest(settings.paths.manifest), settings.paths.models_dir)
    return Settings(cfg, settings.paths)


def make(role: str, settings: Settings):
    """One engine of ``role`` as the (resolved) settings name it."""
    cls = engine_class(role, getattr(settings.config, role).engine)
    return cls.from_settings(settings)


def load(settings: Settings, *, stt: bool = True, llm: bool = True, tts: bool = True) -> Engines:
    """Load every engine the config names (each model once; seconds on a CPU)."""
    manifest = load_manifest(settings.paths.manifest)
    cfg, _fallbacks = resolve(settings.config, manifest, settings.paths.models_dir)
    plan = check_vram(cfg, manifest)  # VramError -> the daemon's maintenance screen, before any load
    if plan.items:
        log.info("%s", plan.describe())
    rs = Settings(cfg, settings.paths)
    wake = make_wake(cfg) if cfg.wake.mode == "wake" else None
    return Engines(stt=make("stt", rs) if stt else None, llm=make("llm", rs) if llm else None,
                   tts=make("tts", rs) if tts else None,
                   silero=SileroCheck() if stt and cfg.vad.silero_threshold > 0 else None, wake=wake, config=cfg)


def make_wake(cfg: Config) -> WakeDetector:
    from .wake import MicroWakeWordDetector

    return MicroWakeWordDetector(cfg.wake.wake_word)


def face(settings: Settings, photo: Path) -> FaceAnimator:
    """The face for ``photo``, as ``face.engine`` (resolved) names it: the mesh warp, or the neural
    lip-sync over it. Blocking (the rig is built or read from the cache)."""
    from ..face.rig import FaceManager

    cfg = settings.config
    rig = FaceManager(settings.paths.cache_dir, size=cfg.face.size).load(photo)
    animator = engine_class("face", cfg.face.engine).for_rig(rig, settings)
    animator.frame(0.05, MouthPose())  # warm: the first word must not pay for the session's set-up
    if hasattr(animator, "clear"):
        animator.clear()
    return animator
