"""Writing instead of speaking: the on-screen keyboard's geometry, and a Russian question typed on
it through the real kiosk app — taps as pygame events (SDL's dummy driver) at the key positions the
layout function gives — answered aloud and in captions, with the keyboard folded away meanwhile."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from support import bundles as T

from appliance.app.kiosk import KioskApp
from appliance.audio.mic import WavFileMic
from appliance.audio.speaker import RecordingSpeaker
from appliance.messages import KioskState, TurnDone
from appliance.screen.keyboard import SEND, SWITCH, TouchKeyboard, keyboard_layout, open_button

PERSONA = """name = "Anna"
languages = ["en", "ru"]
[greeting]
en = "Hi! I'm Anna."
ru = "Привет! Я Анна."
"""
QUESTION = "какая планета самая большая?"


@pytest.mark.parametrize("size", [(1080, 1920), (1920, 1080), (720, 1280)])
@pytest.mark.parametrize("layout", ["ru", "en"])
def test_keys_are_large_inside_the_screen_and_never_overlap(size, layout):
    geo = keyboard_layout(size, layout)
    w, h = size
    x, y, pw, ph = geo.panel
    assert x >= 0 and x + pw <= w and y + ph == h and ph < 0.45 * h  # the bottom of the screen only
    rects = [k.rect for k in geo.keys]
    for i, (ax, ay, aw, ah) in enumerate(rects):
        assert aw >= 40 and ah >= 40, (layout, size)  # a finger's width at least
        assert x <= ax and ax + aw <= x + pw and y <= ay and ay + ah <= h
        for bx, by, bw, bh in rects[i + 1:]:
            assert ax + aw <= bx or bx + bw <= ax or ay + ah <= by or by + bh <= ay
    letters = {k.action for k in geo.keys if len(k.action) == 1}
    assert set("йцукенгшщзхъфывапролджэячсмитьбюё" if layout == "ru" else "qwertyuiopasdfghjklzxcvbnm") <= letters
    assert {SEND, SWITCH} <= {k.action for k in geo.keys}


def test_typing_switching_and_sending():
    kb, size = TouchKeyboard("en"), (1080, 1920)
    assert kb.tap(open_button(size).center, size) is None and kb.is_open
    kb.tap(kb.geometry(size).key(SWITCH).center, size)
    assert kb.layout == "ru"
    for c in "да":
        kb.tap(kb.geometry(size).key(c).center, size)
    kb.type("\x1b?")  # a physical keyboard's control characters are not text
    assert kb.tap(kb.geometry(size).key(SEND).center, size) == "да?"
    assert not kb.is_open and kb.text == ""  # folded away: the kiosk answers with its face uncovered
    assert kb.send() is None


def tap(pg, pos, finger: bool = False) -> None:
    if finger:  # a touch screen: FINGERDOWN in 0…1 of the window
        w, h = pg.display.get_surface().get_size()
        pg.event.post(pg.event.Event(pg.FINGERDOWN, x=pos[0] / w, y=pos[1] / h, touch_id=1, finger_id=1,
                                     dx=0.0, dy=0.0, pressure=1.0))
    else:
        pg.event.post(pg.event.Event(pg.MOUSEBUTTONDOWN, pos=pos, button=1, touch=False))


@pytest.mark.slow
def test_a_russian_question_typed_on_the_touch_keyboard_is_answered_aloud_and_in_captions(settings, tmp_path):
    bundle = settings.paths.demo_bundle
    bundle.mkdir(parents=True, exist_ok=True)
    (bundle / "persona.toml").write_text(PERSONA, encoding="utf-8")
    T.save_photo(T.photo("one"), bundle / "photo.png")
    mic = WavFileMic(samples=np.zeros(240 * 16000, np.int16), realtime=True)
    speaker = RecordingSpeaker(settings.config.audio.output_rate)
    app = KioskApp(settings, mic=mic, speaker=speaker, headless=True, greet=False)
    seen: dict = {"states": []}

    async def visitor() -> None:
        import pygame as pg

        while app.conv is None or app.frames < 5:
            await asyncio.sleep(0.05)
        r = app.renderer
        size = r.size
        kb = r.keyboard
        tap(pg, open_button(size).center)
        await asyncio.sleep(0.2)
        assert kb.is_open and kb.layout == "en"
        tap(pg, kb.geometry(size).key(SWITCH).center, finger=True)
        await asyncio.sleep(0.2)
        assert kb.layout == "ru"
        geo = kb.geometry(size)
        for i, c in enumerate(QUESTION[:-1]):
            tap(pg, geo.key("space" if c == " " else c).center, finger=i % 2 == 0)
            await asyncio.sleep(0.02)
        pg.event.post(pg.event.Event(pg.TEXTINPUT, text="?"))  # the last one on a USB keyboard
        await asyncio.sleep(0.2)
        assert kb.text == QUESTION, kb.text
        r.save_png(tmp_path / "typed.png")
        seen["sent_at"] = app.conv.audio_now()
        tap(pg, geo.key(SEND).center)
        while not any(isinstance(e, TurnDone) for e in app.events):
            s = app.screen
            if s.state == KioskState.SPEAKING and "speaking" not in seen:
                seen["speaking"] = (s, kb.is_open)
                r.save_png(tmp_path / "answering.png")
            await asyncio.sleep(0.02)
        seen["done"] = next(e for e in app.events if isinstance(e, TurnDone))
        app.conv.stop()

    async def main() -> None:
        await app.start()
        task = asyncio.get_running_loop().create_task(visitor())
        try:
            await asyncio.wait_for(asyncio.shield(task), 220)
            await app.wait()
        finally:
            await app.stop()
        task.result()

    asyncio.run(main())
    done = seen["done"]
    assert done.outcome == "replied" and done.metrics.language == "ru", done
    screen, kb_open = seen["speaking"]
    assert screen.heard == QUESTION and screen.saying.strip(), screen   # the question and the reply in captions
    assert any("\u0400" <= c <= "\u04ff" for c in screen.saying), screen.saying  # answered in Russian
    assert not kb_open  # folded away: the face is not covered while the kiosk answers
    heard = speaker.recording()
    at = int(seen["sent_at"] * speaker.rate)
    assert float(np.max(np.abs(heard[at:]))) > 0.05, "the reply was not spoken"
    print(f"\nreply: {screen.saying!r}; ttfa {done.metrics.ttfa_s:.2f} s; screenshots in {tmp_path}")
