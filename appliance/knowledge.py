"""What the kiosk knows: the persona's fact sheet (``knowledge.md`` in the bundle), and the few passages
of it that bear on a question.

The sheet is UTF-8 Markdown in Russian and/or English: headings optional, one fact or topic per
line, paragraph or list item. It is cut into passages (a paragraph, or a list item, with its heading), each
indexed by the stems of its words — Snowball's Russian stemmer for Cyrillic words, so «Юпитер»,
«Юпитера» and «Юпитеру» meet, and the English one for Latin words. A question is ranked against the
passages with BM25; the best few go into the prompt as facts to answer from (:mod:`.session`). Small
on purpose: a museum's sheet is a few hundred passages at most, ranked in well under a millisecond.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import snowballstemmer

MAX_BYTES = 256 * 1024    # about 40,000 words: far more than a prompt can use, enough for any museum
MAX_PASSAGE_CHARS = 600
TOP_K = 3
K1, B = 1.2, 0.75         # BM25's usual constants

_WORD = re.compile(r"[^\W\d_]+|\d+", re.UNICODE)
_CYRILLIC = re.compile(r"[а-яё]")
_STOP = frozenset({
    "a", "an", "the", "is", "are", "was", "were", "be", "been", "of", "to", "in", "on", "at", "for",
    "and", "or", "but", "with", "what", "which", "who", "whom", "where", "when", "why", "how", "do",
    "does", "did", "can", "could", "will", "would", "you", "your", "i", "me", "my", "we", "our", "it",
    "its", "this", "that", "these", "those", "there", "here", "about", "from", "by", "as", "tell",
    "please",
    "и", "в", "во", "не", "что", "он", "на", "я", "с", "со", "как", "а", "то", "все", "она", "так",
    "его", "но", "да", "ты", "к", "у", "же", "вы", "за", "бы", "по", "только", "ее", "мне", "было",
    "вот", "от", "меня", "еще", "нет", "о", "из", "ему", "теперь", "когда", "даже", "ну", "вдруг", "ли",
    "если", "уже", "или", "ни", "быть", "был", "него", "до", "вас", "нибудь", "опять", "уж", "вам",
    "ведь", "там", "потом", "себя", "ничего", "ей", "может", "они", "тут", "где", "есть", "надо", "ней",
    "для", "мы", "тебя", "их", "чем", "была", "сам", "чтоб", "без", "будто", "чего", "раз", "тоже",
    "себе", "под", "будет", "ж", "тогда", "кто", "этот", "того", "потому", "этого", "какой", "совсем",
    "ним", "здесь", "этом", "один", "почти", "мой", "тем", "чтобы", "нее", "сейчас", "были", "куда",
    "зачем", "всех", "никогда", "можно", "при", "наконец", "два", "об", "другой", "хоть", "после",
    "над", "больше", "тот", "через", "эти", "нас", "про", "всего", "них", "какая", "много", "разве",
    "три", "эту", "моя", "впрочем", "хорошо", "свою", "этой", "перед", "иногда", "лучше", "чуть", "том",
    "нельзя", "такой", "им", "более", "всегда", "конечно", "всю", "между", "скажите", "расскажите",
    "пожалуйста",
})


class KnowledgeError(ValueError):
    """A fact sheet the kiosk cannot use; the message says what to fix."""


@dataclass(frozen=True)
class Passage:
    heading: str
    text: str

    def as_fact(self) -> str:
        return f"{self.heading}: {self.text}" if self.heading else self.text


_STEMMERS = {"ru": snowballstemmer.stemmer("russian"), "en": snowballstemmer.stemmer("english")}


def terms(text: str) -> list[str]:
    """The stems a passage or a question is matched on (stop words left out)."""
    out = []
    for w in _WORD.findall(text.lower().replace("ё", "е")):
        cyrillic = bool(_CYRILLIC.search(w))
        if not cyrillic:  # café = cafe; never on Cyrillic, where й would lose its breve
            w = "".join(c for c in unicodedata.normalize("NFKD", w) if not unicodedata.combining(c))
        if w in _STOP or (len(w) < 2 and not w.isdigit()):
            continue
        out.append(_STEMMERS["ru" if cyrillic else "en"].stemWord(w))
    return out


def check(raw: bytes, name: str = "knowledge.md") -> str:
    """The sheet's text, or :class:`KnowledgeError` with one line an installer can act on."""
    if len(raw) > MAX_BYTES:
        raise KnowledgeError(f"{name} is {len(raw) // 1024} KB — the kiosk reads at most {MAX_BYTES // 1024} KB "
                             "of facts; keep what visitors ask about")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise KnowledgeError(f"{name} is not UTF-8 text — save it again as UTF-8 (in most editors: "
                             "Save as… → Encoding: UTF-8)") from None
    if "\x00" in text:
        raise KnowledgeError(f"{name} is not a text file — write the facts as plain text (Markdown)")
    if not parse(text):
        raise KnowledgeError(f"{name} has no facts in it — write one fact or topic per paragraph, in Russian "
                             "or English")
    return text


