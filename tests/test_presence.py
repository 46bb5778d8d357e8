"""Presence from a camera, with a video file standing in for it: frames built from a packaged photo
(tests/support/scenes.py), the real mediapipe face detector, the real presence thread. The file is
read in virtual time (as fast as the detector goes), its own timestamps the presence clock."""

from __future__ import annotations

import dataclasses
import logging
import time

import pytest
from support import scenes

from appliance.config import ConfigError, PresenceConfig, from_dict
from appliance.presence.detector import FaceBox, counts, turn_of
from appliance.presence.events import CameraLost, VisitorArrived, VisitorLeft
from appliance.presence.tracker import PresenceTracker
from appliance.presence.watcher import PresenceWatcher


def feed(tracker: PresenceTracker, frames: list[tuple[float, int]]) -> list:
    return [ev for t, n in frames for ev in tracker.update(t, n)]


def test_tracker_greets_once_per_visit_and_not_on_one_false_frame():
    tr = PresenceTracker(gone_after_s=5, confirm=2)
    step = 0.2
    timeline = [(i * step, 0) for i in range(10)]                  # nobody
    timeline += [(2.0, 1), (2.2, 0)]                               # one false detection
    timeline += [(2.4 + i * step, 1) for i in range(10)]           # someone: arrives at 2.6
    timeline += [(4.4 + i * step, 0) for i in range(10)]           # looks away for 2 s: the same visitor
    timeline += [(6.4 + i * step, 1) for i in range(5)]            # back
    timeline += [(7.4 + i * step, 0) for i in range(40)]           # gone: last face at 7.2
    events = feed(tr, timeline)
    assert events == [VisitorArrived(2.6, 1), VisitorLeft(pytest.approx(12.2), pytest.approx(4.6))]


def test_looking_and_close_enough():
    assert turn_of((0.40, 0.3), (0.50, 0.3), (0.45, 0.35)) == pytest.approx(0.0)
    assert turn_of((0.40, 0.3), (0.50, 0.3), (0.52, 0.35)) == pytest.approx(0.7)  # a profile
    close, far, aside = (FaceBox(0, 0, w, w, 0.9, turn) for w, turn in ((0.2, 0.05), (0.05, 0.05), (0.2, 0.7)))
    assert counts([close, far, aside], min_face=0.12, max_turn=0.35) == 1
    assert counts([close, far, aside], min_face=0.12, max_turn=None) == 2


def test_presence_config_rejects_bad_input_clearly():
    with pytest.raises(ConfigError, match="presence.night_hours"):
        from_dict({"presence": {"night_hours": [22]}})
    with pytest.raises(ConfigError, match="presence.fps"):
        from_dict({"presence": {"fps": 0}})
    assert from_dict({"presence": {"camera": "/dev/video0"}}).presence.camera == "/dev/video0"


def watch(cfg: PresenceConfig, until_t: float | None = None) -> tuple[list, PresenceWatcher]:
    """Run the presence thread over the file in virtual time; the events it handed over."""
    got: list = []

    def pace(t: float) -> bool:
        return until_t is None or t < until_t

    w = PresenceWatcher(cfg, got.append, pace=pace)
    w.start()
    assert w.ended.wait(300), "the presence thread did not finish the file"
    w.stop()
    return got, w


SCENE = [("empty", 3.0), ("far", 3.0), ("close", 4.0), ("empty", 9.0), ("close", 3.0), ("empty", 9.0)]


def test_a_video_of_two_visits_greets_each_arrival_once(tmp_path):
    video = scenes.write_scene(tmp_path / "hall.avi", SCENE, fps=10, mirror_after=4)
    cfg = PresenceConfig(camera=str(video), fps=5.0, gone_after_s=6.0)
    t0 = time.perf_counter()
    got, w = watch(cfg)
    wall = time.perf_counter() - t0
    arrivals = [e for e in got if isinstance(e, VisitorArrived)]
    lefts = [e for e in got if isinstance(e, VisitorLeft)]
    faces_at = scenes.starts(SCENE, "close")
    assert len(arrivals) == 2, got  # never on the empty hall nor on the face far off, once per visit
    for ev, t in zip(arrivals, faces_at, strict=True):
        assert 0 <= ev.t - t <= 1.0, (ev, t)  # within 1 s of the face appearing (video time)
    ends = [t + 4.0 for t in faces_at[:1]] + [faces_at[1] + 3.0]
    assert len(lefts) == 2
    for ev, end in zip(lefts, ends, strict=True):
        assert 6.0 <= ev.t - end + 0.2 <= 6.0 + 0.5, (ev, end)  # gone_after_s after the last face
    print(f"\npresence: arrivals {[round(e.t - t, 2) for e, t in zip(arrivals, faces_at, strict=True)]} s after the face "
          f"appeared; detector {w.ms_per_frame:.1f} ms/frame; {w.frames} frames in {wall:.1f} s")


