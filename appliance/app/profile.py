"""Which persona the kiosk shows: the active provisioned profile, else the demo bundle."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .. import persona as persona_mod
from ..paths import Settings
from ..profile import Profile


@dataclass(frozen=True)
class ProfileFiles:
    """The active persona: its folder's files and its persona."""

    files: Profile
    persona: persona_mod.Persona
    photo: Path       # the photo the face is animated from (provisioning's enhanced one when it made one)

    @property
    def folder(self) -> Path:
        return self.files.folder

    @property
    def id(self) -> str:
        return self.folder.name


def active_profile(settings: Settings) -> ProfileFiles:
    for folder in (settings.paths.current_profile, settings.paths.demo_bundle):
        files = Profile(folder.resolve())
        if files.persona_toml.exists() and files.face_photo is not None:
            return ProfileFiles(files, persona_mod.load(files.persona_toml), files.face_photo)
    raise FileNotFoundError("no profile and no demo bundle: run `avatar-kiosk demo --prepare-only` "
                            "or provision a USB bundle")
