"""The turn loop with small fake engines (STT/LLM/TTS) but real endpointing on real speech:
ordering, events, the speaker clock, barge-in, the self-hearing guard, wake modes, storage."""

from __future__ import annotations

import dataclasses
import time

import kiosk_helpers
import numpy as np
import pytest
from kiosk_converse import converse
from kiosk_helpers import silence, speech
from support.fakes import FakeLLM, FakeSTT, FakeTTS

from appliance import config as config_mod
from appliance.audio.echo import EchoGuard
from appliance.conversation.safety import REDIRECT
from appliance.conversation.storage import TurnStore
from appliance.engines.factory import Engines
from appliance.messages import (
    AudioQueued,
    BargeIn,
    KioskState,
    NoReply,
    SentenceReady,
    SpeechChunk,
    SpeechStarted,
    Transcribed,
    TurnDone,
    TurnFailed,
    TurnMetrics,
    UtteranceCut,
    VisitorGone,
    WakeWordHeard,
)

LONG_REPLY = ("Space is big. Stars are far away. The moon goes around the Earth. Rockets are fast. "
              "Mars is red. Jupiter is huge. Saturn has rings. Comets have tails.")


def fakes(text="what is your name", reply="Hello! I am Anna. Nice to meet you.", **kw) -> Engines:
    return Engines(stt=FakeSTT(text, **kw), llm=FakeLLM(reply), tts=FakeTTS())


def with_cfg(settings, section, **changes):
    return dataclasses.replace(settings, config=config_mod.replace(settings.config, section, **changes))


def per_call(settings):
    """FakeSTT hands its ``texts`` out one per call; a transcription started in a mid-sentence pause
    (thrown away when the visitor goes on) would take one, so these tests transcribe once per utterance."""
    return with_cfg(settings, "vad", early_stt_ms=0)


@pytest.fixture
def question(models_dir):
    return speech(models_dir, "Hello, what is your name?")


def test_one_turn_events_clock_and_journal(settings, question):
    audio = np.concatenate([question, silence(1.0)])
    out = converse(settings, fakes(), audio)
    kinds = [type(e) for e in out.events if not isinstance(e, AudioQueued | SentenceReady)]
    assert kinds == [SpeechStarted, UtteranceCut, Transcribed, TurnDone]
    assert out.replies() == ["Hello! I am Anna. Nice to meet you."]
    assert [e.text for e in out.of(SentenceReady)] == ["Hello!", "I am Anna.", "Nice to meet you."]
    # mouth-driving audio: every chunk with its start on the speaker clock, back to back
    audio_ev = out.of(AudioQueued)
    assert all(isinstance(e.chunk, SpeechChunk) for e in audio_ev)
    starts = [e.start_s for e in audio_ev]
    durs = [len(e.chunk.samples) / e.chunk.sample_rate for e in audio_ev]
    assert starts == pytest.approx([starts[0] + sum(durs[:i]) for i in range(len(durs))], abs=1e-3)
    # the reply starts when the endpointer decided (virtual time: compute takes no audio time)
    utt_t = out.of(SpeechStarted)[0].t
    assert utt_t < starts[0] < len(audio) / 16000
    rec = out.speaker.recording()
    first = int(starts[0] * 16000)
    assert np.abs(rec[:first]).max() == 0 and np.abs(rec[first:first + 1600]).max() > 0.2
    # the screen went listening -> thinking -> speaking -> listening, with captions
    states = [s.state for s in out.screens]
    order = [KioskState.THINKING, KioskState.SPEAKING, KioskState.LISTENING]
    idx = [states.index(s, states.index(KioskState.THINKING)) for s in order]
    assert idx == sorted(idx)
    assert out.screens[-1].heard == "what is your name"
    assert "Nice to meet you." in out.screens[-1].saying
    assert any(s.level > 0.3 for s in out.screens)
    # metrics and the journal (no text by default)
    m = out.of(TurnDone)[0].metrics
    assert isinstance(m, TurnMetrics) and m.outcome == "replied" and m.reply_chars > 0
    assert m.eos_s == pytest.approx(settings.config.vad.end_silence_ms / 1000, abs=0.05)
    rows = TurnStore(settings.paths.db_path, settings.config.privacy).rows()
    assert len(rows) == 1 and rows[0]["heard"] is None and rows[0]["outcome"] == "replied"


