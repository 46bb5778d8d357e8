"""bench --wer: the scoring by hand, the reference set, and recorded Russian through the real listening loop."""

from __future__ import annotations

import pytest
from kiosk_helpers import RU_PROMPTS, demo_persona, silero, stt, tts

from appliance.bench import wer as bench_wer
from appliance.bench.wer import BASELINE, Row, edits, load_references, summarize, wer, words
from appliance.engines.factory import Engines

NOT_INSTALLED = "asterisk-core-sounds-ru-wav is not installed (the set-up installs it)"
needs_prompts = pytest.mark.skipif(not RU_PROMPTS.is_dir(), reason=NOT_INSTALLED)


def test_wer_counts_word_edits():
    assert wer("введите пароль конференции", "введите пароль конференции") == 0.0
    assert wer("введите пароль", "видите пароль") == 0.5                          # a substitution
    assert wer("нажмите решётку", "нажмите на решётку") == 0.5                    # an insertion
    assert wer("введите пароль конференции", "введите пароль") == pytest.approx(1 / 3)  # a deletion
    assert wer("два слова", "") == 1.0
    assert wer("раз", "раз два три") == 2.0  # insertions can take it past 100 %
    assert edits(["a", "b", "c"], ["b", "c", "d"]) == 2


def test_wer_ignores_case_punctuation_and_yo():
    assert wer("Ещё раз, пожалуйста!", "еще раз пожалуйста") == 0.0
    assert wer("Её решётка.", "ее — решетка") == 0.0
    assert words("IP-телефонной станции") == ["ip", "телефонной", "станции"]


def test_wer_spells_numbers_as_spoken():
    pytest.importorskip("num2words")
    assert wer("Нажмите пять, чтобы оставить сообщение.", "Нажмите 5, чтобы оставить сообщение.") == 0.0


def test_references_are_forty_prompts_with_provenance():
    refs = load_references()
    assert len(refs) == 40
    assert len({n for n, _ in refs}) == 40
    assert all(2 <= len(words(text)) <= 12 for _, text in refs), [t for _, t in refs if len(words(t)) > 12]
    header = "".join(line for line in bench_wer.PROMPTS_TSV.read_text(encoding="utf-8").splitlines(True)
                     if line.startswith("#"))
    assert "asterisk-core-sounds-ru-wav" in header and "CC-BY-3.0" in header


@needs_prompts
def test_every_reference_has_its_recording():
    missing = [n for n, _ in load_references() if not (RU_PROMPTS / f"{n}.wav").is_file()]
    assert not missing


def test_summary_compares_the_kiosk_with_fixed_russian():
    refs = [("a", "один два три четыре"), ("b", "пять шесть семь восемь")]
    base = Row(BASELINE, texts={"a": "один два три четыре", "b": "пять шесть семь восемь"},
               languages={"a": "ru", "b": "ru"})
    kiosk = Row("kiosk path (listen)", texts={"a": "one two three four", "b": ""}, languages={"a": "en", "b": ""},
                reasons={"b": "low_confidence"})
    res = summarize(refs, [base, kiosk])
    k = res["rows"]["kiosk path (listen)"]
    assert k["wer_pct"] == 100.0 and k["language_errors"] == 1 and k["taken_for_english"] == 1
    assert k["no_transcript"] == 1 and k["no_reply_reasons"] == ["low_confidence"]
    assert res["kiosk_minus_baseline_points"] == 100.0 and not res["within"]


@pytest.fixture(scope="module")
def engines(models_dir):
    """The embedded STT, TTS and silero (shared with the other real-engine tests); no LLM, as the bench."""
    return Engines(stt=stt(models_dir), llm=None, tts=tts(models_dir), silero=silero())


@needs_prompts
def test_kiosk_path_hears_recorded_russian(settings, engines):
    refs = dict(load_references())
    names = ["dir-welcome", "pbx-invalid", "vm-nobodyavail"]
    audio = bench_wer.prompt_audio(names)
    row = bench_wer.kiosk_row(settings, engines, demo_persona(), audio)
    for n in names:
        assert row.languages[n] == "ru", (n, row.texts[n])
        assert wer(refs[n], row.texts[n]) < 0.4, (n, row.texts[n])


@needs_prompts
def test_kiosk_path_without_name_hints_puts_them_back(settings, engines):
    persona = demo_persona()
    heard = bench_wer.kiosk_hears(settings, engines, persona, bench_wer.prompt_audio(["dir-welcome"])["dir-welcome"],
                                  names=False)
    assert heard.language == "ru" and wer("Добро пожаловать в директорию.", heard.text) < 0.4, heard
    assert "Анна" in engines.stt.hotwords["ru"]  # the persona's names are hinted again afterwards
