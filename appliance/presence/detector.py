"""Faces that are close and look at the screen, with mediapipe's face detector (BlazeFace, CPU).

"Close" is the face box's width as a fraction of the frame's (``min_face``); "looking" compares the
nose tip with the middle of the eyes: a face turned to the side has its nose well off that middle
(a frontal face: |turn| < 0.1; in profile: > 0.5). Only the count leaves this module.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FaceBox:
    """A detection, in fractions of the frame (kept inside the presence thread)."""

    x: float
    y: float
    w: float
    h: float
    score: float
    turn: float  # nose offset from the eyes' middle, in eye distances: 0 = facing the camera


def turn_of(right_eye: tuple[float, float], left_eye: tuple[float, float], nose: tuple[float, float]) -> float:
    """How far the head is turned: the nose's horizontal offset from the eyes' middle over their distance."""
    dist = abs(left_eye[0] - right_eye[0])
    if dist < 1e-6:
        return 1.0  # eyes on top of each other: a profile
    return abs(nose[0] - (left_eye[0] + right_eye[0]) / 2) / dist


def counts(faces: list[FaceBox], min_face: float, max_turn: float | None) -> int:
    """How many of ``faces`` are close enough and (if ``max_turn`` is set) looking at the screen."""
    return sum(1 for f in faces if f.w >= min_face and (max_turn is None or f.turn <= max_turn))


class FaceDetector:
    def __init__(self, min_confidence: float = 0.6) -> None:
        import mediapipe as mp

        # model_selection=1: the full-range model (faces up to ~5 m), as a visitor walks up
        self._fd = mp.solutions.face_detection.FaceDetection(model_selection=1,
                                                            min_detection_confidence=min_confidence)

    def faces(self, rgb: np.ndarray) -> list[FaceBox]:
        result = self._fd.process(np.ascontiguousarray(rgb))
        out = []
        for d in result.detections or []:
            box = d.location_data.relative_bounding_box
            k = d.location_data.relative_keypoints  # right eye, left eye, nose tip, mouth, ears
            turn = turn_of((k[0].x, k[0].y), (k[1].x, k[1].y), (k[2].x, k[2].y)) if len(k) >= 3 else 0.0
            out.append(FaceBox(box.xmin, box.ymin, box.width, box.height, float(d.score[0]), turn))
        return out

    def close(self) -> None:
        self._fd.close()
