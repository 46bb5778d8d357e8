"""The fact sheet (``knowledge.md``): what the kiosk knows, in Russian and English — lookup with word
forms, the prompt it feeds, and the bundle step that checks it (bad encoding, too big: refused with
one line, nothing changed)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from support import bundles as T

from appliance.conversation.session import Session
from appliance.knowledge import MAX_BYTES, Knowledge, KnowledgeError, check, parse
from appliance.persona import load as load_persona
from appliance.profile import Profile
from provisioning import bundle, derive, pipeline, profiles

REPO = Path(__file__).resolve().parent.parent
DEMO_SHEET = REPO / "assets" / "demo" / "knowledge.md"


@pytest.fixture(scope="module")
def sheet() -> Knowledge:
    return Knowledge.load(DEMO_SHEET)


@pytest.mark.parametrize("question, expected", [
    ("When is the museum open?", "open every day from 10"),
    ("Where is the cafe?", "second floor"),                     # café in the sheet, cafe in the question
    ("Why is Mars red?", "rust"),
    ("Когда открыт музей?", "с 10 утра до 6 вечера"),
    ("Сколько стоит билет?", "300 рублей"),
    ("Расскажите про Юпитер", "самая большая планета"),         # Юпитер ~ Юпитера: one stem
    ("Что лежит в витрине у входа?", "кусочек Луны"),
])
def test_the_question_finds_its_fact_in_either_language(sheet, question, expected):
    assert expected in sheet.lookup(question)[0].text


def test_small_talk_finds_nothing(sheet):
    assert sheet.lookup("Hello! How are you?") == [] and sheet.lookup("Привет! Как дела?") == []


def test_the_sheets_own_names_are_its_key_words(sheet):
    ru, en = sheet.key_words("ru"), sheet.key_words("en")
    assert {"Восток", "Гагарин", "Аполлон-17", "Байконуром"} <= set(ru)
    assert {"Vostok", "Gagarin", "Baikonur"} <= set(en)
    # capitalised only because a sentence starts with it: not a name
    assert not {"Музей", "Билет", "Кафе", "The", "Museum"} & set(ru + en)
    assert all(len(words) <= 24 for words in (ru, en))


def test_russian_word_forms_meet():
    k = Knowledge(parse("Музей космонавтики открыт до вечера.\n\nВ кафе подают чай."))
    assert k.lookup("Что есть в музее?")[0].text.startswith("Музей")       # музей ~ музее
    assert k.lookup("Когда закрываются музеи?")[0].text.startswith("Музей")  # музей ~ музеи


def test_a_museums_sheet_lives_in_the_cached_prefix_in_the_visitors_language(settings, sheet):
    persona = load_persona(REPO / "assets" / "demo" / "persona.toml")
    knowing = Session(settings.config, persona, sheet)
    ru, en = knowing.prefixes["ru"][0].content, knowing.prefixes["en"][0].content
    assert "300 рублей" in ru and "Юпитер" in ru and "roubles" not in ru      # Russian facts for Russian turns
    assert "300 roubles" in en and "Jupiter" in en and "рублей" not in en
    assert ru.count("Музей:") == 1                                               # each heading once
    asked = knowing.messages("Сколько стоит билет?", "ru")
    assert asked[:len(knowing.prefixes["ru"])] == knowing.prefixes["ru"]  # the cached prefix, as warmed
    assert asked[-1].content == "Сколько стоит билет?"  # nothing more to pay for in the turn itself
    knowing.history.add_turn("Сколько стоит билет?", "300 рублей.", 1.0)
    assert knowing.history.messages[0].content == "Сколько стоит билет?"  # history keeps the visitor's words


def test_a_sheet_too_big_for_the_prefix_brings_the_rest_into_the_question(settings):
    persona = load_persona(REPO / "assets" / "demo" / "persona.toml")
    filler = "\n".join(f"Зал {i} открыт для групп по предварительной записи у администратора." for i in range(60))
    big = Knowledge(parse(filler + "\n\nБилет в обсерваторию стоит 150 рублей.\n\nThe observatory costs 2 dollars."))
    knowing, plain = Session(settings.config, persona, big), Session(settings.config, persona)
    prefix = knowing.prefixes["ru"][0].content
    assert "Зал 0 " in prefix and "обсерватор" not in prefix  # the sheet's first passages, up to the budget
    assert len(prefix) < len(plain.prefixes["ru"][0].content) + 1700
    asked = knowing.messages("Сколько стоит обсерватория?", "ru")[-1].content
    assert asked.startswith("Сколько стоит обсерватория?") and "150 рублей" in asked
    assert "dollars" not in asked                      # the visitor's language only
    assert "Зал 0 " not in asked                       # never a fact the prefix already holds
    assert knowing.messages("Hello!", "en")[-1].content == "Hello!"  # nothing relevant: the question as asked


def test_a_sheet_the_kiosk_cannot_use_gets_one_line():
    with pytest.raises(KnowledgeError, match="is not UTF-8 text — save it again as UTF-8"):
        check("Музей открыт с 10 утра.".encode("cp1251"))
    with pytest.raises(KnowledgeError, match=r"the kiosk reads at most 256 KB"):
        check(b"fact. " * (MAX_BYTES // 5))
    with pytest.raises(KnowledgeError, match="has no facts in it"):
        check(b"# Heading\n\n---\n")
    assert check("\ufeffThe museum opens at 10.".encode()) == "The museum opens at 10."  # a BOM is fine


@pytest.fixture
def stub(monkeypatch):
    monkeypatch.setenv(derive.STUB_ENV, "1")  # the light path: this test is about the sheet


def _bundle_with(tmp_path: Path, sheet: bytes | None) -> Path:
    src = T.make_source(tmp_path / "src")
    if sheet is not None:
        (src / "knowledge.md").write_bytes(sheet)
    out = tmp_path / "bundle"
    bundle.build(src, out)
    return out


def test_provisioning_keeps_the_sheet_with_the_profile(settings, tmp_path, stub):
    r = pipeline.provision(settings, _bundle_with(tmp_path, DEMO_SHEET.read_bytes()))
    assert r.ok, r.message
    assert "facts: knowledge.md, 22 passage(s) (en, ru)" in r.report
    kept = Profile(settings.paths.current_profile).knowledge
    assert kept.read_bytes() == DEMO_SHEET.read_bytes()
    assert profiles.is_complete(settings.paths.current_profile.resolve(), full=True)


def test_a_bundle_with_a_bad_sheet_is_refused_and_nothing_changes(settings, tmp_path, stub):
    before = T.tree_digest(settings.paths.profiles_dir)
    r = pipeline.provision(settings, _bundle_with(tmp_path, "Музей открыт.".encode("cp1251")))
    assert not r.ok and r.code == "knowledge" and r.step == "validate"
    assert r.message.startswith("knowledge.md is not UTF-8 text")
    assert T.tree_digest(settings.paths.profiles_dir) == before
    assert list(settings.paths.staging_dir.iterdir()) == []


def test_the_demo_bundle_carries_its_sheet(tmp_path):
    from appliance.demo import KNOWLEDGE_FILE, assemble_bundle

    if not Path("/usr/share/asterisk/sounds/ru_RU_f_IvrvoiceRU").is_dir():
        pytest.skip("asterisk-core-sounds-ru-wav is not installed (the set-up installs it)")
    out = assemble_bundle(tmp_path / "demo")
    assert (out / "knowledge.md").read_bytes() == KNOWLEDGE_FILE.read_bytes()
    assert "knowledge.md" in (out / bundle.MANIFEST).read_text(encoding="utf-8")
    shutil.rmtree(out)