def parse(text: str) -> list[Passage]:
    """Lines, list items and paragraphs, each with the heading above it; long ones are cut at
    sentences. A line is a passage of its own: fact sheets are written a fact a line."""
    passages: list[Passage] = []
    heading = ""
    block: list[str] = []

    def close() -> None:
        body = " ".join(s.strip() for s in block).strip()
        block.clear()
        if body and _WORD.search(body):
            passages.extend(Passage(heading, part) for part in _split(body))

    for line in text.replace("\r\n", "\n").split("\n"):
        stripped = line.strip()
        if stripped.startswith("#"):
            close()
            heading = stripped.lstrip("#").strip()
        elif not stripped:
            close()
        elif re.match(r"^([-*+]|\d+[.)])\s+", stripped):
            close()
            block.append(re.sub(r"^([-*+]|\d+[.)])\s+", "", stripped))
        else:
            close()
            block.append(stripped)
    close()
    return passages


def _split(body: str) -> list[str]:
    if len(body) <= MAX_PASSAGE_CHARS:
        return [body]
    parts, cur = [], ""
    for sentence in re.split(r"(?<=[.!?])\s+", body):
        if cur and len(cur) + len(sentence) + 1 > MAX_PASSAGE_CHARS:
            parts.append(cur)
            cur = ""
        cur = f"{cur} {sentence}".strip()
    return [*parts, cur] if cur else parts


class Knowledge:
    def __init__(self, passages: list[Passage]) -> None:
        self.passages = passages
        self._tf = [Counter(terms(p.as_fact())) for p in passages]
        self._len = [sum(tf.values()) for tf in self._tf]
        self._avg = (sum(self._len) / len(self._len)) if self._len else 0.0
        df = Counter(t for tf in self._tf for t in tf)
        n = len(passages)
        self._idf = {t: math.log(1 + (n - d + 0.5) / (d + 0.5)) for t, d in df.items()}

    @classmethod
    def load(cls, path: Path | None) -> Knowledge | None:
        """The sheet at ``path``; None when there is none (a persona need not have one)."""
        if path is None or not path.is_file():
            return None
        return cls.from_bytes(path.read_bytes(), path.name)

    @classmethod
    def from_bytes(cls, raw: bytes, name: str = "knowledge.md") -> Knowledge:
        """The sheet in ``raw``, or :class:`KnowledgeError` with one line an installer can act on."""
        return cls(parse(check(raw, name)))

    def lookup(self, question: str, k: int = TOP_K) -> list[Passage]:
        """The passages that bear on ``question``, best first (none when nothing matches)."""
        q = set(terms(question))
        scored = []
        for i, tf in enumerate(self._tf):
            score = 0.0
            for t in q & tf.keys():
                f = tf[t]
                score += self._idf[t] * f * (K1 + 1) / (f + K1 * (1 - B + B * self._len[i] / (self._avg or 1)))
            if score > 0:
                scored.append((score, i))
        return [self.passages[i] for _s, i in sorted(scored, key=lambda x: (-x[0], x[1]))[:k]]
