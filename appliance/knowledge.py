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
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import snowballstemmer

MAX_BYTES = 256 * 1024    # about 40,000 words: far more than a prompt can use, enough for any museum
MAX_PASSAGE_CHARS = 600
TOP_K = 3
# A language's passages live in the persona prefix up to this size (about 450 tokens: evaluated once
# at start-up, ~8 s on 2 cores, then free on every turn — against ~0.5 s a turn for two facts in the
# question); a bigger sheet's other passages are looked up per question.
STANDING_CHARS = 1500
KEY_WORDS = 24  # the sheet's names given to speech recognition as hints (whisper's prompt is short)
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

    @property
    def language(self) -> str:
        """``ru`` when most of its letters are Cyrillic, else ``en``."""
        letters = [c for c in self.text.lower() if c.isalpha()]
        return "ru" if sum(1 for c in letters if _CYRILLIC.match(c)) * 2 > len(letters) else "en"


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

    def in_language(self, language: str) -> list[Passage]:
        """The passages written in ``language``; all of them when the sheet has none in it (the model
        answers in the visitor's language from facts in the other)."""
        return [p for p in self.passages if p.language == language] or list(self.passages)

    def standing(self, language: str, budget: int = STANDING_CHARS) -> list[Passage]:
        """The passages that live in ``language``'s cached persona prefix: the sheet's own order (the
        installer puts what matters first) while they fit ``budget`` characters."""
        out, used = [], 0
        for p in self.in_language(language):
            used += len(p.as_fact()) + 3
            if used > budget:
                break
            out.append(p)
        return out

    def key_words(self, language: str, limit: int = KEY_WORDS) -> list[str]:
        """The sheet's own names in ``language`` — quoted names («Восток») and capitalised words
        inside sentences (Гагарин, Байконуром, Аполлон-17) — as hints for speech recognition.
        Measured: 12 Russian questions about the demo sheet, whisper base with the persona's name
        as hint / with these too: RHVoice Elena 24.5 / 15.1 % WER, Anna 28.3 / 15.1 %, Aleksandr
        20.8 / 18.9 %; on the 40 unrelated recorded prompts of ``bench --wer``, the kiosk path
        18.9 / 18.6 %."""
        seen: dict[str, str] = {}
        for p in self.passages:
            if p.language != language:
                continue
            quoted = re.findall(r"«([^»]{2,40})»|\u201c([^\u201d]{2,40})\u201d", p.text)
            inside = re.sub(r"(^|[.!?…]\s+)\W*\w+", " ", p.text)  # sentence-initial words are capitalised anyway
            for word in [a or b for a, b in quoted] + re.findall(r"\b[^\W\d_][^\W_]*(?:-\d+)?", inside):
                if word[:1].isupper() and len(word) > 2:
                    seen.setdefault(word.lower(), word)
        return list(seen.values())[:limit]

    def lookup(self, question: str, k: int = TOP_K, *, language: str | None = None,
               exclude: Collection[Passage] = ()) -> list[Passage]:
        """The passages that bear on ``question``, best first (none when nothing matches); only
        those in ``language`` (see :meth:`in_language`), none of ``exclude`` (already in the prompt)."""
        q = set(terms(question))
        allowed = set(map(id, self.in_language(language))) if language else None
        skip = set(map(id, exclude))
        scored = []
        for i, tf in enumerate(self._tf):
            p = self.passages[i]
            if (allowed is not None and id(p) not in allowed) or id(p) in skip:
                continue
            score = 0.0
            for t in q & tf.keys():
                f = tf[t]
                score += self._idf[t] * f * (K1 + 1) / (f + K1 * (1 - B + B * self._len[i] / (self._avg or 1)))
            if score > 0:
                scored.append((score, i))
        return [self.passages[i] for _s, i in sorted(scored, key=lambda x: (-x[0], x[1]))[:k]]
