"""Stand-in apps for the daemon's own mechanics — signals, watchdog, hangs, slow stops — and the
entry point that runs the real daemon around them:

    python tests/support/stand_in_daemon.py BEHAVIOUR [avatar-kiosk options] run --headless …

BEHAVIOUR: ``null`` (reports state, does nothing), ``hang`` (blocks the loop after
``AVATAR_KIOSK_HANG_AFTER`` seconds), ``unhealthy`` (health check fails after that time), ``fail``
(start() raises, as a model that fails to load), ``slowstop`` (stop() never returns), ``busy`` (a
worker thread is still inside a long call at stop), ``slowstart`` (loading takes
``AVATAR_KIOSK_HANG_AFTER`` seconds), ``maintenance`` (the maintenance screen with
``AVATAR_KIOSK_REASON``). Tests of the kiosk itself run the real app (``avatar-kiosk run``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from appliance import cli  # noqa: E402
from appliance.daemon import service  # noqa: E402
from appliance.daemon.apps import MaintenanceApp  # noqa: E402

log = logging.getLogger("avatar-kiosk.daemon")
BEHAVIOURS = ("null", "hang", "unhealthy", "fail", "slowstart", "slowstop", "busy", "maintenance")


class NullApp:
    """A kiosk that does nothing but report its state: tests and bring-up of a new box."""

    def __init__(self, settings: Any = None, behaviour: str = "null", after_s: float = 1.0, args: Any = None) -> None:
        self.settings = settings
        self.behaviour = behaviour
        self.after_s = after_s
        self._state = "loading"
        self._text = "loading models"
        self._started_at = 0.0
        self._task: asyncio.Task | None = None
        self.spoken: list[str] = []
        self.reloads = 0
        self.sticks: list[str] = []
        self.exit_code: int | None = None
        self.exit_after = float(getattr(args, "exit_after", 0.0) or 0.0)

    @property
    def state(self) -> str:
        return self._state

    @property
    def status_text(self) -> str:
        return self._text

    async def start(self) -> None:
        await asyncio.sleep(self.after_s if self.behaviour == "slowstart" else 0.05)
        if self.behaviour == "fail":
            raise RuntimeError("model 'whisper-base' failed to load: test failure (stand-in app 'fail')")
        self._state, self._text = "listening", "listening"
        self._started_at = time.monotonic()
        if self.behaviour == "hang":
            self._task = asyncio.get_running_loop().create_task(self._hang())
        elif self.behaviour == "busy":  # an inference call that is still running when SIGTERM comes
            self._task = asyncio.ensure_future(asyncio.to_thread(time.sleep, 3600))
        elif self.exit_after > 0:
            asyncio.get_running_loop().call_later(self.exit_after, setattr, self, "exit_code", 0)

    async def _hang(self) -> None:
        await asyncio.sleep(self.after_s)
        log.warning("test app: blocking the main loop now")
        time.sleep(3600)  # deliberately blocks the loop: the watchdog must notice

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
        if self.behaviour == "slowstop":
            await asyncio.sleep(3600)
        self._state, self._text = "stopped", "stopped"

    async def health(self) -> tuple[bool, str]:
        if self.behaviour == "unhealthy" and time.monotonic() - self._started_at > self.after_s:
            return False, "test app: microphone delivers no frames"
        return True, ""

    def info(self) -> dict:
        return {"profile": "none", "fps": 0.0, "turns": len(self.spoken), "reloads": self.reloads,
                "sticks": self.sticks,
                "stage_ms": {"stt": [100.0, 120.0, 300.0], "llm": [200.0, 250.0, 400.0]}}

    async def command(self, request: dict) -> dict:
        if request.get("cmd") == "say":
            self.spoken.append(str(request.get("text", "")))
            return {"ok": True, "said": self.spoken[-1]}
        return {"ok": False, "error": f"the null app does not do {request.get('cmd')!r}"}

    async def reload(self, settings: Any) -> None:
        self.settings = settings
        self.reloads += 1

    async def provision(self, path: Any) -> None:
        self.sticks.append(str(path))


def factory(behaviour: str):
    def make(settings: Any, args: Any):
        if behaviour == "maintenance":
            return MaintenanceApp(settings, os.environ.get("AVATAR_KIOSK_REASON", "maintenance"),
                                  headless=bool(getattr(args, "headless", False)))
        return NullApp(settings, behaviour, float(os.environ.get("AVATAR_KIOSK_HANG_AFTER", "1.0")), args)
    return make


if __name__ == "__main__":
    behaviour, argv = sys.argv[1], sys.argv[2:]
    if behaviour not in BEHAVIOURS:
        sys.exit(f"stand_in_daemon: {behaviour!r} is not one of {', '.join(BEHAVIOURS)}")
    sys.exit(cli.main(argv, run=lambda settings, args: service.main(settings, args, factory(behaviour))))