def test_history_is_sent_and_dropped_when_the_visitor_leaves(settings, question):
    s = with_cfg(per_call(settings), "session", visitor_gone_s=5.0)
    eng = fakes(texts=["first question", "second question", "third question"])
    audio = np.concatenate([question, silence(2.0), question, silence(8.0), question, silence(1.0)])
    out = converse(s, eng, audio)
    assert len(out.of(TurnDone)) == 3
    prompts = eng.llm.prompts
    users = [[m.content for m in p if m.role == "user"] for p in prompts]
    assert "first question" in users[1]            # the second turn sees the first
    assert "first question" not in users[2]        # the visitor left in between: history dropped
    assert out.of(VisitorGone)
    states = [sc.state for sc in out.screens]
    assert states[0] is KioskState.IDLE or states[0] is KioskState.LISTENING
    gone_at = next(i for i, sc in enumerate(out.screens) if sc.state is KioskState.IDLE and i > 0)
    assert out.screens[gone_at].heard == "" and out.screens[gone_at].saying == ""  # captions cleared


@pytest.mark.parametrize("confirm", ["webrtcvad only", "silero confirms"])
def test_barge_in_stops_playback_within_200ms_and_cancels(settings, question, models_dir, confirm):
    # The LLM is slow in wall time (30 ms a word) while the microphone runs in virtual time, so the
    # interruption comes while the reply is still being generated.
    eng = Engines(stt=FakeSTT(texts=["tell me about space", "stop"]), llm=FakeLLM(LONG_REPLY, delay_s=0.03),
                  tts=FakeTTS(seconds_per_char=0.06),
                  silero=kiosk_helpers.silero() if confirm == "silero confirms" else None)
    interruption = speech(models_dir, "Wait, stop please!")
    pre = np.concatenate([question, silence(2.5)])
    audio = np.concatenate([pre, interruption, silence(1.5)])
    out = converse(per_call(settings), eng, audio)
    barge = out.of(BargeIn)
    assert len(barge) == 1
    # where the interruption really starts (first loud sample), on the microphone's audio time
    onset = (len(pre) + int(np.argmax(np.abs(interruption) > 1000)) + 0.3 * 16000) / 16000  # + mic lead-in
    stopped = barge[0].stopped_at_s
    assert onset < stopped <= onset + 0.2
    # nothing of the first reply sounds after that point; its remaining sentences were dropped
    rec = out.speaker.recording()
    first_turn, second_turn = out.of(TurnDone)
    assert first_turn.outcome == "barge_in"
    second_audio = [e for e in out.of(AudioQueued) if e.turn_id == second_turn.turn_id]
    next_start = second_audio[0].start_s if second_audio else len(rec) / 16000
    assert np.abs(rec[int(stopped * 16000) + 1: int(next_start * 16000)]).max() == 0
    spoken_first = [e for e in out.of(SentenceReady) if e.turn_id == first_turn.turn_id]
    assert len(spoken_first) < len(LONG_REPLY.split(". "))
    assert eng.llm.cancelled  # generation stopped, not just muted
    # the interruption became the next turn
    assert out.transcripts == ["tell me about space", "stop"]


