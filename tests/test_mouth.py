"""The mouth track: real synthesized speech (espeak-ng) in, per-frame mouth poses out."""

from __future__ import annotations

import io
import shutil
import subprocess
import wave

import numpy as np
import pytest

from appliance.face.mouth import MouthTracker, mouth_track, shape_of
from appliance.messages import MouthPose

FPS = 25


@pytest.fixture(scope="module")
def speech() -> tuple[np.ndarray, int]:
    """Two phrases from espeak-ng with a long pause between them, plus silence at both ends."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    parts = []
    rate = 22050
    for text in ("Hello there, I am the kiosk.", "How can I help you today?"):
        wav = subprocess.run(["espeak-ng", "-v", "en", "--stdout", text], capture_output=True, check=True).stdout
        with wave.open(io.BytesIO(wav)) as w:
            rate = w.getframerate()
            parts.append(np.frombuffer(w.readframes(w.getnframes()), np.int16).astype(np.float32) / 32768)
    silence = np.zeros(rate // 2, np.float32)
    return np.concatenate([silence, parts[0], silence, silence, parts[1], silence]), rate


def _frame_db(x: np.ndarray, rate: int, n: int) -> np.ndarray:
    out = []
    for k in range(n):
        seg = x[k * rate // FPS:(k + 1) * rate // FPS]
        out.append(20 * np.log10(np.sqrt(np.mean(seg ** 2)) + 1e-9) if seg.size else -180.0)
    return np.array(out)


def test_zeros_keep_the_mouth_closed():
    poses = mouth_track(np.zeros(22050 * 3, np.float32), 22050, FPS)
    assert len(poses) == 75
    assert all(p == MouthPose(0.0, 0.0) for p in poses)
    assert shape_of(poses[0]) == "X"
    assert MouthTracker(22050, FPS).pose_at(12.3) == MouthPose()  # no audio at all: closed
    hiss = (1e-3 * np.random.default_rng(0).standard_normal(22050 * 2)).astype(np.float32)  # -60 dBFS
    assert all(p == MouthPose(0.0, 0.0) for p in mouth_track(hiss, 22050, FPS))


def test_opening_follows_speech_energy_and_closes_in_silence(speech):
    x, rate = speech
    poses = mouth_track(x, rate, FPS)
    opens = np.array([p.open for p in poses])
    db = _frame_db(x, rate, len(poses))
    assert np.corrcoef(opens, np.clip(db, -60, 0))[0, 1] > 0.7
    silent = np.array([(db[max(0, k - 2):k + 3] < -90).all() for k in range(len(poses))])
    assert silent.sum() > 20                        # the pauses are there …
    assert (opens[silent] == 0).all()               # … and the mouth is shut in them
    speaking = db > -30
    assert opens[speaking].mean() > 0.3 and opens.max() > 0.6
    # the jaw closes between syllables: the opening really varies while speaking
    assert opens[speaking].std() > 0.1
    # smoothed: no frame-to-frame flutter from closed to wide open
    assert np.abs(np.diff(opens)).max() < 0.5
    assert len({shape_of(p) for p in poses}) >= 4  # several Rhubarb shapes, not one


def test_streamed_chunks_give_the_same_track(speech):
    x, rate = speech
    whole = mouth_track(x, rate, FPS)
    rng = np.random.default_rng(1)
    tr = MouthTracker(rate, FPS)
    pos = 0
    while pos < len(x):
        n = int(rng.integers(200, 5000))
        tr.add(x[pos:pos + n], pos)
        pos += n
    assert [tr.pose_at_frame(k) for k in range(len(whole))] == whole
    # the same speech placed later on the speaker clock moves the poses by whole frames
    later = MouthTracker(rate, FPS)
    start = 10 * rate  # 10 s
    later.add(x, start)
    assert [later.pose_at(10 + k / FPS) for k in range(len(whole))] == whole


def test_barge_in_clears_the_rest(speech):
    x, rate = speech
    tr = MouthTracker(rate, FPS)
    tr.add(x, 0)
    cut = len(x) // 3
    before = [tr.pose_at_frame(k) for k in range(len(x) * FPS // rate)]
    assert any(p.open > 0.3 for p in before[cut * FPS // rate + 3:])
    tr.clear(cut)
    after = [tr.pose_at_frame(k) for k in range(len(before))]
    k_cut = cut * FPS // rate
    assert all(p.open == 0 for p in after[k_cut + 3:])
    assert after[: k_cut - 3] == before[: k_cut - 3]
    tr.forget_before(len(x))
    assert tr.pose_at_frame(5) == MouthPose()


def test_long_sessions_keep_bounded_memory():
    rate = 22050
    tr = MouthTracker(rate, FPS)
    rng = np.random.default_rng(0)
    chunk = (0.1 * rng.standard_normal(4096)).astype(np.float32)
    n = 3300  # ten minutes of speech in 4096-sample chunks
    for i in range(n):
        tr.add(chunk, i * 4096)
    assert len(tr._chunks) <= 120 * rate // 4096 + 2
    assert tr.pose_at((n - 10) * 4096 / rate).open > 0.2     # recent speech is still there
    assert tr.pose_at(1.0) == MouthPose()                     # ten minutes ago is forgotten


def test_a_quiet_night_does_not_grow_the_mouth_track():
    from appliance.face.mouth import KEEP_S, MouthTracker

    tr = MouthTracker(16000, fps=25)
    tr.add(np.full(1600, 0.1, np.float32), 0)
    for k in range(10 * KEEP_S * 25):          # ten times the kept span of frames, with no new audio
        tr.pose_at_frame(k)
    assert len(tr._raw) <= 2 * KEEP_S * 25 + 33


@pytest.fixture(scope="module")
def irina():
    """The kiosk's Russian voice (RHVoice Irina), unmatched: what the shapes were measured on."""
    from appliance.engines.russian_voice import RussianVoice

    voice = RussianVoice("irina")

    def say(text: str) -> tuple[np.ndarray, int]:
        audio, rate = voice.synthesize(text)
        pad = np.zeros(rate // 2, np.float32)
        return np.concatenate([pad, np.asarray(audio, np.float32), pad]), rate
    return say


def _loudest_poses(x: np.ndarray, rate: int) -> list[MouthPose]:
    poses = mouth_track(x, rate, FPS)
    db = _frame_db(x, rate, len(poses))
    return [p for p, d in zip(poses, db, strict=False) if d > db.max() - 6]


def test_vowels_take_their_shapes(irina):
    # и spreads the lips, у rounds them hardest, а opens the jaw widest (RHVoice reads "Ооо." as
    # a rounded о; "Ооооо." it reads as а)
    shapes = {v: _loudest_poses(*irina(t)) for v, t in (("и", "Иии."), ("а", "Ааа."), ("о", "Ооо."), ("у", "Ууу."))}
    width = {v: float(np.median([p.width for p in ps])) for v, ps in shapes.items()}
    opening = {v: float(np.median([p.open for p in ps])) for v, ps in shapes.items()}
    assert width["и"] > 0.5 and abs(width["а"]) < 0.25 and width["у"] < -0.5, width
    assert width["и"] > width["а"] > width["о"] >= width["у"], width
    assert opening["а"] > opening["и"] and opening["а"] > opening["у"], opening
    assert {shape_of(p) for p in shapes["у"]} & {"E", "F"}


def test_lips_meet_between_syllables_and_rest_in_long_silence(irina):
    x, rate = irina("Мама, папа.")
    poses = mouth_track(x, rate, FPS)
    closed = [k for k, p in enumerate(poses) if p.close == 1.0]
    assert len(closed) >= 2, closed                  # the м of "мама", the stop before "папа"
    assert all(shape_of(poses[k]) == "A" for k in closed)
    first = next(k for k, p in enumerate(poses) if p.open > 0)
    assert all(p == MouthPose() for p in poses[:first - 1])       # before the reply: the photo's rest
    assert poses[-1] == MouthPose() and poses[-5] == MouthPose()  # after it too: no closure there


def _closures(poses: list[MouthPose]) -> list[int]:
    return [k for k, p in enumerate(poses) if p.close == 1.0]


def test_the_text_keeps_the_lips_apart_where_no_bilabial_is(irina):
    # Without the text every deep dip presses the lips together, т/д/с/к too; with the sentence's
    # text (as the kiosk passes it with each chunk) none of them does: there is no м/п/б here
    text = "Тётя Таня, тут тесто."
    x, rate = irina(text)
    assert len(_closures(mouth_track(x, rate, FPS))) >= 2
    assert _closures(mouth_track(x, rate, FPS, text=text)) == []


def test_the_text_closes_the_lips_on_each_bilabial_also_before_the_first_sound(irina):
    text = "Мама, папа."
    x, rate = irina(text)
    poses = mouth_track(x, rate, FPS, text=text)
    closed = _closures(poses)
    first = next(k for k, p in enumerate(mouth_track(x, rate, FPS)) if p.open > 0)
    db = _frame_db(x, rate, len(poses))
    assert min(closed) <= first                  # «Мама» starts with closed lips
    assert len(closed) == 4, closed             # М-а-м-а, п-а-п-а: four gaps hold a bilabial
    assert all(db[k] < db.max() - 6 for k in closed)     # closed where it is quiet, not on a vowel
    assert all(p == MouthPose() for p in poses[:min(closed) - 1])    # rest until then


def test_a_sentence_in_two_pieces_closes_where_the_whole_one_does(irina):
    # The voice match sends a sentence in two pieces (the first plays while the rest is
    # converted): once both are in, the closures are those of the whole sentence.
    text = "Собака спит, а мама печёт пироги."
    x, rate = irina(text)
    whole = _closures(mouth_track(x, rate, FPS, text=text))
    tr = MouthTracker(rate, FPS)
    cut = len(x) // 3
    tr.add(x[:cut], 0, text)
    tr.add(x[cut:], cut, text)
    n = -(-len(x) * FPS // rate)
    assert _closures([tr.pose_at_frame(k) for k in range(n)]) == whole and len(whole) >= 3


def test_a_barge_in_leaves_no_closure_after_the_cut(irina):
    text = "Мама, папа, мама, папа."
    x, rate = irina(text)
    tr = MouthTracker(rate, FPS)
    tr.add(x, 0, text)
    n = len(x) * FPS // rate
    cut = len(x) // 2
    assert any(tr.pose_at_frame(k).close == 1.0 for k in range(cut * FPS // rate + 1, n))
    tr.clear(cut)
    assert all(tr.pose_at_frame(k) == MouthPose() for k in range(cut * FPS // rate + 2, n))
