"""What the presence thread hands to the kiosk's loop: counts and times, never pixels."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class VisitorArrived:
    """Someone came close and looked at the screen (once per visit): greet them."""

    t: float
    faces: int


@dataclass(frozen=True)
class VisitorLeft:
    """No face for ``presence.gone_after_s``: the visit (``stayed_s`` long) is over."""

    t: float
    stayed_s: float


@dataclass(frozen=True)
class CameraLost:
    """The camera could not be opened or stopped giving frames; presence falls back to sound."""

    reason: str


@dataclass(frozen=True)
class CameraBack:
    """The camera gives frames again."""

    name: str
