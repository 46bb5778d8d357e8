"""Derive step: everything the kiosk computes once from the bundle, written into the new profile folder.

* ``derived/photo_enhanced.png`` — when the face is small: the photo scaled up so the face is ~240 px wide,
                                    the face square through Real-ESRGAN ×4 (``provisioning.enhance``);
* the face rig                   — ``appliance.face.rig.load_or_build_rig`` into the rig cache (keyed by
                                    the photo's sha256), for the enhanced photo and the original;
* ``derived/voice_reference.wav``— the cleanest 30–60 s of speech, 16 kHz mono;
* ``derived/speaker_embedding.npy`` — 256-d d-vector of that reference (voicefilter-embedder ONNX);
* ``voice/xtts_latents.pt``      — the cloning engine's speaker latents (when XTTS is the voice engine);
* ``derived/greeting_<lang>.wav``— the greeting, pre-synthesized (hook: the TTS engine, when importable).

Hooks that cannot run yet leave a note in the report instead of failing: the profile is still
complete for the embedded default.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from appliance.engines import select
from appliance.paths import Settings
from appliance.profile import Profile

from . import voice as voice_mod
from .errors import ProvisionError
from .photo import PhotoCheck

log = logging.getLogger("avatar-kiosk.provision")

# Test switch ONLY (the kill test, and fast set-up of an "old" profile in tests): skips the model-based
# work — face detection, embedding, enhancement, rig, greeting, self-test. Never set on a kiosk.
STUB_ENV = "AVATAR_KIOSK_PROVISION_STUB"


def stubbed() -> bool:
    return os.environ.get(STUB_ENV) == "1"


def _manifest(settings: Settings):
    from appliance import models as models_mod

    return models_mod.load_manifest(settings.paths.manifest)


def model_path(settings: Settings, model_id: str) -> Path:
    """The verified folder of a model (by size; the full hash is checked by `models verify`)."""
    from appliance import models as models_mod

    m = _manifest(settings).get(model_id)
    bad = [s for s in models_mod.verify([m], settings.paths.models_dir, full=False) if not s.ok]
    if bad:
        raise ProvisionError("model-missing", f"The kiosk is missing a model it needs ({bad[0].describe()}) — "
                             "a technician should run `avatar-kiosk models install`", step="derive")
    return m.folder(settings.paths.models_dir)


def check_stick_models(settings: Settings, models: tuple[tuple[str, str, Path], ...],
                       verified_sha256: dict[str, str] | None = None) -> list:
    """Every models/<id>/<file> on the stick must be a file of a model in the model manifest, with its
    sha256 — checked at validate time, before anything is copied into the models folder.

    ``verified_sha256`` (path -> sha256 the verify step already checked the staged file against)
    saves hashing multi-GB weights twice."""
    from appliance import models as models_mod

    if not models:
        return []
    manifest = _manifest(settings)
    out = []
    for model_id, name, src in models:
        rel = f"models/{model_id}/{name}"
        try:
            m = manifest.get(model_id)
        except models_mod.ModelError:
            raise ProvisionError("model-unknown", f"{rel} on the stick is not a model this kiosk knows — "
                                 "remove it from the bundle", step="validate") from None
        f = next((f for f in m.files if f.name == name), None)
        if f is None:
            raise ProvisionError("model-unknown", f"{rel} is not a file of model {model_id} — "
                                 "remove it from the bundle", step="validate")
        known = (verified_sha256 or {}).get(rel)
        if not f.pinned:
            # The manifest pins no checksum for this model (its publisher gives none): the bundle's own
            # checksum list, which the verify step checked the file against, becomes the site pin.
            if not known:
                raise ProvisionError("model-bad", f"{rel} has no checksum in the bundle's manifest — build the "
                                     "bundle with `avatar-kiosk bundle build`", step="validate")
            out.append((m, f, src, known))
            continue
        if src.stat().st_size != f.size or (known or models_mod.sha256_file(src)) != f.sha256:
            raise ProvisionError("model-bad", f"{rel} on the stick is not the expected file (wrong version or "
                                 "damaged) — download it again", step="validate")
        out.append((m, f, src, f.sha256))
    return out


def install_stick_models(settings: Settings, checked: list) -> list[str]:
    """Copy production weights brought on the stick into the models folder (verified, atomic)."""
    from appliance import models as models_mod

    notes = []
    for m, f, src, digest in checked:
        st = models_mod.check_file(m, f, settings.paths.models_dir, full=False)
        if st.ok and (f.pinned or models_mod.site_pin(st.path) == digest):
            notes.append(f"model file {m.id}/{f.name} already installed")
            continue
        models_mod.copy_verified(src, m, f, settings.paths.models_dir, site_sha256=digest)
        notes.append(f"installed model file {m.id}/{f.name}"
                     + ("" if f.pinned else f" (no published checksum: sha256 {digest[:12]}… recorded as this "
                                            "site's pin)"))
    return notes


def enhance_photo(settings: Settings, rgb: np.ndarray, pc: PhotoCheck, out: Path) -> str:
    from PIL import Image

    from . import enhance

    folder = model_path(settings, enhance.MODEL_ID)
    f = pc.face
    big = enhance.enhance_photo(rgb, (f.x, f.y, f.w, f.h), folder)
    Image.fromarray(big).save(out)
    return f"the face is {f.w} px wide: photo enhanced with Real-ESRGAN to {big.shape[1]}×{big.shape[0]} px"


def build_rig(photos: list[Path], cache_dir: Path, size: int) -> str:
    """Build (and cache, keyed by each photo's sha256) the face rig the animator will load, so the
    kiosk's first start is fast and a photo the rig cannot use is refused now, with its own message."""
    try:
        rig_mod = importlib.import_module("appliance.face.rig")
        load_or_build_rig = rig_mod.load_or_build_rig
    except (ImportError, AttributeError):
        return "face rig: skipped — the face module is not in this build (the kiosk builds it on start)"
    face_error = getattr(rig_mod, "FaceError", None)
    if face_error is None:
        try:
            face_error = importlib.import_module("appliance.face.errors").FaceError
        except (ImportError, AttributeError):
            face_error = None
    for photo in photos:
        try:
            load_or_build_rig(photo, cache_dir, size)
        except Exception as e:
            if face_error is not None and isinstance(e, face_error):
                code = str(getattr(e, "code", "face")).replace("_", "-")
                raise ProvisionError(f"face-rig-{code}", str(e), step="derive") from None
            raise
    return f"face rig built ({size} px) and cached"


_ENGINES: dict = {}
_LENT: dict = {}


@contextlib.contextmanager
def lent_engines(engines: dict) -> Iterator[None]:
    """Use the running kiosk's loaded engines ({"tts": …, "stt": …}) instead of loading copies:
    provisioning in the running kiosk must not hold two whisper models, or two XTTS on the GPU."""
    _LENT.update({k: v for k, v in engines.items() if v is not None})
    try:
        yield
    finally:
        _LENT.clear()


def engine(role: str, settings: Settings, profile_dir: Path | None = None):
    """The engine the kiosk will run for ``role`` ("tts", "stt"), or None when it cannot be built here.

    The running kiosk lends its own (:func:`lent_engines`); otherwise the one engine factory builds it
    (a production engine whose weights are missing falls back to the embedded default, as in the
    daemon). Built engines are cached for this process (the greeting and the self-test share them).
    None, with the reason logged, when the engine cannot be built here."""
    if role in _LENT:
        return _LENT[role]
    key = (role, repr(settings.config), str(settings.paths.models_dir))
    if key in _ENGINES:
        return _ENGINES[key]
    from appliance.engines import factory  # loads the engine stack only when a bundle needs it

    try:
        # gpu=False: the GPU belongs to the running kiosk; provisioning from the command line uses the CPU
        cfg, _fallbacks = select.resolve(settings.config, _manifest(settings), settings.paths.models_dir, gpu=False)
        eng = factory.make(role, Settings(cfg, settings.paths))
    except Exception as e:  # an engine that cannot start here: a note, not a failed provisioning
        log.warning("%s engine unavailable for provisioning: %s: %s", role, e.__class__.__name__, e)
        eng = None
    _ENGINES[key] = eng
    return eng


def release_engines() -> None:
    """Drop the engines built for one provisioning run (a loaded STT model is a few hundred MB)."""
    _ENGINES.clear()


def speaker_latents(settings: Settings, prof: Profile) -> str:
    """The cloning engine's speaker latents, computed once from the reference and kept with the profile
    (where ``appliance.engines.tts_xtts`` loads them)."""
    tts = engine("tts", settings, prof.folder)
    if tts is None or not hasattr(tts, "compute_latents"):
        return ""  # the configured voice engine needs no latents (or is not available: noted elsewhere)
    tts.compute_latents([prof.voice_reference], out=prof.xtts_latents)
    return "speaker latents computed for the cloning voice engine"


def synthesize(tts, text: str, language: str) -> np.ndarray:
    parts = [np.asarray(c, dtype=np.float32).reshape(-1) for c in tts.synthesize(text, language)]
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)


