"""The streaming sentence splitter: every sentence out the moment it closes, none split wrongly."""

from __future__ import annotations

import pytest

from appliance.conversation.chunker import SentenceChunker


def split(text: str, step: int = 1) -> list[str]:
    c = SentenceChunker()
    out = []
    for i in range(0, len(text), step):
        out += c.feed(text[i:i + step])
    return out + c.flush()


@pytest.mark.parametrize("step", [1, 3, 7, 1000])
@pytest.mark.parametrize("text, expected", [
    ("Hi! I am Anna. How are you?", ["Hi!", "I am Anna.", "How are you?"]),
    ("Pi is 3.14, e.g. in circles. Dr. Smith agrees.", ["Pi is 3.14, e.g. in circles.", "Dr. Smith agrees."]),
    ("We flew in 1969. Then we came back.", ["We flew in 1969.", "Then we came back."]),
    ("J. R. R. Tolkien wrote books. The end", ["J. R. R. Tolkien wrote books.", "The end"]),
    ("Wait... what? Yes!", ["Wait... what?", "Yes!"]),
    ("He said \"Go!\" Then left.", ["He said \"Go!\"", "Then left."]),
    ("Привет! Я Анна, т. е. гид. Как дела?", ["Привет!", "Я Анна, т. е. гид.", "Как дела?"]),
    ("Это было в 1961 году. Гагарин полетел первым…", ["Это было в 1961 году.", "Гагарин полетел первым…"]),
    ("Line one\nLine two", ["Line one", "Line two"]),
])
def test_split(text, expected, step):
    assert split(text, step) == expected


def test_sentence_is_released_as_soon_as_it_is_known_to_be_complete():
    c = SentenceChunker()
    assert c.feed("Hello there.") == []      # could still be "Hello there.com" or "Mr."
    assert c.feed(" ") == []                  # could still be an abbreviation before a lower-case word
    assert c.feed("H") == ["Hello there."]    # a capital: the sentence is over


def test_a_long_first_sentence_is_cut_at_a_comma():
    c = SentenceChunker()
    out = c.feed("The moon is very far away from us, about four hundred thousand kilometres, and it "
                 "takes three days")
    assert out and out[0].endswith(",") and len(out[0]) <= 70


def test_nothing_but_punctuation_gives_no_sentence():
    assert split("...") == []
    assert split("") == []


def test_a_run_on_sentence_is_cut_before_a_conjunction_or_at_a_space():
    run_on = ("The answer lies in the atmosphere and how our planet reflects light at different wavelengths "
              "into colors through a process called scattering that occurs when we look outside the window "
              "to view it from above but not down so you get what I mean")
    parts = split(run_on)
    assert len(parts) >= 3
    assert " ".join(parts) == run_on
    assert all(len(p) <= 160 for p in parts)
    assert parts[1].startswith(("and ", "but ", "so ", "or "))


def test_the_first_sentence_goes_at_its_first_clause():
    """The first words decide the wait: a clause goes to the voice once the next word has begun."""
    c = SentenceChunker()
    assert c.feed("Музей открыт каждый день с 10 утра до 6 вечера,") == []   # the clause may go on
    assert c.feed(" кроме") == ["Музей открыт каждый день с 10 утра до 6 вечера,"]
    assert c.feed(" понедельника. Кафе на втором этаже, рядом с планетарием. ") == ["кроме понедельника."]
    assert c.flush() == ["Кафе на втором этаже, рядом с планетарием."]  # later sentences stay whole
    short = SentenceChunker()
    assert short.feed("Hi, I am Anna. ") == []  # a short first clause is not worth a cut
    assert short.feed("Ask") == ["Hi, I am Anna."]
