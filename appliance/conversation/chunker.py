"""Streaming sentence splitter: LLM tokens in, complete sentences out, each the moment it closes.

A sentence closes at ``.``, ``!``, ``?``, ``…`` (or a run of them, with closing quotes/brackets)
once the *next* non-space character shows it really was an end: a capital letter, a digit, a
quote or the end of the reply. That keeps "3.14", "e.g. this", "Dr. Smith", "т. е.", "J. R. R."
and "in 1969. Then" right without waiting for more than one character of lookahead. A newline
always closes a sentence. The reply's first sentence goes at its first clause boundary (a comma, a
dash, a colon past 24 characters), because it alone decides how long the visitor waits; a later
sentence that runs very long is cut at a comma or a dash so speech can start before the model
finishes it.
"""

from __future__ import annotations

import re

ABBREVIATIONS = {
    # English
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "etc", "e.g", "i.e", "approx", "no", "fig",
    "mt", "ft", "inc", "ltd", "co", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept",
    "oct", "nov", "dec", "a.m", "p.m", "u.s", "u.k",
    # Russian
    "т.е", "т.д", "т.п", "т.к", "т.н", "др", "пр", "г", "гг", "ул", "им", "см", "стр", "рис", "тыс",
    "млн", "млрд", "руб", "коп", "км", "кг", "т", "е", "д", "п", "н", "э", "н.э", "до н.э", "проф", "акад",
}
ENDERS = ".!?…"
CLOSERS = "\"'»”)]"
MAX_CHARS = 160   # past this, cut at a comma/dash/semicolon
FIRST_MAX_CHARS = 70  # the first sentence is cut sooner: it decides the time to first audio
MIN_CUT = 30      # ...but never leave a fragment shorter than this
FIRST_CLAUSE = 24  # the first sentence goes at its first clause boundary past this many characters
CLAUSE_MARKS = (",", ";", " —", " –", ":")


class SentenceChunker:
    def __init__(self, max_chars: int = MAX_CHARS, first_max_chars: int = FIRST_MAX_CHARS) -> None:
        self.buf = ""
        self.max_chars = max_chars
        self.first_max_chars = first_max_chars
        self.emitted = 0

    def feed(self, text: str) -> list[str]:
        """Add streamed text; returns the sentences completed by it (maybe none)."""
        self.buf += text
        out: list[str] = []
        while True:
            cut = self._find_cut()
            if cut is None:
                break
            sentence, self.buf = self.buf[:cut].strip(), self.buf[cut:].lstrip()
            if sentence:
                out.append(sentence)
                self.emitted += 1
        return out

    def flush(self) -> list[str]:
        """End of the reply: whatever is left is the last sentence."""
        rest, self.buf = self.buf.strip(), ""
        return [rest] if _has_words(rest) else []

    def _find_cut(self) -> int | None:
        buf = self.buf
        nl = buf.find("\n")
        i = 0
        n = len(buf)
        while i < n:
            ch = buf[i]
            if nl != -1 and i == nl:
                return nl + 1 if _has_words(buf[:nl]) else _skip(buf, nl + 1)
            if ch in ENDERS:
                j = i
                while j < n and buf[j] in ENDERS:
                    j += 1
                while j < n and buf[j] in CLOSERS:
                    j += 1
                k = j
                while k < n and buf[k] in " \t":
                    k += 1
                if k >= n:
                    return None  # need to see what follows
                if k == j:  # no space after: "3.14", "e.g.x" — not an end
                    i = j
                    continue
                nxt = buf[k]
                if buf[i] != "." or (_starts_sentence(nxt) and not _is_abbreviation(buf[:i])):
                    return j
                i = j
                continue
            i += 1
        if self.emitted == 0:
            # The first words decide the time to first audio: speak the first clause as soon as it
            # closes ("Музей открыт с 10 утра до 6 вечера," — then the rest), once a word follows it.
            ends = [i + len(c) for c in CLAUSE_MARKS if (i := buf.find(c, FIRST_CLAUSE)) != -1]
            # "10,5" is a number, not a clause: the mark must be followed by a space and a word
            ends = [e for e in ends if re.match(r"\s+\S", buf[e:])]
            if ends:
                return min(ends)
        limit = self.first_max_chars if self.emitted == 0 else self.max_chars
        if n > limit:
            m = max((buf.rfind(c, MIN_CUT, limit) for c in (",", ";", " —", " -", ":")), default=-1)
            if m > 0:
                return m + 1
            # No punctuation (small models write run-on sentences): before a conjunction, and at
            # worst before the last word that fits.
            m = max((buf.rfind(c, MIN_CUT, limit) for c in (" and ", " but ", " or ", " so ", " и ", " но ")),
                    default=-1)
            if m > 0:
                return m
            if n > limit + 40:
                m = buf.rfind(" ", MIN_CUT, limit)
                if m > 0:
                    return m
        return None


def _skip(buf: str, i: int) -> int:
    return i


def _has_words(s: str) -> bool:
    return bool(re.search(r"\w", s))


def _starts_sentence(ch: str) -> bool:
    return ch.isupper() or ch.isdigit() or ch in "\"'«“(—-"


def _is_abbreviation(before: str) -> bool:
    """Is the word right before a period an abbreviation (or a single initial like "J")?"""
    m = re.search(r"(\S+)$", before)
    if not m:
        return False
    word = m.group(1).lower().lstrip("\"'«“(")
    if len(word) == 1 and word.isalpha():
        return True  # initials: "J. R. R. Tolkien", "А. С. Пушкин"
    # the two-word Russian forms: "т. е.", "т. д."
    m2 = re.search(r"(\S+)\s+(\S+)$", before)
    two = (m2.group(1) + "." + m2.group(2)).lower().replace("..", ".") if m2 else ""
    return word in ABBREVIATIONS or word.rstrip(".") in ABBREVIATIONS or two.rstrip(".") in ABBREVIATIONS