def match_voice(settings: Settings, ref16k: np.ndarray, bandwidth_rate: int, prof: Profile) -> str:
    """Fit the embedded TTS's voice match to the reference and report the similarity it reaches.

    Written before the greeting is synthesized, so the greeting already speaks in the matched voice."""
    cfg = settings.config.tts
    if cfg.engine != "piper-espeak" or not cfg.voice_match:
        return f"voice matching: not used (tts.engine = {cfg.engine}, voice_match = {cfg.voice_match})"
    from appliance.voice.embedding import SpeakerEmbedder
    from appliance.voice.match import fit

    # The stock piper voice of the TTS engine the greeting step uses too (loaded once per process).
    piper = getattr(engine("tts", settings), "voice", None)
    if piper is None:
        return "voice matching: not done — the speech engine is not available here"

    def synth(text: str) -> tuple[np.ndarray, int]:
        return np.concatenate([c.audio_float_array for c in piper.synthesize(text)]), piper.config.sample_rate

    embedder = SpeakerEmbedder(model_path(settings, "voicefilter-embedder") / "embedder.int8.onnx")
    profile = fit(ref16k, voice_mod.RATE, synth, embedder, alphas=(1.0, 1.1, 1.2, 1.3), bandwidth_rate=bandwidth_rate)
    profile.save(prof.voice_match)
    return (f"voice matched to the recordings: similarity {profile.similarity_before:.2f} -> "
            f"{profile.similarity_after:.2f} (pitch {profile.source_f0:.0f} -> {profile.target_f0:.0f} Hz, "
            f"timbre warp {profile.alpha})")


