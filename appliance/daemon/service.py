"""``avatar-kiosk run``: the daemon systemd starts (``Type=notify``).

One asyncio loop on the main thread (pygame shares that thread; see :mod:`.apps`) does it all:

1. STATUS=loading models, the control socket opens (``status`` works while models load);
2. the caller's start-up check runs (``preflight``: every engine once, in a child process, so a
   native library that crashes names itself instead of crash-looping the service), then the app
   is built by the caller's ``app_factory`` and started; if either fails, the reason goes to the
   journal (MODEL_LOAD_FAILED) and the maintenance screen takes its place — the service stays up;
3. READY=1; from then on, every tick: STATUS= follows the app's status line, and every half
   ``WatchdogSec=`` the app's ``health()`` runs *on the loop* and only a passing check sends
   WATCHDOG=1. A hung loop or a failing check stops the pings and systemd restarts the kiosk;
4. SIGHUP reloads the config (a bad file keeps the old one and says why); SIGTERM/SIGINT abandon
   the current turn: ``app.stop()`` gets 2.5 s, the process is out within 5 s whatever happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from .. import config as config_mod
from .. import logs, paths
from ..engines.select import VramError
from . import apps, control
from .notify import Notifier
from .status import RecentErrors, gpu_mem_of, percentile
from .usb import UsbWatcher

log = logging.getLogger("avatar-kiosk.daemon")

STOP_APP_S = 2.5     # app.stop() gets this long
HARD_EXIT_S = 4.0    # after SIGTERM the process is gone by then, even if the loop is stuck
TICK_S = 0.25        # STATUS= follow-up and stop/reload checks


AppFactory = Callable[[paths.Settings, Any], "apps.KioskApp"]
Preflight = Callable[[paths.Settings], "str | None"]  # None: go on; else the reason for the maintenance screen


class Kiosk:
    """The daemon core: owns the app, the notifier, the control socket and the signals."""

    def __init__(self, settings: paths.Settings, args: Any, app_factory: AppFactory,
                 notifier: Notifier | None = None, preflight: Preflight | None = None) -> None:
        self.settings = settings
        self.args = args
        self.notifier = notifier or Notifier()
        self.app_factory = app_factory
        self.preflight = preflight
        self.app: Any = None
        self.started = time.monotonic()
        self.errors = RecentErrors()
        self._stop = asyncio.Event()
        self._reload = asyncio.Event()
        self._last_status = ""
        self._health_failing = False
        self.reloads = 0

    # ------------------------------------------------------------------ signals
    def _on_signal(self, signum: int, _frame: Any) -> None:
        # A Python-level handler (not loop.add_signal_handler) so a loop stuck in Python code
        # still gets the hard-exit timer.
        if signum == signal.SIGHUP:
            self._loop.call_soon_threadsafe(self._reload.set)
            return
        if not self._stop.is_set():
            t = threading.Timer(HARD_EXIT_S, self._hard_exit, (signum,))
            t.daemon = True
            t.start()
        self._loop.call_soon_threadsafe(self._stop.set)

    def _hard_exit(self, signum: int) -> None:
        log.error("did not stop within %.1f s of signal %d; exiting hard", HARD_EXIT_S, signum,
                  extra=logs.fields(logs.STOPPED, code="hard_exit"))
        os._exit(1)

    # ------------------------------------------------------------------ status
    def _set_status(self, text: str) -> None:
        if text != self._last_status:
            self._last_status = text
            self.notifier.status(text)

    async def handle(self, req: dict) -> dict:
        cmd = req["cmd"]
        if cmd == "ping":
            return {"ok": True, "pid": os.getpid()}
        if cmd == "status":
            return await self.status()
        if cmd == "reload":
            self._reload.set()
            return {"ok": True, "reloading": True}
        hook = getattr(self.app, "command", None)
        if hook is None:
            return {"ok": False, "error": f"the kiosk cannot do {cmd!r} in its current state "
                    f"({getattr(self.app, 'state', 'starting')})"}
        return await hook(req)

    async def status(self) -> dict:
        app = self.app
        info: dict = {}
        if app is not None and hasattr(app, "info"):
            with contextlib.suppress(Exception):
                info = dict(app.info())
        latency = {}
        for stage, values in (info.pop("stage_ms", None) or {}).items():
            vals = [float(v) for v in values][-50:]
            if vals:
                latency[stage] = {"p50": percentile(vals, 50), "p95": percentile(vals, 95), "n": len(vals)}
        out = {
            "ok": True, "pid": os.getpid(), "uptime_s": time.monotonic() - self.started,
            "app": type(app).__name__ if app is not None else None,
            "state": getattr(app, "state", "loading") if app is not None else "loading",
            "status": self._last_status, "config": str(self.settings.paths.config_file),
            "watchdog_s": self.notifier.watchdog_interval, "reloads": self.reloads,
            "info": info, "latency": latency, "errors": list(self.errors.items),
        }
        if "vram_mb" not in info:
            out["vram_mb"] = await asyncio.to_thread(gpu_mem_of, os.getpid())
        return out

    # ------------------------------------------------------------------ life
    async def _until_stop(self, aw) -> tuple[bool, Any]:
        """Await ``aw`` unless a stop is requested first: (finished, result)."""
        task = asyncio.ensure_future(aw)
        stopper = asyncio.ensure_future(self._stop.wait())
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if task.done():
            return True, task.result()
        task.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(task, 0.5)
        return False, None

    def _recover_profile(self) -> None:
        """Before anything loads: clean provisioning leftovers and count this start against a
        profile that is still "trying" (it rolls back by itself after repeated failed starts)."""
        try:
            from provisioning import profiles

            profiles.recover(self.settings.paths)
        except Exception as e:  # never let recovery keep the kiosk down
            log.warning("profile recovery at start failed: %s", e)

    def _confirm_profile(self) -> None:
        """The kiosk is up with its profile (not the maintenance screen): a trying profile is good."""
        if isinstance(self.app, apps.MaintenanceApp):
            return
        try:
            from provisioning import profiles

            profiles.confirm(self.settings.paths)
        except Exception as e:
            log.warning("could not confirm the active profile: %s", e)

    async def _start_app(self) -> bool:
        """Build and start the app; on failure the maintenance screen. False if stopped meanwhile."""
        self._set_status("loading models")
        try:
            if getattr(self.args, "config_error", None):
                raise config_mod.ConfigError(self.args.config_error)
            if self.preflight is not None:
                finished, reason = await self._until_stop(asyncio.to_thread(self.preflight, self.settings))
                if not finished:
                    return False
                if reason:
                    await self._maintenance(reason)
                    return True
            self.app = self.app_factory(self.settings, self.args)
            finished, _ = await self._until_stop(self.app.start())
            if not finished:
                return False
        except config_mod.ConfigError as e:
            reason = f"{e} — fix {self.settings.paths.config_file}"
            log.error("the kiosk cannot start, its config is broken (fix it, then `systemctl reload "
                      "avatar-kiosk`): %s", e, extra=logs.fields(logs.CONFIG_ERROR, code="config_at_start"))
            await self._maintenance(reason)
        except Exception as e:
            reason = f"{e.__class__.__name__}: {e}" if str(e) else e.__class__.__name__
            log.error("the kiosk could not start: %s", reason, exc_info=not isinstance(e, VramError),
                      extra=logs.fields(logs.MODEL_LOAD_FAILED,
                                        code="vram_plan" if isinstance(e, VramError) else "start_failed"))
            await self._maintenance(reason)
        return True

    async def _maintenance(self, reason: str) -> None:
        if self.app is not None:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(self.app.stop(), STOP_APP_S)
        self.app = apps.MaintenanceApp(self.settings, reason, headless=bool(getattr(self.args, "headless", False)))
        await self.app.start()

    async def _do_reload(self) -> None:
        self._reload.clear()
        self.notifier.reloading()
        try:
            new = paths.load_settings(self.settings.paths.config_file)
        except config_mod.ConfigError as e:
            log.error("reload refused, keeping the running config: %s", e, extra=logs.fields(logs.CONFIG_ERROR))
            self.notifier.send("READY=1")
            return
        self.settings = new
        self.reloads += 1
        if getattr(self.args, "config_error", None):
            # Started on the defaults behind the maintenance screen (it has no reload hook, so the
            # real app is built below from the now-valid file).
            self.args.config_error = None
        hook = getattr(self.app, "reload", None)
        if hook is not None:
            await hook(new)
        else:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(self.app.stop(), STOP_APP_S)
            if not await self._start_app():
                return
        log.info("config reloaded from %s", new.paths.config_file, extra=logs.fields(logs.CONFIG_RELOADED))
        self.notifier.send("READY=1")

    async def _check_health(self, timeout: float) -> None:
        try:
            ok, reason = await asyncio.wait_for(self.app.health(), timeout)
        except Exception as e:
            ok, reason = False, f"health check raised {e.__class__.__name__}: {e}"
        if ok:
            self.notifier.watchdog()
            if self._health_failing:
                log.info("health check passes again")
            self._health_failing = False
            self._set_status(self.app.status_text)
            return
        self._set_status(f"error: {reason}")
        if not self._health_failing:
            log.error("health check failed, withholding the watchdog ping (systemd will restart the kiosk): %s",
                      reason, extra=logs.fields(logs.WATCHDOG_FIRED, code="health"))
        self._health_failing = True

    async def run(self) -> int:
        self._loop = asyncio.get_running_loop()
        logging.getLogger().addHandler(self.errors)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_signal)
        self.notifier.mainpid()
        log.info("avatar-kiosk starting (pid %d, config %s)", os.getpid(), self.settings.paths.config_file,
                 extra=logs.fields(logs.STARTED))
        try:
            self.settings.paths.ensure()
        except OSError as e:
            log.warning("cannot create the kiosk's folders: %s", e)
        self._recover_profile()
        server = control.ControlServer(self.settings.paths.control_socket, self.handle)
        try:
            await server.start()
        except (control.DaemonUnavailable, OSError) as e:
            log.error("control socket: %s", e)
            self.notifier.status(f"error: {e}")
            return 1
        wd = self.notifier.watchdog_interval
        interval = wd if wd else 5.0
        exit_code = 0
        try:
            # Loading: the loop is alive and start-up is bounded by TimeoutStartSec=, so ping.
            pinger = asyncio.ensure_future(self._ping_while_loading(interval))
            try:
                started = await self._start_app()
            finally:
                pinger.cancel()
            if started:
                self._set_status(self.app.status_text)
                self.notifier.ready(self.app.status_text)
                log.info("ready: %s", self.app.status_text, extra=logs.fields(logs.READY))
                self._confirm_profile()
                next_check = 0.0
                usb = self._usb_watcher()
                next_usb = 0.0
                while not self._stop.is_set():
                    if self._reload.is_set():
                        await self._do_reload()
                    code = getattr(self.app, "exit_code", None)
                    if code is not None:
                        log.info("the app finished (exit code %s)", code)
                        exit_code = int(code)
                        break
                    if usb is not None and time.monotonic() >= next_usb:
                        next_usb = time.monotonic() + 1.0
                        await self._check_usb(usb)
                    now = time.monotonic()
                    if now >= next_check:
                        next_check = now + interval
                        await self._check_health(max(0.1, interval))
                    elif not self._health_failing:
                        self._set_status(self.app.status_text)
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(self._stop.wait(), min(TICK_S, interval))
        finally:
            self.notifier.stopping("stopping")
            if self.app is not None:
                try:
                    await asyncio.wait_for(self.app.stop(), STOP_APP_S)
                except (TimeoutError, Exception) as e:
                    log.warning("app did not stop cleanly: %s", e.__class__.__name__)
            await server.close()
            log.info("avatar-kiosk stopped", extra=logs.fields(logs.STOPPED))
            self.notifier.close()
            logging.getLogger().removeHandler(self.errors)
        return exit_code

    def _usb_watcher(self) -> UsbWatcher | None:
        if not self.settings.config.provisioning.auto_detect:
            return None
        return UsbWatcher(self.settings.paths.runtime_dir / "usb", require_mount=self.settings.paths.mode == "box")

    async def _check_usb(self, usb: UsbWatcher) -> None:
        new, gone = usb.scan()
        for path in gone:
            log.info("USB stick removed: %s", path, extra=logs.fields(device=path.name))
            hook = getattr(self.app, "stick_removed", None)
            if hook is not None:
                await hook(path)
        for path in new:
            hook = getattr(self.app, "provision", None)
            if hook is None:
                log.warning("USB stick at %s, but the kiosk cannot provision in its current state (%s)", path,
                            getattr(self.app, "state", "?"), extra=logs.fields(device=path.name, code="usb_ignored"))
                continue
            log.info("USB stick mounted at %s: provisioning", path, extra=logs.fields(device=path.name))
            self._loop.create_task(self._provision(hook, path))

    async def _provision(self, hook, path) -> None:
        try:
            await hook(path)
        except Exception as e:  # the app reports its own outcome (PROVISION_OK/FAILED); this is a bug guard
            log.error("provisioning from %s crashed: %s: %s", path, e.__class__.__name__, e, exc_info=True,
                      extra=logs.fields(logs.PROVISION_FAILED, device=path.name, code="crash"))

    async def _ping_while_loading(self, interval: float) -> None:
        while True:
            self.notifier.watchdog()
            await asyncio.sleep(interval)


def main(settings: paths.Settings, args: Any, app_factory: AppFactory, preflight: Preflight | None = None) -> int:
    """Run the daemon around the app ``app_factory`` builds (``avatar-kiosk run`` passes the kiosk
    app; the tests pass stand-ins for the daemon's own mechanics)."""
    # Not asyncio.run(): it waits for the executor's threads, and an inference call that is still
    # running in one must not hold the exit past the 5 s bound.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    code = 1
    try:
        code = loop.run_until_complete(Kiosk(settings, args, app_factory, preflight=preflight).run())
        pending = asyncio.all_tasks(loop)
        for t in pending:
            t.cancel()
        if pending:
            loop.run_until_complete(asyncio.wait(pending, timeout=1.0))
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        busy = [t.name for t in threading.enumerate()
                if t is not threading.main_thread() and t.is_alive() and not t.daemon]
        if busy:
            log.info("leaving %d busy worker thread(s) behind: %s", len(busy), ", ".join(busy[:5]))
            logging.shutdown()
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(code)
        loop.close()
    return code
