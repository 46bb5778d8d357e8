"""The renderer under SDL's dummy driver, the audio-clock frame mapping, and the video recorder."""

from __future__ import annotations

import io
import itertools
import json
import shutil
import subprocess
import threading
import wave
from fractions import Fraction

import numpy as np
import pytest
from skimage import data

from appliance.config import DisplayConfig
from appliance.face.animator import MeshWarpAnimator
from appliance.face.mouth import MouthTracker
from appliance.face.rig import build_rig
from appliance.messages import KioskState, MouthPose, ScreenModel
from appliance.screen.clock import AudioClock, frame_index, frame_start_sample
from appliance.screen.record import Recorder
from appliance.screen.renderer import Renderer

STATES = {
    "idle": ScreenModel(state=KioskState.IDLE, hint="Say hello! · Скажите «привет»!"),
    "listening": ScreenModel(state=KioskState.LISTENING, level=0.6, heard="Привет, как"),
    "thinking": ScreenModel(state=KioskState.THINKING, heard="Привет! Как тебя зовут?"),
    "speaking": ScreenModel(state=KioskState.SPEAKING, heard="What is this place?",
                            saying="Здравствуйте! Меня зовут Алиса. This is the science museum — ask me anything."),
    "provisioning": ScreenModel(state=KioskState.PROVISIONING, progress=0.4, step="Checking the voice samples",
                                detail="Keep the USB stick in until this finishes."),
    "error": ScreenModel(state=KioskState.ERROR, message="The photo shows two faces — use a photo with one person",
                         detail="Put a corrected bundle on the USB stick and plug it in again."),
}


@pytest.fixture(scope="module")
def animator() -> MeshWarpAnimator:
    return MeshWarpAnimator(build_rig(data.astronaut()), size=512, seed=0)


@pytest.fixture(scope="module")
def renderer():
    r = Renderer(DisplayConfig(width=360, height=640), headless=True)
    yield r
    r.close()


def test_every_state_renders_distinctly(renderer, animator, tmp_path):
    import pygame

    images = {}
    for name, model in STATES.items():
        face = None if name == "error" else animator.frame(2.0, MouthPose(0.5, 0.3) if name == "speaking" else MouthPose())
        surf = renderer.draw(model, face, t=2.0)
        assert surf.get_size() == (360, 640)
        path = tmp_path / f"screen-{name}.png"
        renderer.save_png(path)
        img = pygame.surfarray.array3d(pygame.image.load(str(path))).swapaxes(0, 1)
        assert img.shape == (640, 360, 3)
        assert img.std() > 20                                   # not blank
        assert len(np.unique(img.reshape(-1, 3), axis=0)) > 200  # real content, not a fill
        np.testing.assert_array_equal(img, renderer.rgb())      # rgb() is what was drawn
        images[name] = img.astype(int)
    for (a, ia), (b, ib) in itertools.combinations(images.items(), 2):
        assert np.abs(ia - ib).mean() > 1.0, f"{a} and {b} look the same"
    # the face fills the width and the top four fifths of a portrait screen; the error screen hides it
    assert renderer.face_rect.size == (360, 512)
    face_area = (slice(0, 300), slice(0, 360))
    assert np.abs(images["idle"][face_area] - images["error"][face_area]).mean() > 30


def test_listening_meter_follows_the_level(renderer):
    quiet = renderer.draw(ScreenModel(state=KioskState.LISTENING, level=0.1), None) and renderer.rgb().copy()
    loud = renderer.draw(ScreenModel(state=KioskState.LISTENING, level=0.9), None) and renderer.rgb().copy()
    green = lambda im: ((im[..., 1] > 150) & (im[..., 0] < 120)).sum()  # noqa: E731
    assert green(loud) > green(quiet) + 500


def test_cyrillic_glyphs_are_real(renderer):
    # a font without Cyrillic draws every letter as the same box: two words would look identical
    a = renderer.font(32).render("Привет", True, (255, 255, 255), (0, 0, 0))
    b = renderer.font(32).render("Пролёт", True, (255, 255, 255), (0, 0, 0))
    import pygame

    pa, pb = pygame.surfarray.array3d(a), pygame.surfarray.array3d(b)
    assert pa.shape[0] > 60
    assert pa.shape != pb.shape or np.abs(pa.astype(int) - pb.astype(int)).sum() > 0
    lines = renderer.wrap("Здравствуйте! Меня зовут Алиса, и я расскажу вам о нашем музее.", 24, 200)
    assert len(lines) >= 3 and all(renderer.font(24).size(line)[0] <= 200 for line in lines)


def mouth_row(r) -> int:
    return r.face_rect.y + int(0.62 * r.face_rect.h)  # where the rig puts every face's mouth