def greetings(settings: Settings, persona, prof: Profile) -> list[str]:
    tts = engine("tts", settings, prof.folder)
    if tts is None:
        return ["greeting: not pre-synthesized — the speech engine is not available here"]
    if hasattr(tts, "use_voice_profile"):  # speak in this new profile's matched voice
        tts.use_voice_profile(prof.voice_match)
    notes = []
    for lang in persona.languages:
        audio = synthesize(tts, persona.greeting_for(lang), lang)
        voice_mod.write_wav(prof.greeting(lang), audio, int(tts.sample_rate))
        notes.append(f"greeting pre-synthesized ({lang}, {len(audio) / tts.sample_rate:.1f} s)")
    return notes


def run(settings: Settings, profile_dir: Path, rgb: np.ndarray | None, pc: PhotoCheck | None,
        vc: voice_mod.VoiceCheck, persona, models: list, progress: Callable[[float], None]) -> list[str]:
    """Fill the profile's ``derived/``; returns notes for the report."""
    prof = Profile(profile_dir)
    prof.derived.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    notes += install_stick_models(settings, models)
    progress(0.05)
    ref, chosen = voice_mod.choose_reference(vc)
    voice_mod.write_wav(prof.voice_reference, ref)
    notes.append(f"voice reference: the cleanest {len(ref) / voice_mod.RATE:.0f} s, from {len({c.file for c in chosen})} "
                 f"recording(s)")
    progress(0.15)
    if stubbed():
        notes.append(f"derive STUBBED ({STUB_ENV}=1, a test switch): no enhancement, rig, embedding or greeting")
        progress(1.0)
        return notes
    emb = voice_mod.speaker_embedding(ref, model_path(settings, "voicefilter-embedder") / "embedder.int8.onnx")
    np.save(prof.speaker_embedding, emb)
    notes.append("speaker embedding computed (256-d)")
    bandwidth = min((f.rate for f in vc.files if f.usable), default=voice_mod.RATE)
    notes.append(match_voice(settings, ref, bandwidth, prof))
    progress(0.3)
    original = photo = prof.photo
    if pc is not None and rgb is not None and pc.needs_enhance:
        notes.append(enhance_photo(settings, rgb, pc, prof.enhanced_photo))
        photo = prof.enhanced_photo
    progress(0.7)
    rig_photos = [photo] if photo == original else [photo, original]
    notes.append(build_rig(rig_photos, settings.paths.cache_dir, settings.config.face.size))
    progress(0.8)
    lat = speaker_latents(settings, prof)
    if lat:
        notes.append(lat)
    notes += greetings(settings, persona, prof)
    progress(1.0)
    return notes