def test_noise_while_the_kiosk_speaks_does_not_barge_in(settings, question):
    eng = Engines(stt=FakeSTT("tell me about space"), llm=FakeLLM(LONG_REPLY), tts=FakeTTS(seconds_per_char=0.06),
                  silero=kiosk_helpers.silero())
    clatter = np.random.default_rng(5).normal(0, 3000, 32000).astype(np.int16)  # 2 s of loud noise
    audio = np.concatenate([question, silence(2.0), clatter, silence(12.0)])
    out = converse(settings, eng, audio)
    assert out.of(SpeechStarted)[1:]  # webrtcvad did take the noise for speech ...
    assert not out.of(BargeIn)      # ... but silero did not, so the kiosk spoke on
    assert out.of(TurnDone)[0].outcome == "replied"


def room_ir(rt60_s: float = 0.35) -> np.ndarray:
    """A synthetic room: the direct path plus exponentially decaying diffuse reverberation."""
    rng = np.random.default_rng(11)
    t = np.arange(int(0.25 * 16000)) / 16000
    ir = rng.normal(size=len(t)) * np.exp(-t * 6.9 / rt60_s)
    ir[0] = 3.0
    return (ir / np.sqrt(np.sum(ir ** 2))).astype(np.float32)


def _echo_run(settings, models_dir, guard, room=None, visitor_over=None):
    eng = Engines(stt=FakeSTT("tell me about space"), llm=FakeLLM(LONG_REPLY),
                  tts=kiosk_helpers.tts(models_dir), silero=kiosk_helpers.silero())
    audio = np.concatenate([speech(models_dir, "Tell me about space."), silence(16.0)])
    if visitor_over is not None:
        at = len(audio) - 12 * 16000
        audio[at:at + len(visitor_over)] += visitor_over
    # the kiosk's own voice comes back at a realistic level (-8 dB), 40 ms late, over room noise
    mic_room = None if room is None else room_ir()
    return converse(settings, eng, audio, echo_gain=0.4, echo_delay_s=0.04, noise_rms=30, guard=guard,
                    speaker_rate=22050, room=mic_room, stop_after_audio_s=30)


@pytest.mark.parametrize("room", [None, "reverberant"])
def test_own_voice_looped_back_never_starts_a_turn(settings, models_dir, room):
    out = _echo_run(settings, models_dir, None, room=room)
    assert len(out.of(UtteranceCut)) == 1
    assert not out.of(BargeIn)
    assert out.of(TurnDone)[0].outcome == "replied"
    assert len(out.of(SentenceReady)) == 8  # the whole reply was spoken, into the microphone


def test_without_the_guard_the_echo_would_barge_in(settings, models_dir):
    class Deaf(EchoGuard):
        def explained(self, frame, pos):
            return False

    out = _echo_run(settings, models_dir, Deaf())
    assert out.of(BargeIn) or len(out.of(UtteranceCut)) > 1


@pytest.mark.parametrize("room", [None, "reverberant"])
def test_visitor_talking_over_the_echo_still_barges_in(settings, models_dir, room):
    visitor = speech(models_dir, "Wait! Stop! Tell me about Mars instead.")
    out = _echo_run(settings, models_dir, None, room=room, visitor_over=visitor)
    assert len(out.of(BargeIn)) == 1
    assert out.of(TurnDone)[0].outcome == "barge_in"


def test_name_mode_answers_only_when_addressed(settings, question):
    s = with_cfg(per_call(settings), "wake", mode="name", followup_s=5.0)
    eng = fakes(texts=["what time is it", "Anna, what time is it", "and the date", "and the date"])
    gap = silence(2.0)
    audio = np.concatenate([question, gap, question, gap, question, silence(8.0), question, gap])
    out = converse(s, eng, audio)
    outcomes = [e.outcome for e in out.of(TurnDone)]
    assert outcomes == ["no_reply", "replied", "replied", "no_reply"]
    reasons = [e.reason for e in out.of(NoReply)]
    assert reasons == ["not_addressed", "not_addressed"]


