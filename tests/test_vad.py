"""The endpointer as a pure state machine: decisions in, events out, audio time only (no audio)."""

from __future__ import annotations

import numpy as np
import pytest

from appliance.audio.vad import Endpointer, FrameClassifier, VadEventKind, level
from appliance.config import VadConfig

FRAME = 320  # 20 ms


def feed(ep: Endpointer, pattern: str, t0: float = 0.0):
    """pattern: one char per 20 ms frame, 'x' voiced, '.' silent; frames carry their index."""
    events = []
    for i, c in enumerate(pattern):
        frame = np.full(FRAME, i, np.int16)
        ev = ep.process(frame, t0 + i * 0.02, c == "x")
        if ev is not None:
            events.append((i, ev))
    return events


def cfg(**kw) -> VadConfig:
    base = dict(preroll_ms=200, start_ms=100, end_silence_ms=300, min_utterance_ms=200, max_utterance_s=2.0,
                early_stt_ms=0)
    base.update(kw)
    return VadConfig(**base)


def test_utterance_with_preroll_and_end_after_silence():
    ep = Endpointer(cfg())
    events = feed(ep, "." * 30 + "x" * 25 + "." * 20)
    kinds = [e.kind for _, e in events]
    assert kinds == [VadEventKind.SPEECH_START, VadEventKind.UTTERANCE]
    (i_start, start), (i_end, utt) = events
    assert i_start == 34  # 5 voiced frames = 100 ms opens speech
    assert start.t_speech_start == pytest.approx(0.60)
    # the end is declared after exactly 300 ms of silence (15 frames)
    assert i_end == 30 + 25 + 15 - 1
    assert utt.t_speech_end == pytest.approx(1.10)
    assert utt.t - utt.t_speech_end == pytest.approx(0.30)
    # pre-roll: 200 ms (10 frames) before the first voiced frame are kept — the first syllable survives
    first_kept = int(utt.samples[0])
    assert first_kept == 20
    assert utt.t_start == pytest.approx(0.40)
    # and the utterance keeps 200 ms of tail after the last voiced frame, not the whole silence
    assert int(utt.samples[-1]) == 30 + 25 + 10 - 1


def test_short_blip_is_dropped():
    ep = Endpointer(cfg())
    events = feed(ep, "." * 10 + "x" * 6 + "." * 30)
    assert [e.kind for _, e in events] == [VadEventKind.SPEECH_START, VadEventKind.DROPPED]
    assert events[-1][1].reason == "short"


def test_scattered_voiced_frames_never_open_speech():
    ep = Endpointer(cfg())
    assert feed(ep, "x......." * 40) == []


def test_short_pauses_inside_speech_do_not_end_it():
    ep = Endpointer(cfg())
    events = feed(ep, "x" * 20 + "." * 10 + "x" * 20 + "." * 20)
    utts = [e for _, e in events if e.kind is VadEventKind.UTTERANCE]
    assert len(utts) == 1
    assert utts[0].t_speech_end == pytest.approx(1.0)


def test_max_length_cuts_and_restarts():
    ep = Endpointer(cfg(max_utterance_s=1.0))
    events = feed(ep, "x" * 120)
    utts = [e for _, e in events if e.kind is VadEventKind.UTTERANCE]
    assert len(utts) >= 2
    assert all(u.reason == "max_length" for u in utts)
    assert all(len(u.samples) <= 1.2 * 16000 for u in utts)


def test_time_counts_from_given_audio_time():
    ep = Endpointer(cfg())
    events = feed(ep, "x" * 20 + "." * 20, t0=100.0)
    utt = events[-1][1]
    assert utt.t_speech_start == pytest.approx(100.0)
    assert utt.t_speech_end == pytest.approx(100.4)


def test_a_pause_hands_over_the_utterance_as_it_will_be_cut():
    ep = Endpointer(cfg(early_stt_ms=200))
    events = feed(ep, "." * 30 + "x" * 25 + "." * 20)
    assert [e.kind for _, e in events] == [VadEventKind.SPEECH_START, VadEventKind.PAUSE, VadEventKind.UTTERANCE]
    (i_pause, pause), (_, utt) = events[1:]
    assert i_pause == 30 + 25 + 10 - 1                       # after 200 ms of the 300 ms silence
    assert pause.t_speech_end == utt.t_speech_end
    assert np.array_equal(pause.samples, utt.samples)         # the early transcript is the final one


def test_speech_after_a_pause_pauses_again_and_the_utterance_grows():
    ep = Endpointer(cfg(early_stt_ms=200))
    events = feed(ep, "x" * 20 + "." * 12 + "x" * 20 + "." * 20)
    kinds = [e.kind for _, e in events]
    assert kinds == [VadEventKind.SPEECH_START, VadEventKind.PAUSE, VadEventKind.PAUSE, VadEventKind.UTTERANCE]
    first, second, utt = (e for _, e in events[1:])
    assert first.t_speech_end == pytest.approx(0.4) and second.t_speech_end == utt.t_speech_end == pytest.approx(1.04)
    assert len(first.samples) < len(utt.samples)              # the first one is stale: it must not be used


def test_no_pause_for_a_blip_and_none_when_off():
    assert [e.kind for _, e in feed(Endpointer(cfg(early_stt_ms=200)), "." * 10 + "x" * 6 + "." * 30)] == \
        [VadEventKind.SPEECH_START, VadEventKind.DROPPED]
    assert VadEventKind.PAUSE not in [e.kind for _, e in feed(Endpointer(cfg()), "x" * 20 + "." * 20)]


def test_frame_classifier_rejects_silence_and_faint_hiss():
    c = FrameClassifier(2)
    assert not c(np.zeros(FRAME, np.int16))
    rng = np.random.default_rng(1)
    assert not c(rng.normal(0, 30, FRAME).astype(np.int16))
    assert not c(np.zeros(123, np.int16))  # a frame size webrtcvad does not accept
    assert level(np.zeros(FRAME, np.int16)) == 0.0
    assert 0.9 < level(np.full(FRAME, 30000, np.int16)) <= 1.0
