"""Verify a staged bundle against its manifest (and the manifest against the site's keys).

Runs on the local staging copy only. The manifest must list exactly the files that are there, each
with its size and sha256; paths must be plain relative paths (no ``..``, no absolute paths, no
backslashes, no hidden parts) in the bundle layout. When the site has trusted keys configured, the
manifest's Ed25519 signature must verify against one of them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from appliance.profile import PHOTO_NAMES

from . import bundle
from .errors import ProvisionError

MAX_MANIFEST_BYTES = 2 << 20
_MODEL_PATH = re.compile(r"^models/[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
_VOICE_PATH = re.compile(r"^voice/[^/]+\.(wav|WAV)$")


@dataclass(frozen=True)
class VerifiedBundle:
    root: Path
    entries: tuple[bundle.Entry, ...]
    photo: Path
    voices: tuple[Path, ...]
    models: tuple[tuple[str, str, Path], ...]  # (model id, file name, staged path)
    signed: bool
    manifest_sha256: str
    knowledge: Path | None = None  # the fact sheet, when the bundle has one


def _bad(code: str, msg: str) -> ProvisionError:
    return ProvisionError(code, msg, step="verify")


def check_path(p: str) -> None:
    """Refuse any manifest path that could point outside the bundle or is not in its layout."""
    if not p or p.startswith("/") or "\\" in p or "\x00" in p or re.match(r"^[A-Za-z]:", p):
        raise _bad("unsafe-path", f"The manifest names {p!r}, an absolute or malformed path — "
                   "rebuild the bundle with `avatar-kiosk bundle build`")
    parts = PurePosixPath(p).parts
    if any(part in ("..", ".", "") for part in p.split("/")) or not parts:
        raise _bad("unsafe-path", f"The manifest names {p!r}, which points outside the bundle — "
                   "rebuild the bundle with `avatar-kiosk bundle build`")
    if any(part.startswith(".") for part in parts):
        raise _bad("unsafe-path", f"The manifest names a hidden file {p!r} — rebuild the bundle")


def layout_ok(p: str) -> bool:
    return p in ("persona.toml", "knowledge.md") or p in PHOTO_NAMES or bool(_VOICE_PATH.match(p)) \
        or bool(_MODEL_PATH.match(p))


def _sha256(path: Path, progress: Callable[[int], None] | None) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
            if progress:
                progress(len(chunk))
    return h.hexdigest()


def verify(root: Path, trusted_keys: list[str], progress: Callable[[float], None] | None = None) -> VerifiedBundle:
    man_path = root / bundle.MANIFEST
    if not man_path.is_file():
        raise _bad("manifest-missing", "The bundle has no manifest.toml — build it with "
                   "`avatar-kiosk bundle build` on the installer's laptop")
    if man_path.stat().st_size > MAX_MANIFEST_BYTES:
        raise _bad("manifest-bad", "The bundle's manifest.toml is far too large — rebuild the bundle")
    data = man_path.read_bytes()
    sig_path = root / bundle.SIGNATURE
    signed = False
    if trusted_keys:
        if not sig_path.is_file():
            raise _bad("signature-missing", "This kiosk only accepts signed bundles and this one is not signed — "
                       "build it with `avatar-kiosk bundle build SRC OUT --key <your key>`")
        try:
            sig = sig_path.read_text(encoding="ascii")
        except (UnicodeDecodeError, OSError):
            sig = ""
        if not bundle.verify_signature(data, sig, trusted_keys):
            raise _bad("signature-bad", "The bundle's signature does not match this kiosk's keys (wrong key, or "
                       "the bundle was changed after signing) — rebuild and sign it with the site's key")
        signed = True
    try:
        entries = bundle.parse_manifest(data)
    except bundle.BundleError as e:
        raise _bad("manifest-bad", str(e)) from None
    listed: dict[str, bundle.Entry] = {}
    for e in entries:
        check_path(e.path)
        if e.path in (bundle.MANIFEST, bundle.SIGNATURE):
            continue
        if e.path in listed:
            raise _bad("manifest-bad", f"The manifest lists {e.path} twice — rebuild the bundle")
        if not layout_ok(e.path):
            raise _bad("unexpected-file", f"The bundle holds {e.path}, which the kiosk does not use — bundles hold "
                       "persona.toml, one photo.jpg or photo.png, voice/*.wav and models/<id>/<file>")
        listed[e.path] = e
    present = set()
    for p in root.rglob("*"):
        if p.is_file():
            rel = p.relative_to(root).as_posix()
            if rel not in (bundle.MANIFEST, bundle.SIGNATURE):
                present.add(rel)
    extra = sorted(present - set(listed))
    if extra:
        raise _bad("not-in-manifest", f"{extra[0]} is on the stick but not in the manifest (added after the bundle "
                   "was built?) — rebuild the bundle")
    missing = sorted(set(listed) - present)
    if missing:
        raise _bad("missing-file", f"The manifest lists {missing[0]} but it is not on the stick — "
                   "copy the whole bundle folder again")
    total = sum(e.size for e in listed.values()) or 1
    done = 0

    def tick(n: int) -> None:
        nonlocal done
        done += n
        if progress:
            progress(min(1.0, done / total))

    for rel, e in sorted(listed.items()):
        p = root / rel
        size = p.stat().st_size
        if size != e.size:
            raise _bad("size-mismatch", f"{rel} is {size} bytes but the manifest says {e.size} — the copy on the "
                       "stick is damaged or was changed; copy the bundle again")
        if _sha256(p, tick) != e.sha256:
            raise _bad("hash-mismatch", f"{rel} does not match its checksum in the manifest — the copy on the "
                       "stick is damaged or was changed; copy the bundle again")
    photos = [p for p in PHOTO_NAMES if p in listed]
    if "persona.toml" not in listed:
        raise _bad("persona-missing", "The bundle has no persona.toml — see the installers' guide")
    if not photos:
        raise _bad("photo-missing", "The bundle has no photo — add one photo.jpg or photo.png with one face")
    if len(photos) > 1:
        raise _bad("photo-many", f"The bundle has {len(photos)} photos ({', '.join(photos)}) — keep exactly one")
    voices = sorted(p for p in listed if p.startswith("voice/"))
    if not voices:
        raise _bad("voice-missing", "The bundle has no voice recordings — add WAV files in a voice/ folder")
    models = tuple((rel.split("/")[1], rel.split("/")[2], root / rel) for rel in sorted(listed)
                   if rel.startswith("models/"))
    if progress:
        progress(1.0)
    return VerifiedBundle(root=root, entries=tuple(listed.values()), photo=root / photos[0],
                          voices=tuple(root / v for v in voices), models=models, signed=signed,
                          manifest_sha256=hashlib.sha256(data).hexdigest(),
                          knowledge=root / "knowledge.md" if "knowledge.md" in listed else None)
