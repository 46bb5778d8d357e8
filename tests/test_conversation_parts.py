"""The small pure parts of a turn: safety filter, prompt, history, storage, wake gate, language choice."""

from __future__ import annotations

import dataclasses
import time

import pytest
from kiosk_helpers import demo_persona

from appliance.config import PrivacyConfig
from appliance.conversation import prompt, safety
from appliance.conversation.history import History
from appliance.conversation.session import fallback_reply
from appliance.conversation.storage import TurnRecord, TurnStore
from appliance.engines.stt_whisper import choose_language
from appliance.engines.wake import WakeGate


@pytest.mark.parametrize("sentence", [
    "Guns can kill people.", "Let me tell you about drugs.", "That is fucking cool.",
    "Войну начал президент.", "Это пиво вкусное.",
])
def test_unfit_sentences_are_replaced_and_stop_generation(sentence):
    lang = "ru" if any("а" <= c <= "я" for c in sentence.lower()) else "en"
    v = safety.check_sentence(sentence, lang)
    assert v.stop
    assert v.text == safety.REDIRECT[lang]
    assert not safety.is_blocked(v.text)


@pytest.mark.parametrize("sentence", [
    "Hello! The moon is far away.", "Rockets skillfully reach orbit.", "Привет! Космос огромный.",
    "Shell and hello are fine words.",
])
def test_fit_sentences_pass(sentence):
    lang = "ru" if any("а" <= c <= "я" for c in sentence.lower()) else "en"
    v = safety.check_sentence(sentence, lang)
    assert not v.stop and v.text == sentence


@pytest.mark.parametrize("sentence, language, wrong", [
    ("The cafe is on the second floor.", "ru", True),     # a Russian visitor may not understand it
    ("Кафе находится на втором этаже.", "en", True),
    ("Кафе находится на втором этаже.", "ru", False),
    ("Станцию запустили NASA и Роскосмос.", "ru", False),  # a name in the other script is fine
    ("My name is Anna, or Анна in Russian.", "en", False),
])
def test_a_sentence_in_the_other_language_is_not_spoken(sentence, language, wrong):
    v = safety.check_sentence(sentence, language)
    assert v.stop is wrong
    assert v.text == (safety.WRONG_LANGUAGE[language] if wrong else sentence)


def test_links_markup_and_phone_numbers_are_stripped():
    v = safety.check_sentence("**Visit** https://example.com or call +1 555 123 4567 now 🚀", "en")
    assert v.text == "Visit or call now"
    assert safety.check_sentence("*** 🚀 ***", "en").text == ""


def test_prompt_names_the_persona_and_primes_it():
    p = demo_persona()
    msgs = prompt.prefix(p)
    assert msgs[0].role == "system" and msgs[0].content.startswith("You are Anna.")
    assert "children" in msgs[0].content
    assert msgs[-1].role == "assistant" and "Anna" in msgs[-1].content


def test_russian_fallback_is_russian_and_names_the_persona():
    text = fallback_reply(demo_persona(), "ru")
    assert "Анна" in text and "по-английски" in text


def test_history_is_capped_and_dropped_when_the_visitor_leaves():
    h = History(max_turns=2, visitor_gone_s=45)
    for i in range(3):
        h.add_turn(f"q{i}", f"a{i}", t=float(i))
    assert [m.content for m in h.messages] == ["q1", "a1", "q2", "a2"]
    assert not h.expired(46.9)
    assert h.expired(47.0)
    h.clear()
    assert h.messages == [] and not h.expired(1000)


def test_a_switch_of_language_starts_the_conversation_afresh():
    h = History(max_turns=4, visitor_gone_s=45)
    h.use_language("en")
    h.add_turn("Where is the cafe?", "On the second floor.", t=1.0)
    h.use_language("en")
    assert len(h.messages) == 2                          # the same language: the conversation goes on
    h.use_language("ru")
    assert h.messages == [] and h.language == "ru"       # Russian now: no English turns for the model to follow
    assert not h.expired(40.0)                           # the visitor is still there


def test_storage_keeps_text_only_when_allowed_and_expires_it(tmp_path):
    no_text = TurnStore(tmp_path / "a.sqlite3", PrivacyConfig())
    no_text.add(TurnRecord("t1", language="en", heard="hello", reply="hi there", reply_chars=8, ttfa_ms=900))
    row = no_text.rows()[0]
    assert row["heard"] is None and row["reply"] is None and row["reply_chars"] == 8 and row["ttfa_ms"] == 900

    store = TurnStore(tmp_path / "b.sqlite3", dataclasses.replace(PrivacyConfig(), store_text=True,
                                                                   text_retention_days=1))
    store.add(TurnRecord("t2", language="ru", heard="привет", reply="здравствуйте"))
    assert store.rows()[0]["heard"] == "привет"
    assert store.purge(now=time.time() + 2 * 86400) == 1
    row = store.rows()[0]
    assert row["heard"] is None and row["reply"] is None and row["language"] == "ru"


def test_wake_gate_name_mode_and_follow_up_window():
    g = WakeGate("name", followup_s=20, names=["Anna", "Анна"])
    assert g.accept_audio(5.0)  # name mode decides on the transcript
    assert not g.accept_text("What is the time?", 5.0)
    assert g.accept_text("Anna, what is the time?", 10.0)
    assert g.accept_text("And what is the date?", 25.0)       # follow-up: no name needed
    assert not g.accept_text("And what is the date?", 50.0)   # window closed (25 + 20 < 50)
    assert g.accept_text("Анну знаешь?", 60.0)                # Russian case ending


def test_wake_gate_wake_mode():
    g = WakeGate("wake", followup_s=10)
    assert not g.accept_audio(3.0)
    g.on_wake_word(4.0)
    assert g.accept_audio(5.0) and g.accept_text("what time is it", 5.0)
    assert g.accept_audio(12.0)          # follow-up window
    assert not g.accept_audio(30.0)
    assert WakeGate("open", 10).accept_text("anything", 1.0)


def test_language_choice_only_among_persona_languages_with_a_prior_for_short_clips():
    probs = {"pl": 0.5, "en": 0.3, "ru": 0.2}
    assert choose_language(probs, ["en", "ru"], None, 3.0)[0] == "en"
    assert choose_language(probs, ["en", "ru"], "ru", 0.8)[0] == "ru"   # short: prior holds
    assert choose_language(probs, ["en", "ru"], "ru", 3.0)[0] == "en"   # long: evidence wins
    assert choose_language({"en": 0.9, "ru": 0.05}, ["en", "ru"], "ru", 0.8)[0] == "en"  # clearly en
    assert choose_language(probs, ["ru"], "en", 0.5)[0] == "ru"


def test_inference_yields_the_cpu_to_the_face():
    """The LLM and whisper run below the loop thread's priority (the face is drawn there), the voice
    in between; the barge-in check at full priority."""
    import asyncio
    import os
    import threading

    from appliance.conversation.workers import Workers

    def nice() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    async def main() -> dict[str, int]:
        w = Workers(wake=False)
        try:
            return {name: await getattr(w, name).call(nice) for name in ("llm", "stt", "tts", "vad")}
        finally:
            w.close()

    base = nice()
    assert asyncio.run(main()) == {"llm": base + 10, "stt": base + 10, "tts": base + 5, "vad": base}
