"""The running kiosk's metrics, kept current and published (see :mod:`appliance.metrics` for what
and why there): fed from the conversation's events and the renderer, written to node_exporter's
textfile directory after every turn and every ``metrics.interval_s``, and optionally served on
127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from pathlib import Path

from ..messages import BargeIn, TurnDone
from ..metrics import FallbackCounter, KioskMetrics, textfile_dir
from ..presence.events import CameraBack, CameraLost, VisitorArrived, VisitorLeft

log = logging.getLogger("avatar-kiosk.metrics")


class Telemetry:
    def __init__(self, settings) -> None:
        self.settings = settings
        self.metrics = KioskMetrics()
        self.dir: Path = textfile_dir(settings)
        self._counter = FallbackCounter(self.metrics)
        self._task: asyncio.Task | None = None
        self._http = None
        self._writing = False

    def attach(self) -> None:
        """Before the engines load: fallbacks decided while loading are counted too."""
        logging.getLogger().addHandler(self._counter)
        port = self.settings.config.metrics.http_port
        if port:
            from prometheus_client import start_http_server

            try:  # localhost only: a kiosk's network is public; a scraper on the box reads it
                self._http, _thread = start_http_server(port, addr="127.0.0.1", registry=self.metrics.registry)
            except OSError as e:
                log.warning("metrics: cannot serve on 127.0.0.1:%d: %s", port, e)

    def engines_loaded(self, engines) -> None:
        self.metrics.engines_loaded(engines.config)
        llm = engines.llm
        if llm is not None and hasattr(llm, "server_up"):
            self.metrics.watch_llm_server(lambda: llm.server_up)
        self._task = asyncio.get_running_loop().create_task(self._every())

    def event(self, item) -> None:
        match item:
            case TurnDone(metrics=m):
                self.metrics.turn(m)
                self.write_soon()  # a scrape right after a turn sees it
            case BargeIn():
                self.metrics.barge_in()
            case VisitorArrived():
                self.metrics.visitor_arrived()
            case VisitorLeft(stayed_s=stayed):
                self.metrics.visitor_left(stayed)
            case CameraLost():
                self.metrics.camera(False)
            case CameraBack():
                self.metrics.camera(True)

    def frame(self, interval_s: float | None, skipped: int) -> None:
        if interval_s is not None:
            self.metrics.frame(interval_s)
        self.metrics.frames_skipped_total(skipped)

    def write_soon(self) -> None:
        """Write the file off the loop (a full disk or a slow one must not stall the face)."""
        if self._writing:
            return  # the write in flight will carry this too, or the next one will
        self._writing = True
        asyncio.get_running_loop().run_in_executor(None, self._write)

    def _write(self) -> None:  # a worker thread
        from ..daemon.status import gpu_mem_of

        try:
            mb = gpu_mem_of(os.getpid())
            if mb is not None:
                self.metrics.set_vram(mb * 2**20)
            self.metrics.write(self.dir)
        finally:
            self._writing = False

    async def _every(self) -> None:
        while True:
            self.write_soon()
            await asyncio.sleep(self.settings.config.metrics.interval_s)

    def close(self) -> None:
        """The kiosk stops: its models are no longer serving, and the file says so."""
        if self._task is not None:
            self._task.cancel()
        logging.getLogger().removeHandler(self._counter)
        self.metrics.engines_unloaded()
        with contextlib.suppress(Exception):
            self.metrics.write(self.dir)  # no nvidia-smi here: stopping has 2.5 s in all
        if self._http is not None:
            self._http.shutdown()
