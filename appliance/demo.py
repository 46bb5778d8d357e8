"""The demo persona: assembled at set-up time from data that ships in packages, then run.

The bundle is built in exactly the format installers carry on a USB stick (provisioning/bundle.py),
so the demo exercises the same provisioning path as a real site:

* photo   — ``skimage.data.astronaut()``: NASA's public-domain portrait of Eileen Collins;
* voice   — real recorded Russian speech, a woman's voice, from Debian's
            ``asterisk-core-sounds-ru-wav`` (CC-BY-3.0, IvrvoiceRU);
* persona — ``assets/demo/persona.toml``, written by the project.

Nothing of it is committed to git as a binary.
"""

from __future__ import annotations

import logging
import shutil
import sys
import tempfile
import wave
from pathlib import Path

from .paths import REPO_ROOT, Settings

log = logging.getLogger(__name__)

ASTERISK_RU = Path("/usr/share/asterisk/sounds/ru_RU_f_IvrvoiceRU")
PERSONA_FILE = REPO_ROOT / "assets" / "demo" / "persona.toml"
DEMO_VOICE_SECONDS = 180.0  # comfortably above provisioning's minimum, small enough to provision fast


def _wav_seconds(path: Path) -> float:
    try:
        with wave.open(str(path)) as w:
            return w.getnframes() / float(w.getframerate())
    except (wave.Error, EOFError, OSError):
        return 0.0


def pick_voice_samples(folder: Path = ASTERISK_RU, total_s: float = DEMO_VOICE_SECONDS) -> list[Path]:
    """The longest prompts first (whole sentences, the best material for a voice profile)."""
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{folder} is missing: install Debian's asterisk-core-sounds-ru-wav (bootstrap.sh does)")
    clips = sorted(((_wav_seconds(p), p.name, p) for p in folder.glob("*.wav")), reverse=True)
    chosen, got = [], 0.0
    for secs, _name, path in clips:
        if got >= total_s:
            break
        if secs > 0:
            chosen.append(path)
            got += secs
    return sorted(chosen)


def assemble_bundle(out: Path) -> Path:
    """Build the demo bundle folder at ``out`` (replacing it atomically)."""
    from PIL import Image
    from skimage import data as skdata

    from provisioning import bundle

    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".demo-") as tmp:
        src = Path(tmp) / "src"
        (src / "voice").mkdir(parents=True)
        Image.fromarray(skdata.astronaut()).save(src / "photo.png")
        shutil.copyfile(PERSONA_FILE, src / "persona.toml")
        for p in pick_voice_samples():
            shutil.copyfile(p, src / "voice" / p.name)
        built = Path(tmp) / "bundle"
        bundle.build(src, built)
        if out.exists():
            shutil.rmtree(out)
        built.rename(out)
    return out


def prepare(settings: Settings) -> Path:
    """Assemble the demo bundle and, when the kiosk has no profile yet, provision from it."""
    settings.paths.ensure()
    path = assemble_bundle(settings.paths.demo_bundle)
    print(f"demo bundle assembled at {path}")
    if settings.paths.current_profile.exists():
        print(f"active profile: {settings.paths.current_profile.resolve().name} (kept)")
        return path
    try:
        from provisioning import commands as prov
    except ImportError:
        print("provisioning: not built yet — the demo runs from the bundle directly")
        return path
    rc = prov.provision_path(settings, path)
    if rc != 0:
        print("demo: provisioning the demo bundle failed (see above)", file=sys.stderr)
    return path


def main(settings: Settings, args) -> int:
    # The set-up step runs `demo --prepare-only`; a plain `demo` only assembles what is missing.
    if args.prepare_only or not (settings.paths.demo_bundle / "manifest.toml").exists():
        prepare(settings)
    if args.prepare_only:
        return 0
    try:
        from .showcase import run_demo
    except ImportError:
        print("avatar-kiosk demo: the conversation and the face are not built yet; "
              "the set-up is complete (models verified, demo bundle assembled).")
        return 0
    return run_demo(settings, args)


def build_app(settings: Settings, args):
    """The daemon's app (``avatar-kiosk run``): see appliance.showcase.KioskApp."""
    from .showcase import KioskApp

    return KioskApp(settings, args)