@pytest.mark.parametrize("size", [(1080, 1920), (1920, 1080), (360, 640), (800, 480)])
def test_the_face_fills_the_screen_and_the_captions_never_cover_the_mouth(size):
    w, h = size
    r = Renderer(DisplayConfig(width=w, height=h), headless=True)
    try:
        face = np.zeros((512, 512, 3), np.uint8)
        face[int(0.62 * 512):int(0.62 * 512) + 4] = (255, 0, 0)      # a red line across the mouth
        r.draw(ScreenModel(state=KioskState.SPEAKING, heard="Когда открыт музей?",
                           saying="Музей открыт каждый день с 10 утра до 6 вечера, кроме понедельника."), face)
        img = r.rgb()
        rows = np.where((img[..., 0] > 200) & (img[..., 1] < 60))[0]
        assert len(rows) and abs(int(rows.mean()) - mouth_row(r)) <= 0.01 * h + 6  # the mouth, fully red
        if h > w:
            assert r.face_rect.w == w and r.face_rect.h >= 0.8 * h - 1       # portrait: width and 4/5 of the height
        else:
            assert r.face_rect.h == h and abs(r.face_rect.centerx - w // 2) <= 1  # landscape: full height, centred
        assert r._band_at[1] > mouth_row(r) + 4                        # the fade starts below the mouth
        band = img[r.panel.y + r.pad:, r.pad:w - r.pad]
        assert band.mean() < 90 and (band > 200).any()                  # dark backdrop, light caption
    finally:
        r.close()
        # the module's renderer owns the display again for the following tests
        Renderer(DisplayConfig(width=360, height=640), headless=True)


def test_renderer_refuses_other_threads():
    err = []

    def make():
        try:
            Renderer(DisplayConfig(width=200, height=300), headless=True)
        except RuntimeError as e:
            err.append(e)

    th = threading.Thread(target=make)
    th.start()
    th.join()
    assert err and "main thread" in str(err[0])


def test_no_display_falls_back_to_offscreen(monkeypatch, caplog):
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")   # restored after the test
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    import pygame

    pygame.display.quit()  # as at start-up: no display opened yet
    r = Renderer(DisplayConfig(width=240, height=400, sdl_driver="x11", fullscreen=True))
    try:
        assert pygame.display.get_driver() == "dummy" and r.size == (240, 400)
        assert "no display" in caplog.text
        assert not pygame.mouse.get_visible()
    finally:
        r.close()


# --------------------------------------------------------------------------- clock


@pytest.mark.parametrize("rate,fps", [(22050, 25), (22050, 24), (48000, 30), (44100, 60)])
def test_clock_has_no_drift_over_an_hour(rate, fps):
    """A speaker reporting its played-sample counter in uneven blocks for one simulated hour."""
    rng = np.random.default_rng(fps)
    blocks = rng.integers(64, 2048, size=200_000)
    played = np.cumsum(blocks)
    played = played[played <= 3600 * rate]
    played = np.append(played, 3600 * rate)
    frames = (played * fps) // rate                       # what the renderer computes
    assert frame_index(int(played[-1]), rate, fps) == 3600 * fps
    sample = [int(p) for p in played[:: 997]] + [int(played[-1])]
    for p in sample:
        k = frame_index(p, rate, fps)
        exact = Fraction(p, rate)                         # the true audio time
        assert Fraction(k, fps) <= exact < Fraction(k + 1, fps)   # the frame shown contains "now"
        assert frame_start_sample(k, rate, fps) <= p < frame_start_sample(k + 1, rate, fps)
    assert np.all(np.diff(frames) >= 0) and np.all(np.diff(frames) <= 2048 * fps // rate + 1)
    # exact frame boundaries late in the hour, where a float mapping lands one frame off
    for k in range(3600 * fps - 5000, 3600 * fps, 7):
        p = frame_start_sample(k, rate, fps)
        assert frame_index(p, rate, fps) == k and frame_index(p - 1, rate, fps) == k - 1


def test_audio_clock_follows_the_speaker_for_an_hour():
    rate, fps = 22050, 24                        # 918.75 samples a frame: no integer step
    rng = np.random.default_rng(7)
    played = [0]
    clock = AudioClock(lambda: played[0], rate, fps)
    shown = []
    while played[0] < 3600 * rate:
        played[0] = min(3600 * rate, played[0] + int(rng.integers(64, 2048)))
        k = clock.due()
        if k is not None:
            p = played[0]
            assert k * rate <= p * fps < (k + 1) * rate  # the frame on screen is the one playing now
            shown.append(k)
    assert shown[-1] == 3600 * fps                   # no drift after an hour
    assert all(b > a for a, b in zip(shown, shown[1:], strict=False))   # never back, never twice


def test_audio_clock_due_frames():
    played = [0]
    clock = AudioClock(lambda: played[0], 22050, 25)
    assert clock.due() == 0 and clock.due() is None
    played[0] = 882
    assert clock.due() == 1
    played[0] = 882 * 5 + 441   # rendering fell behind: skip to the frame for now
    assert clock.due() == 5 and clock.t_now() == pytest.approx(0.2)
    assert clock.late_s == pytest.approx(0.02)   # found half a frame after it was due
    # with the wall time the clock moved: a stalled loop finds the frame later still
    import time

    stalled = AudioClock(lambda: played[0], 22050, 25, moved_at=lambda: time.perf_counter() - 0.015)
    assert stalled.due() == 5 and stalled.late_s == pytest.approx(0.035, abs=0.003)


# --------------------------------------------------------------------------- recording


def _ffprobe(path) -> dict:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_streams", "-show_format", "-count_frames",
                          "-of", "json", str(path)], capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def test_record_a_speaking_clip(tmp_path, animator):
    if shutil.which("ffmpeg") is None or shutil.which("espeak-ng") is None:
        pytest.skip("ffmpeg / espeak-ng not installed")
    wav_bytes = subprocess.run(["espeak-ng", "-v", "en", "--stdout", "Hello! Nice to meet you."],
                               capture_output=True, check=True).stdout
    with wave.open(io.BytesIO(wav_bytes)) as w:
        rate = w.getframerate()
        x = np.frombuffer(w.readframes(w.getnframes()), np.int16).astype(np.float32) / 32768
    wav = tmp_path / "kiosk.wav"
    wav.write_bytes(wav_bytes)
    fps = 25
    tracker = MouthTracker(rate, fps)
    tracker.add(x, 0)
    r = Renderer(DisplayConfig(width=360, height=640), headless=True, fps=fps)
    n = frame_index(len(x), rate, fps) + 1
    out = tmp_path / "clip.mp4"
    rec = Recorder(out, r.size, fps)
    opens = []
    for k in range(n):
        t = k / fps
        pose = tracker.pose_at_frame(k)
        opens.append(pose.open)
        r.draw(ScreenModel(state=KioskState.SPEAKING, heard="Hi!", saying="Hello! Nice to meet you."),
               animator.frame(t, pose), t=t)
        rec.add_frame(r.rgb())
    assert rec.finish(wav) == out and out.is_file()
    assert not list(tmp_path.glob(".clip*"))                  # temporaries are gone
    info = _ffprobe(out)
    video = [s for s in info["streams"] if s["codec_type"] == "video"][0]
    audio = [s for s in info["streams"] if s["codec_type"] == "audio"]
    assert video["codec_name"] == "h264" and (video["width"], video["height"]) == (360, 640)
    assert video["r_frame_rate"] == "25/1" and int(video["nb_read_frames"]) == n
    assert audio and abs(float(info["format"]["duration"]) - len(x) / rate) < 0.25
    assert max(opens) > 0.4                                     # the face really talked


def test_recorder_fills_skipped_frames(tmp_path):
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg not installed")
    rec = Recorder(tmp_path / "gaps.mp4", (64, 48), 25)
    for k in (0, 1, 5, 4, 9):                   # rendering fell behind twice; one frame came late
        rec.add_frame(np.full((48, 64, 3), k * 25, np.uint8), index=k)
    assert rec.frames == 10
    out = rec.finish()
    video = _ffprobe(out)["streams"][0]
    assert int(video["nb_read_frames"]) == 10
    wrong = Recorder(tmp_path / "x.mp4", (64, 48), 25)
    with pytest.raises(ValueError):
        wrong.add_frame(np.zeros((10, 10, 3), np.uint8))
    wrong.abort()
    assert not list(tmp_path.glob("*x*.mp4"))


def test_frame_times_count_the_gaps_a_visitor_sees():
    from appliance.screen.frametimes import FrameTimes

    ft = FrameTimes()
    for k, (start, end) in enumerate([(0.000, 0.010), (0.040, 0.050), (0.080, 0.090)]):
        ft.shown(k, start, end)
    ft.shown(5, 0.200, 0.215)                        # frames 3 and 4 were never drawn: a hitch
    s = ft.summary()
    assert s["frames"] == 4 and s["skipped"] == 2
    assert s["interval_ms_p50"] == 40.0 and max(ft.interval_ms) == pytest.approx(125.0)
    assert s["draw_ms_p50"] == pytest.approx(10.0) and "2 skipped" in ft.line()
    # frame time: found late + drawing; a frame found 30 ms after it was due and drawn in 15 ms
    # missed its 40-ms slot
    ft.shown(6, 0.240, 0.255, late_s=0.030)
    assert max(ft.frame_ms) == pytest.approx(45.0) and ft.summary()["frame_ms_p50"] == pytest.approx(10.0)
