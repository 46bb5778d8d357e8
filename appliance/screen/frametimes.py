"""How steadily the face moves: the wall time between frames shown, and frames the renderer had to
skip (it shows the frame the *sound* is at, so a late frame is never drawn twice: the next one jumps).

A visitor sees the interval, not the drawing time: 25 fps is a frame every 40 ms, and an interval of
80 ms is a visible hitch whether the drawing was slow or the event loop was busy elsewhere.
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
        self._last: tuple[int, float] | None = None

    def shown(self, k: int, started: float, finished: float) -> float | None:
        """Frame ``k`` was drawn from ``started`` to ``finished`` (perf_counter seconds); the time since
        the frame before, in seconds (None for the first)."""
        self.drawn += 1
        interval = None
        self.draw_ms.append((finished - started) * 1000)
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
                "interval_ms_p50": pct(self.interval_ms, 50), "interval_ms_p99": pct(self.interval_ms, 99),
                "draw_ms_p50": pct(self.draw_ms, 50), "draw_ms_p99": pct(self.draw_ms, 99)}

    def line(self) -> str:
        s = self.summary()
        return (f"{s['frames']} frames, {s['skipped']} skipped; time between frames p50 {s['interval_ms_p50']} ms, "
                f"p99 {s['interval_ms_p99']} ms; drawing p50 {s['draw_ms_p50']} ms, p99 {s['draw_ms_p99']} ms")
