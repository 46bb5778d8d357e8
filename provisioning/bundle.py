"""The bundle format installers carry on a USB stick, and the tool that builds (and signs) one.

A bundle is a folder::

    persona.toml          who the kiosk is (see appliance.persona)
    photo.jpg | photo.png one photo with one face
    voice/*.wav           recordings of the voice (any rate, any channel count)
    models/<id>/<file>    optional production weights named in models/manifest.toml
    manifest.toml         every other file's path, size and sha256
    manifest.toml.sig     optional: hex Ed25519 signature of manifest.toml's bytes

The signature covers the manifest and the manifest covers every byte of every file, so a
signed manifest vouches for the whole bundle.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from appliance.models import sha256_file

MANIFEST = "manifest.toml"
SIGNATURE = "manifest.toml.sig"
FORMAT = 1


class BundleError(ValueError):
    """A bundle problem, phrased for the installer."""


@dataclass(frozen=True)
class Entry:
    path: str
    size: int
    sha256: str


def _toml_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_manifest(entries: list[Entry], created: str | None = None) -> bytes:
    created = created or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    lines = [f"format = {FORMAT}", f"created = {_toml_str(created)}", ""]
    for e in sorted(entries, key=lambda e: e.path):
        lines += ["[[file]]", f"path = {_toml_str(e.path)}", f"size = {e.size}", f"sha256 = {_toml_str(e.sha256)}", ""]
    return "\n".join(lines).encode("utf-8")


def parse_manifest(data: bytes) -> list[Entry]:
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise BundleError(f"The bundle's manifest.toml is damaged ({e}) — rebuild the bundle") from None
    if doc.get("format") != FORMAT:
        raise BundleError(f"The bundle's manifest is format {doc.get('format')!r}, this kiosk reads format {FORMAT}")
    out = []
    for f in doc.get("file", []):
        try:
            out.append(Entry(str(f["path"]), int(f["size"]), str(f["sha256"]).lower()))
        except (KeyError, TypeError, ValueError):
            raise BundleError("The bundle's manifest has an entry without path, size or sha256 — rebuild the bundle") from None
    return out


def scan(folder: Path) -> list[Entry]:
    """Every regular file below ``folder`` except the manifest and its signature."""
    entries = []
    for root, _dirs, files in os.walk(folder):
        for name in files:
            p = Path(root) / name
            rel = p.relative_to(folder).as_posix()
            if rel in (MANIFEST, SIGNATURE) or name.startswith("."):
                continue
            entries.append(Entry(rel, p.stat().st_size, sha256_file(p)))
    return entries


def sign(data: bytes, private_key_file: Path) -> str:
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(private_key_file.read_bytes(), password=None)
    return key.sign(data).hex()


def verify_signature(data: bytes, signature_hex: str, trusted_keys_hex: list[str]) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        sig = bytes.fromhex(signature_hex.strip())
    except ValueError:
        return False
    for k in trusted_keys_hex:
        try:
            Ed25519PublicKey.from_public_bytes(bytes.fromhex(k)).verify(sig, data)
            return True
        except (InvalidSignature, ValueError):
            continue
    return False


def keygen(prefix: Path) -> tuple[Path, str]:
    """Write ``<prefix>.key`` (PEM private key, keep it on the installer's laptop) and return the
    public key as hex (goes into the kiosk's config: provisioning.trusted_keys). Never replaces a
    key: every kiosk that trusts the old one would refuse the site's next bundles."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key_file, pub_file = prefix.with_suffix(".key"), prefix.with_suffix(".pub")
    for f in (key_file, pub_file):
        if f.exists():
            raise BundleError(f"{f} already exists — a site keeps its key: kiosks trust it. To make a new one "
                              "anyway, choose another name (and put its public key in every kiosk's config).")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    key_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    pub = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()
    fd = os.open(pub_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "w") as fh:
        fh.write(pub + "\n")
    return key_file, pub


def foreign_files(out: Path) -> list[str]:
    """Files in ``out`` that its own manifest does not list: not ours to replace. A folder without a
    readable manifest is all foreign (unless empty)."""
    present = [p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() or p.is_symlink()]
    try:
        listed = {e.path for e in parse_manifest((out / MANIFEST).read_bytes())}
    except (OSError, BundleError):
        listed = set()
    if listed:
        listed |= {MANIFEST, SIGNATURE}
    return sorted(p for p in present if p not in listed)


def build(src: Path, out: Path, *, key: Path | None = None) -> list[Entry]:
    """Copy ``src`` to ``out`` (if different) and write its manifest (and signature with ``key``).

    ``out`` is replaced only when it is empty or a bundle built before (every file in it listed by
    its manifest); a folder holding anything else is refused with :class:`BundleError`, never
    emptied. The new bundle is written next to it and renamed into place, so a failure part-way
    leaves the old one whole."""
    if out.resolve() == src.resolve():
        return _write_manifest(out, key)
    if out.exists():
        foreign = foreign_files(out) if out.is_dir() else [out.name]
        if foreign:
            shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
            raise BundleError(f"{out} already holds files that are not part of a bundle ({shown}) — "
                              "choose a new or empty folder, e.g. /media/stick/anna")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.building-", dir=out.parent))
    try:
        shutil.copytree(src, tmp / "b", symlinks=False, ignore=shutil.ignore_patterns(MANIFEST, SIGNATURE, ".*"))
        entries = _write_manifest(tmp / "b", key)
        if out.exists():
            os.replace(out, tmp / "old")     # only files the old manifest listed: ours to replace
        os.replace(tmp / "b", out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return entries


def _write_manifest(out: Path, key: Path | None) -> list[Entry]:
    entries = scan(out)
    data = render_manifest(entries)
    (out / MANIFEST).write_bytes(data)
    sig = out / SIGNATURE
    if key is not None:
        sig.write_text(sign(data, key) + "\n")
    elif sig.exists():
        sig.unlink()
    return entries
