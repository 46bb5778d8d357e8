"""What the daemon runs: the :class:`KioskApp` protocol, and the maintenance screen.

The real app is :class:`appliance.app.kiosk.KioskApp`; ``avatar-kiosk run`` hands the daemon a
factory for it (:mod:`appliance.app.run`). The daemon never imports it: when building or starting
the app fails, the daemon shows :class:`MaintenanceApp` with the reason and keeps the service up so
a technician can see what is wrong (``avatar-kiosk status``, ``journalctl -u avatar-kiosk``). Stand-in
apps for the daemon's own tests live in ``tests/support``.

Threading: the daemon runs ONE asyncio loop on the process's main thread, and pygame lives on
that same thread — every pygame call (display, event pump, flip) must be made from a coroutine or
callback on the loop, never from a worker thread. Blocking work (model loading, inference) goes
to worker threads (``loop.run_in_executor`` / ``asyncio.to_thread``) and hands results back with
``call_soon_threadsafe``. A renderer therefore draws from a task that awaits its frame deadline
(``await asyncio.sleep(...)``), so the loop keeps serving the control socket, signals and the
watchdog between frames. Anything that blocks the loop for longer than half of ``WatchdogSec=``
stops the watchdog pings, and systemd restarts the kiosk: that is intended.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol, runtime_checkable

log = logging.getLogger("avatar-kiosk.daemon")
EX_TEMPFAIL = 75  # "try again": systemd's Restart=on-failure starts a fresh kiosk


@runtime_checkable
class KioskApp(Protocol):
    """What ``avatar-kiosk run`` drives. Required members below; optional hooks:

    * ``def info(self) -> dict`` — figures for ``avatar-kiosk status``; recognised keys:
      ``profile`` (str), ``fps`` (float), ``vram_mb`` (int), ``turns`` (int),
      ``stage_ms`` ({stage name: [latency ms of the last turns, oldest first]}; the daemon
      computes p50/p95), ``devices`` ({"microphone": "...", "speaker": "...", "display": "..."}).
    * ``async def command(self, request: dict) -> dict`` — control-socket commands other than
      status/ping/reload, e.g. ``{"cmd": "say", "text": "...", "language": "en"}`` or
      ``{"cmd": "ask", "text": "..."}``; return ``{"ok": True, ...}`` or
      ``{"ok": False, "error": "one line"}``.
    * ``async def reload(self, settings) -> None`` — SIGHUP with freshly loaded Settings; without
      it the daemon stops the app and starts a new one from its factory.
    * ``async def provision(self, path: pathlib.Path) -> None`` — a USB stick was mounted read-only
      at ``path`` (box: /run/avatar-kiosk/usb/sdb1): copy the bundle off it, verify, switch
      profile, report. Runs as its own task; the daemon keeps pinging meanwhile.
    * ``async def stick_removed(self, path: pathlib.Path) -> None`` — that stick was pulled.
    * ``exit_code: int | None`` — set it (e.g. after ``run --exit-after`` or at the end of a
      ``--visitor`` file) and the daemon stops the app and exits with it.
    """

    @property
    def state(self) -> str:
        """One word: loading, listening, speaking, provisioning, maintenance, error."""

    @property
    def status_text(self) -> str:
        """One line for systemd's STATUS= (e.g. "listening", "speaking", "error: no microphone")."""

    async def start(self) -> None:
        """Load models, open audio and display; return when the kiosk can take a visitor.
        Raise (any exception; its message is the reason shown) if it cannot."""

    async def stop(self) -> None:
        """Abandon the current turn, release devices. Must return within 2.5 s (then it is abandoned)."""

    async def health(self) -> tuple[bool, str]:
        """(ok, reason): cheap, non-blocking; called from the loop before each watchdog ping."""


class MaintenanceApp:
    """The out-of-order screen: says why the kiosk cannot run, and stays up for the technician."""

    def __init__(self, settings: Any, reason: str, *, headless: bool = False) -> None:
        self.settings = settings
        self.reason = reason.splitlines()[0] if reason else "unknown error"
        self.headless = headless
        self._task: asyncio.Task | None = None
        self._screen_error = ""
        self._progress = ""
        self.exit_code: int | None = None

    @property
    def state(self) -> str:
        return "provisioning" if self._progress else "maintenance"

    @property
    def status_text(self) -> str:
        return f"provisioning: {self._progress}" if self._progress else f"error: {self.reason}"

    async def provision(self, path: Any) -> None:
        """A stick may be the fix (a profile, models): run the provisioning pipeline; on success
        exit with EX_TEMPFAIL so systemd restarts the kiosk with the new profile."""
        from provisioning.pipeline import provision

        loop = asyncio.get_running_loop()

        def progress(step: str, frac: float) -> None:
            loop.call_soon_threadsafe(setattr, self, "_progress", f"{step} {frac:.0%}")

        self._progress = "starting"
        try:
            result = await asyncio.to_thread(provision, self.settings, path, progress)
        finally:
            self._progress = ""
        if result.ok:
            log.info("provisioned from %s while in maintenance: restarting the kiosk", path)
            self.exit_code = EX_TEMPFAIL
        else:
            self.reason = f"{self.reason} — the USB stick did not help: {result.message}"

    async def start(self) -> None:
        try:
            from ..screen.renderer import Renderer

            self._renderer = Renderer(self.settings.config.display, headless=self.headless)
        except Exception as e:  # no display is no reason to leave: status and logs still work
            self._screen_error = f"{e.__class__.__name__}: {e}"
            log.warning("maintenance screen unavailable: %s", self._screen_error)
            return
        self._task = asyncio.get_running_loop().create_task(self._redraw())

    def _model(self):
        from ..messages import KioskState, ScreenModel

        if self._progress:
            return ScreenModel(state=KioskState.PROVISIONING, message="Setting up from the USB stick · Настройка с "
                               "флешки", step=self._progress)
        return ScreenModel(state=KioskState.ERROR, message=self.reason,
                           detail="A technician: avatar-kiosk status | doctor · Техник: avatar-kiosk status")

    async def _redraw(self) -> None:
        while True:
            self._renderer.pump()
            self._renderer.draw(self._model(), None)
            self._renderer.present()
            await asyncio.sleep(1.0)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            self._task = None
            self._renderer.close()

    async def health(self) -> tuple[bool, str]:
        return True, ""  # maintenance is a healthy state: the reason is in STATUS=, not a restart loop

    def info(self) -> dict:
        return {"maintenance_reason": self.reason,
                **({"devices": {"display": self._screen_error}} if self._screen_error else {})}
