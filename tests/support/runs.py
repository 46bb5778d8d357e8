"""The real kiosk app run headless for a while, with a silent microphone and a recording speaker."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import numpy as np

from appliance.app.kiosk import KioskApp
from appliance.audio.mic import WavFileMic
from appliance.audio.speaker import RecordingSpeaker
from appliance.paths import Settings


def run_silent(settings: Settings, seconds: float, *, realtime: bool = True,
               during: Callable[[KioskApp], Awaitable[None]] | None = None) -> KioskApp:
    """Run the kiosk for ``seconds`` of microphone silence (in real time, or as fast as it goes);
    ``during(app)`` runs beside it from its start (cancelled at the end). Returns the stopped app."""
    mic = WavFileMic(samples=np.zeros(int(seconds * 16000), np.int16), realtime=realtime)
    speaker = RecordingSpeaker(settings.config.audio.output_rate)
    app = KioskApp(settings, mic=mic, speaker=speaker, headless=True, exit_after_s=seconds)

    async def main() -> None:
        await app.start()
        task = asyncio.get_running_loop().create_task(during(app)) if during is not None else None
        try:
            await app.wait()
        finally:
            await app.stop()
            if task is not None:
                task.cancel()

    asyncio.run(main())
    return app
