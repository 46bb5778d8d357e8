"""``avatar-kiosk run``: the daemon (appliance.daemon) driving the kiosk app, with the devices the
command line asks for. This is where the service gets its app factory and its start-up check; the
daemon itself knows neither.
"""

from __future__ import annotations

import os
from typing import Any

from ..paths import Settings
from .kiosk import KioskApp


def has_display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) or \
        os.environ.get("SDL_VIDEODRIVER") not in (None, "", "dummy", "offscreen")


def devices(settings: Settings, visitor=None, *, keep_s: float | None = None):
    """(microphone, speaker): a WAV-file visitor with a recording speaker (keeping the last ``keep_s``
    seconds it played, or all), else the sound card."""
    from ..audio.mic import PyAudioMic, WavFileMic
    from ..audio.speaker import PyAudioSpeaker, RecordingSpeaker

    a = settings.config.audio
    if visitor:
        return (WavFileMic(visitor, realtime=True, frame_ms=a.frame_ms),
                RecordingSpeaker(a.output_rate, a.volume, keep_s=keep_s))
    return (PyAudioMic(a.input_device, frame_ms=a.frame_ms, reconnect_s=a.reconnect_s),
            PyAudioSpeaker(a.output_rate, a.output_device, a.volume))


def make_app(settings: Settings, args: Any) -> KioskApp:
    """The app for the daemon, from ``run``'s options."""
    visitor = getattr(args, "visitor", None)
    keeps_all = getattr(args, "speaker_out", None) or getattr(args, "record", None)
    mic, speaker = devices(settings, visitor, keep_s=None if keeps_all else 60.0)
    return KioskApp(settings, mic=mic, speaker=speaker,
                    headless=bool(getattr(args, "headless", False)) or not has_display(),
                    record=getattr(args, "record", None),
                    exit_after_s=float(getattr(args, "exit_after", 0.0) or 0.0) or None,
                    finish_with_mic=bool(visitor), speaker_out=getattr(args, "speaker_out", None))


def main(settings: Settings, args: Any) -> int:
    from ..daemon import service
    from .smoke import preflight

    return service.main(settings, args, app_factory=make_app, preflight=preflight)
