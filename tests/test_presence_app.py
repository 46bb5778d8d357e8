"""The real kiosk app with a video file as its camera (tests/support/scenes.py): it greets the
visitor who walks up — within 1 s of the face appearing, on the kiosk's audio clock — once, and
resets for the next visitor within ``presence.gone_after_s`` of the last face. Real engines and
models; the microphone is a WAV of silence played in real time, the speaker records, SDL is dummy."""

from __future__ import annotations

import asyncio
import dataclasses

import numpy as np
import pytest
from support import bundles as T
from support import scenes
from support.runs import run_silent

from appliance import config as config_mod
from appliance.app.kiosk import KioskApp
from appliance.messages import KioskState, SentenceReady, VisitorGone
from appliance.paths import Settings

pytestmark = pytest.mark.slow

PERSONA = """name = "Anna"
languages = ["en", "ru"]
[greeting]
en = "Hi! I'm Anna. Ask me anything about space!"
ru = "Привет! Я Анна. Спросите меня о космосе!"
"""
SCENE = [("empty", 4.0), ("far", 1.0), ("close", 4.0), ("empty", 7.0)]
GONE_AFTER_S = 4.0
FPS = 5.0


def kiosk_settings(settings: Settings, video) -> Settings:
    bundle = settings.paths.demo_bundle
    bundle.mkdir(parents=True, exist_ok=True)
    (bundle / "persona.toml").write_text(PERSONA, encoding="utf-8")
    T.save_photo(T.photo("one"), bundle / "photo.png")
    cfg = config_mod.replace(settings.config, "presence", camera=str(video), fps=FPS, gone_after_s=GONE_AFTER_S,
                             attract_interval_s=0.0)
    return Settings(cfg, settings.paths)


def test_the_kiosk_greets_whoever_walks_up_once_and_resets_when_they_leave(settings, tmp_path):
    video = scenes.write_scene(tmp_path / "hall.avi", SCENE, fps=10)
    s = kiosk_settings(settings, video)
    seconds = sum(d for _, d in SCENE) + 1.0
    seen: dict = {}

    async def visit(app: KioskApp) -> None:
        # While the visitor is there, the kiosk remembers a turn with them (to be forgotten).
        while not app.presence.visits:
            await asyncio.sleep(0.05)
        app.conv.session.history.add_turn("What is a comet?", "A ball of ice and dust.", app.conv.audio_now())
        while not any(isinstance(e, VisitorGone) for e in app.events):
            await asyncio.sleep(0.05)
        seen["history"] = app.conv.session.history.for_language("en")
        seen["screen"] = app.conv.screen

    app = run_silent(s, seconds, during=visit)
    face_at = scenes.starts(SCENE, "close")[0]
    last_face = face_at + 4.0 - 1 / FPS
    heard = app.speaker.recording()
    rate = app.speaker.rate
    voiced = np.flatnonzero(np.abs(heard) > 0.02) / rate
    assert len(voiced), "the kiosk said nothing"
    assert voiced[0] >= face_at, f"the kiosk spoke at {voiced[0]:.2f} s, before anyone was there ({face_at} s)"
    latency = voiced[0] - face_at
    assert latency <= 1.0, f"the greeting started {latency:.2f} s after the face appeared"
    greetings = [e for e in app.events if isinstance(e, SentenceReady) and e.turn_id == "greeting"]
    assert len(greetings) == 1 and greetings[0].text.startswith("Hi! I'm Anna")  # once, in the first language
    assert len(app.presence.visits) == 1
    visit_ = app.presence.visits[0]
    assert visit_.greeted and visit_.left_at is not None
    reset_after = visit_.left_at - last_face
    assert GONE_AFTER_S <= reset_after <= GONE_AFTER_S + 2 / FPS, reset_after
    assert seen["history"] == [] and seen["screen"].state == KioskState.IDLE
    assert seen["screen"].heard == "" and seen["screen"].saying == ""
    assert voiced[-1] < visit_.left_at  # nobody greeted after they left
    print(f"\ngreeting {latency:.2f} s after the face appeared (audio clock); reset {reset_after:.2f} s after "
          f"the last face; detector {app.presence.watcher.ms_per_frame:.1f} ms/frame")


def test_without_a_camera_the_kiosk_greets_at_start_as_before(settings):
    s = dataclasses.replace(settings)
    assert s.config.presence.camera == ""
    # (the whole app's behaviour without a camera is covered by tests/test_showcase.py and
    # tests/test_kiosk_app.py; here: the flow is off and sound decides when a visit ends)
    from appliance.app.presence import PresenceFlow, is_night

    class Stub:
        settings = s

    assert PresenceFlow(Stub()).enabled is False
    assert is_night(23, [22, 7]) and is_night(3, [22, 7]) and not is_night(12, [22, 7])
    assert is_night(13, [12, 14]) and not is_night(14, [12, 14]) and not is_night(5, [8, 8])


ATTRACT_SCENE = [("empty", 14.0), ("close", 3.0), ("empty", 1.0)]


def test_attract_mode_invites_people_in_when_nobody_is_there_but_not_at_night(settings, tmp_path):
    video = scenes.write_scene(tmp_path / "quiet.avi", ATTRACT_SCENE, fps=5)
    s = kiosk_settings(settings, video)
    s = Settings(config_mod.replace(s.config, "presence", attract_interval_s=3.0), s.paths)
    seconds = sum(d for _, d in ATTRACT_SCENE)
    night_until = 5.0  # the box's clock says night for the first 5 s (audio time), then day

    async def clock(app: KioskApp) -> None:
        app.presence.hour = lambda: 23 if app.conv.audio_now() < night_until else 12

    app = run_silent(s, seconds, during=clock)
    invited = app.presence.invitations
    face_at = scenes.starts(ATTRACT_SCENE, "close")[0]
    assert invited, "nobody was invited in"
    assert all(night_until <= t < face_at for t, _ in invited), invited  # not at night, not once someone is there
    assert [lang for _, lang in invited][:2] == ["en", "ru"][:len(invited)]  # both languages, in turn
    said = [e.text for e in app.events if isinstance(e, SentenceReady)]
    assert s.config.presence.attract_en[0] in said
    greetings = [e for e in app.events if isinstance(e, SentenceReady) and e.turn_id == "greeting"]
    assert len(greetings) == 1 and len(app.presence.visits) == 1 and app.presence.visits[0].greeted
    print(f"\ninvitations at {[round(t, 1) for t, _ in invited]} s ({[lang for _, lang in invited]})")


def test_ten_minutes_of_an_empty_hall_through_the_real_app_greet_nobody(settings, tmp_path):
    """Virtual time: the microphone (a recording of silence) runs as fast as the kiosk goes and waits
    for each camera frame to be analysed; the camera is a 10-s file of the empty hall, looped."""
    video = scenes.write_scene(tmp_path / "empty.avi", [("empty", 10.0)], fps=2)
    s = kiosk_settings(settings, video)
    s = Settings(config_mod.replace(s.config, "presence", loop_file=True, fps=2.0), s.paths)
    seconds = 600.0
    app = run_silent(s, seconds, realtime=False)
    assert app.conv.audio_now() >= seconds
    assert app.presence.watcher.frames >= 2 * seconds - 5  # every half second of the ten minutes was looked at
    assert app.presence.visits == [] and not [e for e in app.events if isinstance(e, SentenceReady)]
    assert float(np.max(np.abs(app.speaker.recording()), initial=0.0)) < 0.01  # not a word
