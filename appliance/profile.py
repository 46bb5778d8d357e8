"""A persona profile's files: the one place that knows the layout.

A bundle on a USB stick and the profile made from it share the installer's names (``persona.toml``,
``photo.jpg|png``, ``voice/*.wav``); provisioning adds ``derived/``, ``profile.json`` and the report.
Profiles live in ``<state>/profiles/<id>/``; ``current`` points at the active one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

PHOTO_NAMES = ("photo.jpg", "photo.jpeg", "photo.png")
PROFILE_JSON = "profile.json"         # id, name, created, previous profile, every file's size and sha256
REPORT = "provision-report.txt"       # what the installer saw


@dataclass(frozen=True)
class Profile:
    folder: Path

    # --- what the installer brought
    @property
    def persona_toml(self) -> Path:
        return self.folder / "persona.toml"

    @property
    def photo(self) -> Path | None:
        """The installer's photo (``photo.jpg``, ``photo.jpeg`` or ``photo.png``), None without one."""
        return next((p for p in (self.folder / n for n in PHOTO_NAMES) if p.is_file()), None)

    @property
    def knowledge(self) -> Path:
        """The fact sheet (optional): what the persona knows, in Russian and/or English."""
        return self.folder / "knowledge.md"

    @property
    def voice_dir(self) -> Path:
        return self.folder / "voice"

    # --- what provisioning derived
    @property
    def derived(self) -> Path:
        return self.folder / "derived"

    @property
    def enhanced_photo(self) -> Path:
        """The photo scaled up with Real-ESRGAN when its face was small."""
        return self.derived / "photo_enhanced.png"

    @property
    def voice_reference(self) -> Path:
        """The cleanest 30–60 s of the recordings, 16 kHz mono."""
        return self.derived / "voice_reference.wav"

    @property
    def voice_match(self) -> Path:
        """The embedded voice's match to the recordings (pitch, timbre warp)."""
        return self.derived / "voice_profile.json"

    @property
    def speaker_embedding(self) -> Path:
        return self.derived / "speaker_embedding.npy"

    @property
    def xtts_latents(self) -> Path:
        """The cloning voice's speaker latents, computed once."""
        return self.voice_dir / "xtts_latents.pt"

    def greeting(self, language: str) -> Path:
        return self.derived / f"greeting_{language}.wav"

    # --- the record
    @property
    def profile_json(self) -> Path:
        return self.folder / PROFILE_JSON

    @property
    def report(self) -> Path:
        return self.folder / REPORT

    @property
    def face_photo(self) -> Path | None:
        """The photo the face is animated from: provisioning's enhanced one when it made one."""
        try:
            name = json.loads(self.profile_json.read_text(encoding="utf-8")).get("face_photo", "")
        except (OSError, ValueError):
            name = ""
        chosen = self.folder / name if name else None
        return chosen if chosen is not None and chosen.is_file() else self.photo
