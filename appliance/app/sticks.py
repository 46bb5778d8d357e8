"""A USB stick in the running kiosk: the installer's whole flow, without a service restart.

    stick appears ─► the reply in progress is cut cleanly, listening pauses
                 ─► provisioning screen: each step with its progress (provisioning.pipeline, in a worker)
                 ─► OK:     "Done — <name> is ready. You can remove the USB stick." ─► the new face,
                            voice and persona go live ─► greeting in the new voice ─► listening
                 ─► refused: the old persona comes back at once; the reason stays on screen (and in the
                            journal, and in provision-report.txt) until the stick is pulled

One stick at a time: a second stick while one is being set up is refused with a message on the
screen (never run in parallel, never queued behind a stick the installer may already have pulled).

The pipeline borrows the kiosk's loaded engines (the TTS for the greeting and voice match, the STT
for the self-test) instead of loading second copies — on the box a second XTTS would not fit the
GPU — and the kiosk is not listening meanwhile, so nothing else uses them.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from provisioning import derive, profiles
from provisioning.pipeline import STEPS, provision

from .. import logs
from ..messages import KioskState, ScreenModel
from ..paths import Settings
from .profile import ProfileFiles, active_profile

log = logging.getLogger("avatar-kiosk.app")

DONE_SHOWN_S = 2.0   # "Done — … You can remove the USB stick." stays this long before the greeting
REPORT_NAME = "provision-report.txt"
REPORT_HEADER = "avatar-kiosk provisioning report"  # the first line of every report we write
TITLE = "Setting up from the USB stick · Настройка с флешки"
BUSY = ("Another USB stick is already being set up — wait until it is done, then plug this one in again "
        "· Уже идёт настройка с другой флешки")


@dataclass(frozen=True)
class StickOutcome:
    """The last stick's result, for ``avatar-kiosk status``."""

    path: str
    ok: bool
    message: str
    code: str
    seconds: float
    profile_id: str | None = None
    greeted_after_s: float | None = None  # the stick appeared -> the new persona's greeting started (wall)
    greeting_at_s: float | None = None    # where that greeting starts on the speaker's clock


class StickHost(Protocol):
    """What the stick flow needs from the kiosk app (:class:`.kiosk.KioskApp`)."""

    settings: Settings
    conv: Any
    engines: Any
    speaker: Any
    profile: ProfileFiles
    overlay: ScreenModel | None
    notice: str

    async def hush(self) -> None: ...
    async def use_profile(self, profile: ProfileFiles) -> None: ...
    async def restore_voice(self) -> None: ...