def test_speech_not_meant_for_the_kiosk_starts_no_reply_early(settings, question):
    # Name mode, with transcription in the pause (the default): a hall full of talk must not cost
    # an LLM run per pause. The reply begun early waits for what the gate would say.
    log: list = []
    llm = NotedLLM(log, "It is noon.")
    s = with_cfg(settings, "wake", mode="name", followup_s=5.0)
    out = converse(s, Engines(stt=FakeSTT("what time is it"), llm=llm, tts=FakeTTS()),
                   np.concatenate([question, silence(2.0)]))
    assert [e.outcome for e in out.of(TurnDone)] == ["no_reply"]
    assert "llm" not in log
    log.clear()
    out = converse(s, Engines(stt=FakeSTT("Anna, what time is it"), llm=NotedLLM(log, "It is noon."), tts=FakeTTS()),
                   np.concatenate([question, silence(2.0)]))
    assert [e.outcome for e in out.of(TurnDone)] == ["replied"] and "llm" in log  # (one more per pause in the question)


def test_empty_transcript_gives_no_reply(settings, question):
    out = converse(settings, fakes(text=""), np.concatenate([question, silence(1.0)]))
    assert out.of(NoReply)[0].reason == "nothing_heard"
    assert not out.of(SentenceReady) and np.abs(out.speaker.recording()).max(initial=0) == 0


def test_unfit_reply_is_replaced_and_generation_stopped(settings, question):
    eng = fakes(reply="Guns are cool. Let me tell you more about guns and more and more.")
    out = converse(settings, eng, np.concatenate([question, silence(1.0)]))
    said = [e.text for e in out.of(SentenceReady)]
    assert said == [REDIRECT["en"]]


def test_text_is_stored_only_when_privacy_allows(settings, question):
    s = with_cfg(settings, "privacy", store_text=True)
    converse(s, fakes(), np.concatenate([question, silence(1.0)]))
    row = TurnStore(s.paths.db_path, s.config.privacy).rows()[0]
    assert row["heard"] == "what is your name" and row["reply"].startswith("Hello!")
    assert row["text_expires_at"] > row["started_at"]
    assert not (s.paths.cache_dir / "debug-capture").exists()  # raw audio never, unless debug_capture