def test_ten_minutes_of_an_empty_hall_greet_nobody(tmp_path):
    video = scenes.write_scene(tmp_path / "empty.avi", [("empty", 10.0)], fps=2)
    cfg = PresenceConfig(camera=str(video), loop_file=True, fps=2.0)
    got, w = watch(cfg, until_t=600.0)
    assert w.frames >= 1190  # ten minutes of the file's time, looped, analysed at 2 fps
    assert not [e for e in got if isinstance(e, (VisitorArrived, VisitorLeft))], got


def test_a_missing_camera_is_one_journal_line_and_retried(caplog):
    cfg = dataclasses.replace(PresenceConfig(), camera="/dev/video-not-there", retry_s=0.5)
    got: list = []
    w = PresenceWatcher(cfg, got.append, detector=object())
    with caplog.at_level(logging.WARNING, logger="avatar-kiosk.presence"):
        w.start()
        time.sleep(1.3)  # ~3 attempts
        w.stop()
    lines = [r.getMessage() for r in caplog.records if r.name == "avatar-kiosk.presence"]
    assert len(lines) == 1 and "does not exist" in lines[0] and "by sound" in lines[0], lines
    assert got == [CameraLost(got[0].reason)]


def test_a_camera_that_vanishes_mid_visit_is_one_line_then_back(monkeypatch, caplog):
    """The device stands in: it gives frames with a face, stops (unplugged), cannot be opened once,
    then gives frames again."""
    import numpy as np

    from appliance.presence import watcher as watcher_mod
    from appliance.presence.camera import CameraError
    from appliance.presence.events import CameraBack

    opens = iter([1.0, "gone", float("inf")])  # seconds of frames each time the camera is opened

    class Cam:
        name = "/dev/video0"

        def __init__(self, lasts: float) -> None:
            self.t, self.lasts = 0.0, lasts

        def read(self):
            self.t += 0.2
            time.sleep(0.005)
            return (self.t, np.zeros((4, 4, 3), np.uint8)) if self.t < self.lasts else None

        def close(self) -> None:
            pass

    def open_camera(spec, **_kw):
        lasts = next(opens)
        if lasts == "gone":
            raise CameraError("presence.camera: /dev/video0 does not exist (is the camera plugged in?)")
        return Cam(lasts)

    class Detector:
        def faces(self, _rgb):
            return [FaceBox(0.4, 0.3, 0.2, 0.25, 0.9, 0.05)]

    monkeypatch.setattr(watcher_mod, "open_camera", open_camera)
    got: list = []
    w = PresenceWatcher(PresenceConfig(camera="/dev/video0", retry_s=0.1), got.append, detector=Detector())
    with caplog.at_level(logging.INFO, logger="avatar-kiosk.presence"):
        w.start()
        deadline = time.monotonic() + 5
        while not any(isinstance(e, CameraBack) for e in got) and time.monotonic() < deadline:
            time.sleep(0.05)
        w.stop()
    kinds = [type(e).__name__ for e in got]
    assert kinds[:3] == ["VisitorArrived", "CameraLost", "CameraBack"], kinds  # the failed reopen: no 2nd line
    lines = [r.getMessage() for r in caplog.records if r.name == "avatar-kiosk.presence"]
    assert sum("by sound" in line for line in lines) == 1 and any("works again" in line for line in lines), lines


def test_status_shows_the_camera_line():
    from appliance.daemon.control import format_status

    shown = format_status({"state": "listening", "info": {"presence": {
        "camera": "/dev/video0", "camera_ok": False, "present": False, "visitors": 12, "invitations": 3,
        "detector_ms": 7.5}}})
    assert "camera    /dev/video0: NOT reading — presence by sound meanwhile; 12 visitor(s)" in shown
