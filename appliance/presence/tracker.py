"""Frames with faces → visits: a pure state machine on the camera's clock (no sleeps, no wall time).

A visit starts when a close, looking face is seen in ``confirm`` consecutive analysed frames (one
frame of a false detection greets nobody) and ends when no such face was seen for ``gone_after_s``.
A face that comes back within that time is the same visitor: no second greeting.
"""

from __future__ import annotations

from .events import VisitorArrived, VisitorLeft


class PresenceTracker:
    def __init__(self, gone_after_s: float, confirm: int = 2) -> None:
        if gone_after_s <= 0:
            raise ValueError(f"gone_after_s must be positive, got {gone_after_s!r}")
        self.gone_after_s = gone_after_s
        self.confirm = max(1, confirm)
        self.present = False
        self.arrived_at: float | None = None
        self.last_seen: float | None = None
        self._streak = 0

    def update(self, t: float, faces: int) -> list[VisitorArrived | VisitorLeft]:
        """Feed one analysed frame at camera time ``t``; returns the visits it starts or ends."""
        out: list[VisitorArrived | VisitorLeft] = []
        if faces > 0:
            self._streak += 1
            self.last_seen = t
            if not self.present and self._streak >= self.confirm:
                self.present, self.arrived_at = True, t
                out.append(VisitorArrived(t, faces))
        else:
            self._streak = 0
            if self.present and self.last_seen is not None and t - self.last_seen >= self.gone_after_s:
                stayed = self.last_seen - (self.arrived_at or self.last_seen)
                self.present, self.arrived_at = False, None
                out.append(VisitorLeft(t, stayed))
        return out

    def reset(self) -> None:
        """The camera went away: nobody is known to be there (sound decides meanwhile)."""
        self.present, self.arrived_at, self.last_seen, self._streak = False, None, None, 0