class SpeechDevice:
    """A capture device that speaks a question at 48 kHz in real time, is unplugged in the middle
    of the kiosk's turn, is missing for a while, and comes back with a second question."""

    def __init__(self, question: np.ndarray) -> None:
        from appliance.audio.resample import resample

        q48 = resample(question, 16000, 48000)
        z = np.zeros(48000, np.int16)
        self.takes = [np.concatenate([z[:9600], q48, z[:48000 * 4 // 5]]),   # unplugged 0.8 s after
                      np.concatenate([z[:9600], q48, z, z, z])]
        self.opens = 0

    def open(self, device_name, frame_ms, on_data):
        import threading

        self.opens += 1
        if self.opens in (2, 3):
            raise OSError("No such device")  # unplugged: missing for two attempts
        audio = self.takes[0 if self.opens == 1 else 1]
        alive = threading.Event()
        alive.set()
        block = 48 * frame_ms

        def pump():
            for i in range(0, len(audio) - block + 1, block):
                if not alive.is_set():
                    return
                on_data(audio[i:i + block].tobytes())
                threading.Event().wait(frame_ms / 1000 / 4)  # 4x real time
            alive.clear()

        threading.Thread(target=pump, daemon=True).start()

        class Handle:
            rate = 48000

            def is_active(self):
                return alive.is_set()

            def close(self):
                alive.clear()

        return Handle()


def test_microphone_vanishing_mid_turn_recovers(settings, question, caplog):
    import asyncio
    import logging

    from kiosk_helpers import demo_persona

    from appliance import logs
    from appliance.audio.mic import PyAudioMic
    from appliance.audio.speaker import RecordingSpeaker
    from appliance.conversation.conversation import Conversation

    caplog.set_level(logging.INFO)
    device = SpeechDevice(question)
    mic = PyAudioMic("usb", reconnect_s=0.2, backend=device, stall_s=0.3)
    eng = Engines(stt=FakeSTT(texts=["first", "second"]), llm=FakeLLM("Hello there. Nice day."),
                  tts=FakeTTS(seconds_per_char=0.05))
    conv = Conversation(per_call(settings), demo_persona(), eng, mic, RecordingSpeaker(16000))
    done = []
    conv.on_event = lambda e: (done.append(e) if isinstance(e, TurnDone) else None,
                               conv.stop() if len(done) == 2 else None)
    asyncio.run(asyncio.wait_for(conv.run(), timeout=60))
    assert [e.outcome for e in done] == ["replied", "replied"]
    assert [e.text for e in conv.events if isinstance(e, Transcribed)] == ["first", "second"]
    assert any(getattr(r, "message_id", "") == logs.DEVICE_LOST for r in caplog.records)
    assert any(getattr(r, "message_id", "") == logs.DEVICE_BACK for r in caplog.records)


def test_wake_word_mode_with_microwakeword(settings, models_dir):
    from appliance.engines.wake import MicroWakeWordDetector

    s = with_cfg(settings, "wake", mode="wake", wake_word="okay_nabu", followup_s=2.0)
    eng = Engines(stt=FakeSTT("what is your name"), llm=FakeLLM("I am Anna."), tts=FakeTTS(),
                  wake=MicroWakeWordDetector("okay_nabu"))
    plain = speech(models_dir, "What is your name?")
    woken = speech(models_dir, "Okay Nabu! What is your name?")
    audio = np.concatenate([plain, silence(4.0), woken, silence(1.0), plain, silence(6.0), plain, silence(1.0)])
    out = converse(s, eng, audio)
    outcomes = [e.reason if isinstance(e, NoReply) else "replied" for e in out.events
                if isinstance(e, NoReply) or (isinstance(e, TurnDone) and e.outcome == "replied")]
    assert len(out.of(WakeWordHeard)) >= 1
    # no wake word: ignored; with it: answered; a follow-up inside the window: answered; later: ignored
    assert outcomes == ["no_wake_word", "replied", "replied", "no_wake_word"]


class LengthSTT:
    """Says how much audio it was given, and when (the conversation's events so far)."""

    def __init__(self, log: list) -> None:
        self.log = log

    def transcribe(self, samples, languages, prior):
        self.log.append("stt")
        return f"{len(samples)} samples", languages[0], -0.2, 0.99


def test_transcription_starts_in_the_pause_before_the_end_is_confirmed(settings, models_dir):
    log: list = []
    eng = Engines(stt=LengthSTT(log), llm=FakeLLM("Hi."), tts=FakeTTS())
    out = converse(settings, eng, np.concatenate([speech(models_dir, "What is your name?"), silence(1.5)]),
                   on_event=lambda e: log.append(type(e).__name__))
    assert log.count("stt") == 1                                  # the early transcript was the turn's
    assert log.index("stt") < log.index("UtteranceCut")           # started while the silence was confirmed
    cut = out.of(UtteranceCut)[0]
    assert out.of(Transcribed)[0].text == f"{round(cut.duration * 16000)} samples"


def test_speech_after_the_pause_throws_the_early_transcript_away(settings, question):
    log: list = []
    eng = Engines(stt=LengthSTT(log), llm=FakeLLM("Hi."), tts=FakeTTS())
    # 350 ms of silence: past early_stt_ms (200), short of end_silence_ms (600) — the visitor goes on.
    # (piper's own leading and trailing silence varies from take to take: trimmed, so the gap is exact)
    loud = np.flatnonzero(np.abs(question) > 500)
    said = question[loud[0]:loud[-1] + 1]
    out = converse(settings, eng, np.concatenate([said, silence(0.35), said, silence(1.5)]))
    assert log.count("stt") >= 2                                  # one in the pause, one for the whole
    cut, heard = out.of(UtteranceCut)[0], out.of(Transcribed)
    assert [e.text for e in heard] == [f"{round(cut.duration * 16000)} samples"]  # the whole utterance's
    assert cut.duration > 2 * len(said) / 16000


class NotedLLM(FakeLLM):
    """Notes in ``log`` when it is asked (and how its generations ended)."""

    def __init__(self, log: list, reply: str, delay_s: float = 0.0) -> None:
        super().__init__(reply, delay_s)
        self.log, self.endings = log, []

    def generate(self, messages, cancel):
        self.log.append("llm")
        n = 0
        for piece in super().generate(messages, cancel):
            n += 1
            yield piece
        self.endings.append((messages[-1].content, "cancelled" if cancel.is_set() else f"{n} pieces"))


def test_the_reply_starts_on_the_early_transcript(settings, models_dir):
    # The LLM is asked while the end-of-speech silence is still being confirmed, once, and the
    # turn speaks what that generation wrote: the head start is the turn's own reply.
    log: list = []
    llm = NotedLLM(log, "Hi, I am Anna.")
    eng = Engines(stt=LengthSTT(log), llm=llm, tts=FakeTTS())
    out = converse(settings, eng, np.concatenate([speech(models_dir, "What is your name?"), silence(1.5)]),
                   on_event=lambda e: log.append(type(e).__name__))
    assert log.count("llm") == 1 and log.index("stt") < log.index("llm") < log.index("UtteranceCut")
    assert out.replies() == ["Hi, I am Anna."]
    m = out.of(TurnDone)[0].metrics
    assert 0 < m.llm_head_start_s < 0.6  # started before the turn did, within the end-of-speech wait
    # off: the LLM waits for the confirmed end
    log.clear()
    llm = NotedLLM(log, "Hi, I am Anna.")
    off = converse(with_cfg(settings, "llm", head_start=False), Engines(stt=LengthSTT(log), llm=llm, tts=FakeTTS()),
                   np.concatenate([speech(models_dir, "What is your name?"), silence(1.5)]),
                   on_event=lambda e: log.append(type(e).__name__))
    assert log.index("UtteranceCut") < log.index("llm") and off.of(TurnDone)[0].metrics.llm_head_start_s == 0


def test_speech_after_the_pause_drops_the_reply_begun_on_it(settings, question):
    # The visitor pauses 350 ms mid-sentence: a reply to the half-sentence starts, and must stop
    # the moment they go on; the turn answers the whole utterance, once.
    log: list = []
    llm = NotedLLM(log, " ".join(["word"] * 30) + ".", delay_s=0.03)  # ~0.9 s: cannot finish in the pause
    eng = Engines(stt=LengthSTT(log), llm=llm, tts=FakeTTS())
    loud = np.flatnonzero(np.abs(question) > 500)
    said = question[loud[0]:loud[-1] + 1]
    out = converse(settings, eng, np.concatenate([said, silence(0.35), said, silence(1.5)]))
    cut = out.of(UtteranceCut)[0]
    whole = f"{round(cut.duration * 16000)} samples"
    assert [e.text for e in out.of(Transcribed)] == [whole]
    # (piper pauses at the comma too: each pause starts a reply, each is stopped when speech goes on)
    *dropped, kept = llm.endings
    assert dropped and all(q != whole and how == "cancelled" for q, how in dropped), llm.endings
    assert kept == (whole, "30 pieces")                           # the whole one, spoken in full
    assert len(out.replies()) == 1


class SlowFirstSentenceTTS(FakeTTS):
    """Takes 0.3 s before the first sentence's audio, noting what the LLM wrote meanwhile."""

    def __init__(self, llm: FakeLLM) -> None:
        super().__init__()
        self.llm, self.pieces_while_voicing = llm, None

    def synthesize(self, text, language):
        if self.pieces_while_voicing is None and "friend" in text:  # not the greetings warmed before
            before = self.llm.pieces
            time.sleep(0.3)
            self.pieces_while_voicing = self.llm.pieces - before
        yield from super().synthesize(text, language)


class CountingLLM(FakeLLM):
    pieces = 0

    def generate(self, messages, cancel):
        for piece in super().generate(messages, cancel):
            self.pieces += 1
            yield piece


def test_the_llm_waits_while_the_first_sentence_is_voiced(settings, question):
    """On 2 cores the LLM writing on would slow the voice the visitor is waiting for."""
    llm = CountingLLM("Hello there, my young friend and visitor. Then " + " ".join(["word"] * 40) + ".", delay_s=0.005)
    tts = SlowFirstSentenceTTS(llm)
    out = converse(settings, Engines(stt=FakeSTT(), llm=llm, tts=tts), np.concatenate([question, silence(8.0)]))
    assert out.of(SentenceReady)[0].text == "Hello there, my young friend and visitor."
    assert out.replies()[0].count("word") == 40                       # the rest of the reply came after
    assert tts.pieces_while_voicing <= 1     # at most the piece already on its way when the sentence closed


def test_debug_capture_writes_the_utterance_only_when_enabled(settings, question):
    s = with_cfg(settings, "privacy", debug_capture=True)
    converse(s, fakes(), np.concatenate([question, silence(1.0)]))
    wavs = list((s.paths.cache_dir / "debug-capture").glob("*.wav"))
    assert len(wavs) == 1
    from appliance.audio.wav import read_mono_16k
    assert abs(len(read_mono_16k(wavs[0])) - len(question)) < 0.5 * 16000


def test_stopping_mid_reply_abandons_the_turn_instead_of_hanging(settings, question):
    """`run --exit-after` / SIGTERM while the kiosk speaks: the run returns, the speaker is silent.
    (A recording speaker's clock only moves with microphone frames: waiting for the reply to play
    out after the microphone stopped would never end.)"""
    import asyncio

    from appliance.audio.mic import WavFileMic
    from appliance.audio.speaker import RecordingSpeaker
    from appliance.conversation.conversation import run_conversation

    audio = np.concatenate([question, silence(20.0)])
    eng = Engines(stt=FakeSTT("tell me about space"), llm=FakeLLM(LONG_REPLY), tts=FakeTTS(seconds_per_char=0.06))
    speaker = RecordingSpeaker(22050)
    stop_at = len(question) / 16000 + 2.5  # the long reply (~9 s of audio) is still playing then

    async def go():
        return await asyncio.wait_for(run_conversation(settings, WavFileMic(samples=audio), speaker,
                                                       kiosk_helpers.demo_persona(), engines=eng,
                                                       stop_after_audio_s=stop_at), timeout=60)
    events = asyncio.run(go())
    assert any(isinstance(e, AudioQueued) for e in events)  # it had started speaking
    assert not speaker.busy  # nothing left queued to play
    assert len(speaker.recording()) / 22050 <= stop_at + 0.5


class SilentOrBrokenTTS(FakeTTS):
    """Says nothing for (or fails on) the reply's first sentence; speaks the rest."""

    def __init__(self, broken: bool) -> None:
        super().__init__()
        self.broken = broken

    def synthesize(self, text, language):
        if "friend" in text:
            if self.broken:
                raise RuntimeError("the voice engine died")
            return
        yield from super().synthesize(text, language)


@pytest.mark.parametrize("broken", [False, True], ids=["says nothing", "fails"])
def test_a_first_sentence_without_audio_never_holds_the_llm(settings, question, broken):
    llm = FakeLLM("Hello there, my young friend and visitor. Then we talk. And more.", delay_s=0.005)
    out = converse(settings, Engines(stt=FakeSTT(), llm=llm, tts=SilentOrBrokenTTS(broken)),
                   np.concatenate([question, silence(6.0)]))
    done = out.of(TurnDone)
    if broken:   # the turn fails cleanly (and the kiosk goes on listening), it does not hang
        assert [d.outcome for d in done] == ["error"] and out.of(TurnFailed)
    else:        # the rest of the reply is spoken
        assert [d.outcome for d in done] == ["replied"] and "And more." in out.replies()[0]