class StickProvisioner:
    def __init__(self, app: StickHost) -> None:
        self.app = app
        self.current: Path | None = None
        self.last: StickOutcome | None = None
        self._notice_for: Path | None = None  # the stick whose refusal is on screen

    @property
    def busy(self) -> bool:
        return self.current is not None

    def info(self) -> dict:
        out: dict = {"busy": self.busy, "stick": str(self.current) if self.current else None}
        if self.last is not None:
            out["last"] = self.last.__dict__
        return out

    async def provision(self, path: Path) -> None:
        app = self.app
        if self.busy:
            log.warning("USB stick at %s while %s is being set up: refused", path, self.current,
                        extra=logs.fields(device=path.name, code="usb_busy"))
            self._show_notice(path, BUSY)
            return
        if app.conv is None:
            log.warning("USB stick at %s before the kiosk finished loading: plug it in again", path,
                        extra=logs.fields(device=path.name, code="usb_too_early"))
            return
        loop = asyncio.get_running_loop()
        t_seen = loop.time()
        self.current = path
        if self._notice_for is not None:
            self._clear_notice()
        titles = [t for k, t in STEPS.items() if k != "download"]  # a stick is copied, not downloaded

        def progress(step: str, frac: float) -> None:  # provisioning's worker thread
            loop.call_soon_threadsafe(self._progress, titles, step, frac)

        def copied() -> None:
            loop.call_soon_threadsafe(self._progress, titles, STEPS["verify"], 0.0)

        app.overlay = ScreenModel(state=KioskState.PROVISIONING, message=TITLE, step=STEPS["copy"], progress=0.0,
                                  detail="Do not remove the USB stick yet · Не вынимайте флешку")
        log.info("USB stick mounted at %s: provisioning while running (%s)", path, app.profile.persona.name,
                 extra=logs.fields(device=path.name, stage="provision"))
        result = None
        try:
            await app.hush()
            lent = {"tts": app.engines.tts, "stt": app.engines.stt}
            with derive.lent_engines(lent):
                result = await asyncio.to_thread(provision, app.settings, path, progress, on_copied=copied)
            await asyncio.to_thread(write_report_to_stick, path, result.report)
            if result.ok:
                await self._went_live(result)
            else:
                await app.restore_voice()
                self._show_notice(path, f"USB stick not accepted: {result.message}. Nothing on the kiosk changed. "
                                        "· Флешка не принята, на киоске ничего не изменилось.")
        except Exception as e:  # a bug must not leave the kiosk mute behind a provisioning screen
            log.error("provisioning from %s went wrong in the kiosk: %s: %s", path, e.__class__.__name__, e,
                      exc_info=True, extra=logs.fields(logs.PROVISION_FAILED, device=path.name, code="app_error"))
            self._show_notice(path, "Setting up from the USB stick went wrong inside the kiosk; the kiosk keeps "
                                    "its persona. Call a technician.")
            await app.restore_voice()
        finally:
            app.overlay = None
            self.current = None
            app.conv.release()
            if result is not None:
                self.last = StickOutcome(str(path), result.ok, result.message, result.code, round(result.seconds, 1),
                                         result.profile_id)
        if result is not None and result.ok:
            self.last = replace(self.last, greeted_after_s=round(loop.time() - t_seen, 1),
                                greeting_at_s=round(app.speaker.played_seconds + app.speaker.queued_seconds, 2))
            await self._greet()

    async def profile_changed(self) -> dict:
        """``avatar-kiosk provision`` (a path or an https URL, pushed by a fleet tool) switched the
        active profile on disk: go live with it the way a stick does — the reply in progress cut
        cleanly, the new face, voice and persona, its greeting, the trial confirmed — without a
        restart."""
        app = self.app
        if self.busy:
            return {"ok": False, "error": "a USB stick is being set up; the kiosk takes the new profile after it"}
        profile = active_profile(app.settings)
        if profile.id == app.profile.id:
            return {"ok": True, "changed": False, "profile": profile.id}
        self.current = Path(profile.folder)  # one switch at a time, as with sticks
        try:
            await app.hush()
            await self._use(profile, ", provisioned from outside")
        finally:
            self.current = None
            app.conv.release()
        await self._greet()
        return {"ok": True, "changed": True, "profile": profile.id, "persona": profile.persona.name}

    def _progress(self, titles: list[str], step: str, frac: float) -> None:
        app = self.app
        if app.overlay is None:
            return
        i = titles.index(step) if step in titles else 0
        detail = app.overlay.detail
        if i >= 1:  # copying is over: the stick is never read again
            detail = "You can remove the USB stick now · Флешку можно вынуть"
        app.overlay = ScreenModel(state=KioskState.PROVISIONING, message=TITLE,
                                  step=f"{i + 1}/{len(titles)}  {step}", progress=(i + frac) / len(titles),
                                  detail=detail)

    async def _went_live(self, result) -> None:
        app = self.app
        app.overlay = ScreenModel(state=KioskState.PROVISIONING, message=result.message, progress=1.0,
                                  step="Ready · Готово")
        await asyncio.sleep(DONE_SHOWN_S)
        await self._use(active_profile(app.settings))

    async def _use(self, profile, how: str = "") -> None:
        """Go live with ``profile`` (face, voice, persona) and say so in the journal."""
        await self.app.use_profile(profile)
        log.info("now running as %s (profile %s%s), without a restart", profile.persona.name, profile.id, how,
                 extra=logs.fields(profile_id=profile.id, stage="provision"))

    async def _greet(self) -> None:
        """The new persona greets in its own voice; having spoken, its trial is over."""
        app = self.app
        await app.conv.greet(app.profile.persona.languages[0])
        try:
            profiles.confirm(app.settings.paths)
        except Exception as e:
            log.warning("could not confirm the new profile: %s", e)

    def _show_notice(self, path: Path, text: str) -> None:
        self._notice_for = path
        self.app.notice = text

    def _clear_notice(self) -> None:
        self._notice_for = None
        self.app.notice = ""

    def removed(self, path: Path) -> None:
        """The stick was pulled: its refusal leaves the screen."""
        if self._notice_for == path:
            self._clear_notice()


def write_report_to_stick(stick: Path, report: str) -> bool:
    """Put ``provision-report.txt`` on the stick when it is writable (on the box sticks are mounted
    read-only, so the report stays on the kiosk and its screen). Never overwrites a file of that
    name that the kiosk did not write."""
    target = stick / REPORT_NAME
    try:
        if not os.access(stick, os.W_OK):
            return False
        if target.exists():
            with target.open("r", encoding="utf-8", errors="replace") as f:
                if f.readline().strip() != REPORT_HEADER:
                    log.info("%s on the stick is not ours: left as it is", target)
                    return False
        tmp = stick / f".{REPORT_NAME}.partial"
        tmp.write_text(report, encoding="utf-8")
        os.replace(tmp, target)
        return True
    except OSError as e:  # pulled, full, read-only: the report is on the kiosk anyway
        log.info("could not write the report onto the stick: %s", e)
        return False
