"""How steadily the face moves: frames the renderer had to skip (it shows the frame the *sound* is
at, so a late frame is never drawn twice: the next one jumps), each frame's time from due to shown,
the wall time between frames, and the drawing alone.

* **Frame time** (the figure the face is held to: p99 ≤ 40 ms keeps 25 fps): from the moment the
  speaker's clock reached the frame's start to the moment it was on screen — the wait for the
  event loop (a busy loop, a thread holding the GIL) plus the drawing. Under 40 ms, every frame
  is shown within its own slot.
* **Interval**: what a visitor sees between frames. At 25 fps it is 40 ms by construction; its
  spread also holds the speaker clock's own steps (a device's period, or the 20-ms microphone
  frames a recording speaker counts in), which no renderer can remove. An 80-ms interval is a
  visible hitch, and shows up as a skipped frame too.
"""

from __future__ import annotations

from collections import deque

import numpy as np

KEPT = 20_000  # ~13 min at 25 fps: the daemon runs for months


class FrameTimes:
    def __init__(self) -> None:
        self.drawn = 0
        self.skipped = 0
        self.draw_ms: deque[float] = deque(maxlen=KEPT)
        self.interval_ms: deque[float] = deque(maxlen=KEPT)
        self.frame_ms: deque[float] = deque(maxlen=KEPT)
        self._last: tuple[int, float] | None = None

    def shown(self, k: int, started: float, finished: float, late_s: float = 0.0) -> float | None:
        """Frame ``k`` was drawn from ``started`` to ``finished`` (perf_counter seconds), ``late_s``
        after the speaker's clock reached it; returns the time since the frame before, in seconds
        (None for the first)."""
        self.drawn += 1
        interval = None
        self.draw_ms.append((finished - started) * 1000)
        self.frame_ms.append((max(late_s, 0.0) + finished - started) * 1000)
        if self._last is not None:
            last_k, last_t = self._last
            if k > last_k + 1:
                self.skipped += k - last_k - 1
            interval = finished - last_t
            self.interval_ms.append(interval * 1000)
        self._last = (k, finished)
        return interval

    def summary(self) -> dict:
        def pct(values, q: float) -> float:
            return round(float(np.percentile(list(values), q)), 1) if values else 0.0

        return {"frames": self.drawn, "skipped": self.skipped,
                "frame_ms_p50": pct(self.frame_ms, 50), "frame_ms_p99": pct(self.frame_ms, 99),
                "interval_ms_p50": pct(self.interval_ms, 50), "interval_ms_p99": pct(self.interval_ms, 99),
                "draw_ms_p50": pct(self.draw_ms, 50), "draw_ms_p99": pct(self.draw_ms, 99)}

    def line(self) -> str:
        s = self.summary()
        return (f"{s['frames']} frames, {s['skipped']} skipped; frame time (due to shown) p50 {s['frame_ms_p50']} ms, "
                f"p99 {s['frame_ms_p99']} ms (25 fps: <= 40); time between frames p50 {s['interval_ms_p50']} ms, "
                f"p99 {s['interval_ms_p99']} ms; drawing p50 {s['draw_ms_p50']} ms, p99 {s['draw_ms_p99']} ms")
