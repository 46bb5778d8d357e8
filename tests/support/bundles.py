"""Sample bundles for tests and demos, built only from data that ships in packages.

Photos come from scikit-image (``astronaut()``: one public-domain face; ``coffee()``: none); voices are
the recorded Russian prompts of Debian's asterisk-core-sounds-ru-wav (8 kHz, real speech).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from provisioning import bundle

ASTERISK_RU = Path("/usr/share/asterisk/sounds/ru_RU_f_IvrvoiceRU")

PERSONA = '''name = "Anna"
age = 34
languages = ["en", "ru"]
style = "Warm and brief."
interests = "space"
avoid = "politics"
wake_mode = "open"

[greeting]
en = "Hi! I'm Anna."
ru = "Привет! Я Анна."
'''


def astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()


def photo(kind: str = "one") -> np.ndarray:
    """``one`` face, ``two`` faces side by side, ``none`` (coffee), ``tiny`` (a small face on a big canvas)."""
    import cv2

    img = astronaut()
    if kind == "one":
        return img
    if kind == "two":
        return np.concatenate([img, img], axis=1)
    if kind == "none":
        from skimage import data

        return data.coffee()
    if kind == "tiny":
        canvas = np.full((1536, 1536, 3), 205, np.uint8)
        canvas[600:856, 600:856] = cv2.resize(img, (256, 256), interpolation=cv2.INTER_AREA)
        return canvas
    raise ValueError(kind)


def save_photo(rgb: np.ndarray, path: Path) -> Path:
    from PIL import Image

    Image.fromarray(rgb).save(path)
    return path


def speech(seconds: float, offset: int = 0) -> tuple[np.ndarray, int]:
    """At least ``seconds`` of real recorded speech (8 kHz int16), prompts joined with short pauses."""
    import soundfile as sf

    files = sorted(ASTERISK_RU.glob("*.wav"))
    if not files:
        raise FileNotFoundError(f"{ASTERISK_RU} is missing: install Debian's asterisk-core-sounds-ru-wav")
    out, got, i = [], 0.0, offset
    gap = np.zeros(1200, np.int16)
    while got < seconds:
        a, rate = sf.read(str(files[i % len(files)]), dtype="int16")
        out += [a, gap]
        got += (len(a) + len(gap)) / rate
        i += 1
    return np.concatenate(out), 8000


def save_speech(path: Path, seconds: float, offset: int = 0) -> Path:
    import soundfile as sf

    a, rate = speech(seconds, offset)
    sf.write(str(path), a, rate, subtype="PCM_16")
    return path


def make_source(folder: Path, *, photo_kind: str = "one", voice_s: float = 45.0, persona: str = PERSONA,
                voice_files: int = 3) -> Path:
    """A source folder (what an installer prepares) with a photo, voices and a persona."""
    (folder / "voice").mkdir(parents=True, exist_ok=True)
    save_photo(photo(photo_kind), folder / "photo.png")
    per = voice_s / voice_files
    for k in range(voice_files):
        save_speech(folder / "voice" / f"take{k + 1}.wav", per, offset=k * 40)
    (folder / "persona.toml").write_text(persona, encoding="utf-8")
    return folder


def make_bundle(folder: Path, key: Path | None = None, **kw) -> Path:
    src = folder.with_name(folder.name + "-src")
    make_source(src, **kw)
    bundle.build(src, folder, key=key)
    return folder


def tree_digest(root: Path) -> str:
    """One hash over a whole tree: names, file bytes, link targets, markers — byte-for-byte identity."""
    h = hashlib.sha256()
    if not root.exists():
        return "absent"
    for dirpath, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(dirs + files):
            p = Path(dirpath) / name
            rel = p.relative_to(root).as_posix()
            if p.is_symlink():
                h.update(f"L {rel} -> {os.readlink(p)}\n".encode())
            elif p.is_file():
                h.update(f"F {rel}\n".encode())
                h.update(hashlib.sha256(p.read_bytes()).digest())
            elif p.is_dir():
                h.update(f"D {rel}\n".encode())
    return h.hexdigest()
