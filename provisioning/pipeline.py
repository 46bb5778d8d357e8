"""The provisioning pipeline: a bundle folder (a mounted stick) becomes the active profile, or nothing changes.

    copy -> verify -> validate -> derive -> self-test -> switch

Each step reports ``on_progress(step_title, fraction)``; ``fraction`` runs 0..1 within the step and
the titles (``STEPS``) are the plain-language names the screen shows. After ``copy`` the stick is
never read again (``on_copied`` fires then: the watcher unmounts it and the screen may say the
stick can be removed). Nothing outside ``staging/`` is written before ``switch``, and ``switch``
is atomic (see :mod:`provisioning.profiles`), so a failure or a kill at any point leaves the active
profile untouched.

Report: ``provision-report.txt`` is written to the state folder (the latest attempt, success or
failure) and into the new profile's folder. It is never written to the stick: sticks are mounted
read-only, and the installer may pull one at any moment.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from appliance import logs, metrics
from appliance import persona as persona_mod
from appliance.knowledge import Knowledge, KnowledgeError
from appliance.lang import is_cyrillic
from appliance.paths import Settings
from appliance.profile import Profile

from . import derive, durable, profiles, remote, selftest, staging, verify
from . import voice as voice_mod
from .errors import ProvisionError

log = logging.getLogger("avatar-kiosk.provision")

STEPS = {
    "copy": "Copying from the USB stick",
    "download": "Downloading the bundle",  # instead of "copy" for an https URL (provisioning.remote)
    "verify": "Checking the bundle",
    "validate": "Checking the photo, the voice and the persona",
    "derive": "Preparing the face and the voice",
    "selftest": "Testing the new persona",
    "switch": "Switching to the new persona",
}
ProgressFn = Callable[[str, float], None]
INTERNAL = ("Something went wrong inside the kiosk while setting up this bundle — nothing was changed. "
            "Try the stick again; if it happens again, call a technician")


@dataclass
class ProvisionResult:
    ok: bool
    message: str                 # one sentence for the screen
    code: str = "ok"
    step: str = ""
    profile_id: str | None = None
    previous_id: str | None = None
    report_path: Path | None = None
    report: str = ""
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


class _Report:
    def __init__(self, source: Path | str) -> None:
        self.lines = [
            "avatar-kiosk provisioning report",
            f"time:   {datetime.now(UTC).strftime('%Y-%m-%d %H:%M:%S UTC')}",
            f"bundle: {source}",
            "",
        ]

    def add(self, line: str) -> None:
        self.lines.append(line)

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def provision(settings: Settings, path: Path | str, on_progress: ProgressFn | None = None, *,
              on_copied: Callable[[], None] | None = None) -> ProvisionResult:
    """Provision the kiosk from the bundle folder at ``path``, or from the signed bundle at an https
    URL (a string). Never raises for a bad bundle."""
    t0 = time.monotonic()
    paths = settings.paths
    paths.ensure()
    paths.staging_dir.mkdir(parents=True, exist_ok=True)
    report = _Report(path)
    notes: list[str] = []
    current = "copy"

    def progress(step: str, frac: float) -> None:
        if on_progress:
            try:
                on_progress(STEPS[step], max(0.0, min(1.0, frac)))
            except Exception:  # a broken progress display must not break provisioning
                log.exception("progress callback failed")

    def begin(step: str) -> None:
        nonlocal current
        current = step
        progress(step, 0.0)

    with durable.provision_lock(paths):
        # Under the lock no other provisioning runs: a job-* folder here is a killed one's leftover
        # (it would wait for the daemon's next start otherwise). Only our own job-* folders go.
        for stale in paths.staging_dir.glob("job-*"):
            shutil.rmtree(stale, ignore_errors=True)
            notes.append(f"removed {stale.name}, left by a provisioning that was stopped")
        job = paths.staging_dir / f"job-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
        try:
            cfg = settings.config.provisioning
            if remote.is_url(path):  # the one step that differs; from verify on, one code path
                begin("download")
                got = remote.download(str(path), job / "bundle", list(cfg.trusted_keys), ca_file=cfg.ca_file,
                                      max_file_bytes=cfg.max_file_mb << 20, progress=lambda f: progress("download", f))
                report.add(f"downloaded {len(got)} files ({sum(e.size for e in got) / 2**20:.1f} MB), "
                           "signed manifest checked before the download")
            else:
                path = Path(path)
                begin("copy")
                source = staging.locate(path)
                if source != path:
                    report.add(f"bundle folder on the stick: {source.name}")
                files = staging.copy_to_staging(source, job / "bundle", cfg.max_file_mb << 20,
                                                lambda f: progress("copy", f))
                report.add(f"copied {len(files)} files ({sum(f.size for f in files) / 2**20:.1f} MB) from the stick")
            if on_copied:
                on_copied()

            begin("verify")
            vb = verify.verify(job / "bundle", list(cfg.trusted_keys), lambda f: progress("verify", f))
            report.add("manifest: every file matches its checksum" +
                       (" — signature valid" if vb.signed else " — unsigned (this kiosk accepts unsigned bundles)"))

            begin("validate")
            try:
                persona = persona_mod.load(vb.root / "persona.toml")
            except persona_mod.PersonaError as e:
                raise ProvisionError("persona", str(e), step="validate") from None
            report.add(f"persona: {persona.name}, languages {', '.join(persona.languages)}")
            progress("validate", 0.1)
            rgb = pc = None
            if derive.stubbed():
                from .photo import load_rgb

                load_rgb(vb.photo)
                report.add("photo: decoded (face check STUBBED by the test switch)")
            else:
                from .photo import check_photo

                rgb, pc = check_photo(vb.photo)
                report.add(f"photo: {pc.width}×{pc.height} px, one face {pc.face.w} px wide")
            progress("validate", 0.4)
            if vb.knowledge is not None:
                try:
                    sheet = Knowledge.from_bytes(vb.knowledge.read_bytes())
                except KnowledgeError as e:
                    raise ProvisionError("knowledge", str(e), step="validate") from None
                languages = sorted({"ru" if is_cyrillic(p.text) else "en" for p in sheet.passages})
                report.add(f"facts: knowledge.md, {len(sheet.passages)} passage(s) ({', '.join(languages)})")
            vc = voice_mod.check_voices(list(vb.voices), cfg.min_voice_s)
            report.add(f"voice: {len(vc.files)} recording(s), {sum(f.seconds for f in vc.files):.0f} s in all, "
                       f"{vc.usable_s:.0f} s of clean speech")
            for n in vc.notes:
                report.add(f"  note: {n}")
            stick_models = derive.check_stick_models(settings, vb.models, {e.path: e.sha256 for e in vb.entries})
            if stick_models:
                report.add(f"models: {len(stick_models)} production model file(s) on the stick, all verified")
            progress("validate", 1.0)

            begin("derive")
            prof = job / "profile"
            (prof / "voice").mkdir(parents=True)
            os.rename(vb.root / "persona.toml", prof / "persona.toml")
            os.rename(vb.photo, prof / vb.photo.name)
            if vb.knowledge is not None:
                os.rename(vb.knowledge, Profile(prof).knowledge)
            for v in vb.voices:
                os.rename(v, prof / "voice" / v.name)
            notes += derive.run(settings, prof, rgb, pc, vc, persona, stick_models, lambda f: progress("derive", f))

            begin("selftest")
            notes += selftest.run(settings, prof, persona)
            progress("selftest", 1.0)

            begin("switch")
            previous = profiles.last_good(paths)
            pid = base = profiles.new_id(persona.name, vb.manifest_sha256)
            suffix = 1
            while (paths.profiles_dir / pid).exists():
                suffix += 1
                pid = f"{base}-{suffix}"
            for n in notes:
                report.add(f"  {n}")
            report.add("")
            report.add(f"RESULT: OK — {persona.name} is now the kiosk's persona (profile {pid}).")
            report.add("It is on trial until the kiosk has started with it" + (
                f"; if it cannot, the kiosk goes back to {previous} by itself." if previous else "."))
            files = Profile(prof)
            files.report.write_text(report.text(), encoding="utf-8")
            face_photo = files.enhanced_photo if files.enhanced_photo.is_file() else files.photo
            profiles.write_profile_json(prof, pid, persona.name, previous, str(path), {
                "signed": vb.signed, "manifest_sha256": vb.manifest_sha256,
                "photo": vb.photo.name, "face_photo": face_photo.relative_to(prof).as_posix(),
                "voice_reference": files.voice_reference.relative_to(prof).as_posix(),
            })
            progress("switch", 0.3)
            final = profiles.publish(paths, prof, pid)
            for old in profiles.prune(paths):
                log.info("removed old profile %s (keeping the newest %d)", old, profiles.KEEP_PROFILES)
            progress("switch", 1.0)
            message = f"Done — {persona.name} is ready." + ("" if remote.is_url(path) else
                                                            " You can remove the USB stick.")
            log.info("provisioned profile %s (%s) from %s", pid, persona.name, path,
                     extra=logs.fields(logs.PROVISION_OK, profile_id=pid, stage="switch"))
            result = ProvisionResult(True, message, profile_id=pid, previous_id=previous,
                                     report_path=final / profiles.REPORT, notes=notes)
        except ProvisionError as e:
            step = e.step or current
            for n in notes:
                report.add(f"  {n}")
            report.add("")
            report.add(f"RESULT: FAILED at '{STEPS.get(step, step)}' — nothing was changed on the kiosk.")
            report.add(f"What is wrong: {e.message}")
            log.warning("provisioning from %s failed at %s: %s", path, step, e.message,
                        extra=logs.fields(logs.PROVISION_FAILED, code=e.code, stage=step))
            result = ProvisionResult(False, e.message, code=e.code, step=step, notes=notes)
        except OSError as e:
            if e.errno not in (errno.ENOSPC, errno.EDQUOT):
                result = _internal(report, path, current, notes)
            else:
                msg = ("The kiosk's disk filled up while preparing the new persona — nothing was changed. "
                       "Ask a technician to free space (old profiles can be removed)")
                report.add("")
                report.add(f"RESULT: FAILED at '{STEPS.get(current, current)}' — nothing was changed on the kiosk.")
                report.add(f"What is wrong: {msg}")
                log.warning("provisioning from %s failed at %s: disk full", path, current,
                            extra=logs.fields(logs.PROVISION_FAILED, code="disk-full", stage=current))
                result = ProvisionResult(False, msg, code="disk-full", step=current, notes=notes)
        except Exception:
            result = _internal(report, path, current, notes)
        finally:
            shutil.rmtree(job, ignore_errors=True)
            derive.release_engines()
        result.seconds = time.monotonic() - t0
        result.report = report.text()
        latest = paths.state_dir / profiles.REPORT
        try:
            durable.write_atomic(latest, result.report.encode("utf-8"))
            if result.report_path is None:
                result.report_path = latest
        except OSError:
            log.warning("could not write %s", latest)
        # The same file whether a stick, `avatar-kiosk provision` or a fleet tool asked: one path.
        metrics.provision_result(settings, result.ok, result.code)
    return result


def _internal(report: _Report, path: Path, step: str, notes: list[str]) -> ProvisionResult:
    log.exception("provisioning from %s failed at %s with an internal error", path, step,
                  extra=logs.fields(logs.PROVISION_FAILED, code="internal", stage=step))
    report.add("")
    report.add(f"RESULT: FAILED at '{STEPS.get(step, step)}' — nothing was changed on the kiosk.")
    report.add(f"What is wrong: {INTERNAL}")
    return ProvisionResult(False, INTERNAL, code="internal", step=step, notes=notes)
