"""Which video frame is "now": derived from the speaker's played-samples counter, never wall time.

Public API::

    frame_index(played_samples: int, sample_rate: int, fps: int) -> int   # floor(samples * fps / rate)
    frame_start_sample(frame: int, sample_rate: int, fps: int) -> int     # first sample of a frame
    frame_time(frame: int, fps: int) -> float                             # frame / fps (for the animator)
    AudioClock(played: Callable[[], int], sample_rate: int, fps: int)
        .frame_now() -> int ; .t_now() -> float (the current frame's time)
        .due() -> int | None   # the frame to draw now, or None when it was already drawn

Everything is integer arithmetic on sample counts, so there is no accumulated rounding: after an
hour at 22 050 Hz and 25 fps the frame index is exactly 90 000, and at every moment the frame shown
is the one whose interval contains the sample being played (|error| < one frame, always).
"""

from __future__ import annotations

import time
from collections.abc import Callable


def frame_index(played_samples: int, sample_rate: int, fps: int) -> int:
    return (int(played_samples) * int(fps)) // int(sample_rate)


def frame_start_sample(frame: int, sample_rate: int, fps: int) -> int:
    return -((-int(frame) * int(sample_rate)) // int(fps))


def frame_time(frame: int, fps: int) -> float:
    return frame / fps


class AudioClock:
    """The renderer's view of the speaker clock. ``played`` returns samples played so far (an int)."""

    def __init__(self, played: Callable[[], int], sample_rate: int, fps: int,
                 moved_at: Callable[[], float] | None = None) -> None:
        self.played = played
        self.moved_at = moved_at  # perf_counter() time ``played`` last changed (lateness on the wall clock)
        self.sample_rate = int(sample_rate)
        self.fps = int(fps)
        self._last: int | None = None
        self.late_s = 0.0  # how far the clock was past the frame's start when due() returned it

    def frame_now(self) -> int:
        return frame_index(self.played(), self.sample_rate, self.fps)

    def t_now(self) -> float:
        return frame_time(self.frame_now(), self.fps)

    def due(self) -> int | None:
        """The frame to draw now if it differs from the last one returned (frames may be skipped
        when rendering falls behind: the picture follows the sound, never the other way)."""
        played = int(self.played())
        k = frame_index(played, self.sample_rate, self.fps)
        if k == self._last:
            return None
        self._last = k
        self.late_s = (played - frame_start_sample(k, self.sample_rate, self.fps)) / self.sample_rate
        if self.moved_at is not None:  # ...and how long the clock had been there when we looked
            self.late_s += max(time.perf_counter() - self.moved_at(), 0.0)
        return k
