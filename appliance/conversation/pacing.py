"""Virtual time, for a microphone that is a recording read as fast as possible (tests, ``listen``,
``bench``): the recording waits while the kiosk computes with nothing to play, so audio-time results
(where a reply starts, where a barge-in cut it) do not depend on the machine's speed.

Wired from outside, and only for such a microphone (``mic.virtual``): a device microphone never
waits, and production pays nothing for this.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Protocol


class Ticker:
    """Something moved (a frame, a chunk, a finished check): wakes whoever waits for progress."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def tick(self) -> None:
        self._event.set()

    async def next(self, timeout: float | None = None) -> None:
        self._event.clear()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout)


class Paced(Protocol):
    """What pacing looks at in the conversation."""

    ticker: Ticker
    stopped: bool

    def must_hold(self) -> bool: ...
    def realtime_since(self) -> tuple[float, float] | None: ...
    def audio_now(self) -> float: ...


class VirtualPacing:
    """The microphone's ``pace`` hook: before each frame, wait while the kiosk must hold; and while
    work overlaps the visitor's audio (a transcription started during the end-of-speech silence:
    ``realtime_since`` gives its wall and audio start), let the recording run no faster than a
    device's microphone would, so that the overlap saves what it would save on the kiosk."""

    def __init__(self, conv: Paced) -> None:
        self.conv = conv

    async def __call__(self) -> None:
        while self.conv.must_hold() and not self.conv.stopped:
            await self.conv.ticker.next()
        while (since := self.conv.realtime_since()) is not None and not self.conv.stopped:
            wall0, audio0 = since
            ahead = (self.conv.audio_now() - audio0) - (time.monotonic() - wall0)
            if ahead <= 0:
                break
            await self.conv.ticker.next(timeout=ahead)
