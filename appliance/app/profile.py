"""Which persona the kiosk shows: the active provisioned profile, else the demo bundle."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .. import persona as persona_mod
from ..paths import Settings

PHOTO_SUFFIXES = (".png", ".jpg", ".jpeg")


@dataclass(frozen=True)
class ProfileFiles:
    """Where the active persona's files are."""

    folder: Path
    persona: persona_mod.Persona
    photo: Path       # the photo the face is animated from (provisioning's enhanced one when it made one)
    voice_dir: Path

    @property
    def id(self) -> str:
        return self.folder.name


def _photo(folder: Path) -> Path | None:
    photo = next((p for p in sorted(folder.glob("photo.*")) if p.suffix.lower() in PHOTO_SUFFIXES), None)
    meta = folder / "profile.json"
    if meta.exists():  # provisioning's enhanced photo (Real-ESRGAN on a small face) when it made one
        face_photo = folder / json.loads(meta.read_text(encoding="utf-8")).get("face_photo", "")
        if face_photo.is_file() and face_photo != folder:
            photo = face_photo
    return photo


def active_profile(settings: Settings) -> ProfileFiles:
    for folder in (settings.paths.current_profile, settings.paths.demo_bundle):
        if (folder / "persona.toml").exists():
            photo = _photo(folder)
            if photo is None:
                continue
            return ProfileFiles(folder.resolve(), persona_mod.load(folder / "persona.toml"), photo, folder / "voice")
    raise FileNotFoundError("no profile and no demo bundle: run `avatar-kiosk demo --prepare-only` "
                            "or provision a USB bundle")
