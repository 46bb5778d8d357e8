"""The visitor's question, checked before the LLM sees it. A child may be asking.

The persona prompt asks for child-safe answers, but a model can be talked out of anything it was
only asked (OWASP LLM01: prompt injection), so what must not be discussed is decided here, outside
the model, by plain patterns over the question: in English and in Russian, Russian word forms
matched by their stems. A question that matches gets a fixed, kind answer in the visitor's language
that points to a grown-up or the museum's staff, and the LLM is not asked at all.

Why patterns and not a classifier: no maintained multilingual safety classifier ships in the
packages this box installs from, the categories are narrow and known (self-harm, drugs and pills,
weapons and hurting people, sexual content, personal data and meeting requests, bullying, attempts
to take the persona over), and a pattern's decision can be read and tested. ``avatar-kiosk bench
--safety`` measures it on a red-team set and on ordinary museum questions (over-refusal).
The reply is checked again sentence by sentence (:mod:`.safety`), and never echoes the prompt.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

# Each category: patterns over the lower-cased question (ё as е). Stems end in \w* for Russian forms.
PATTERNS: dict[str, tuple[str, ...]] = {
    "self_harm": (
        r"\b(kill|hurt|cut|harm)\w* (myself|my self|me)\b", r"\bsuicid\w*", r"\bwant(ed)? to die\b",
        r"\bend (it all|my life)\b", r"\bdon'?t want to (live|be alive)\b", r"\bjump off\b",
        r"\bубить себя\b", r"\bубью себя\b", r"\bпокончить\b", r"\bсамоубий\w*", r"\bне хочу жить\b",
        r"\b(хочу|хочется|хотел\w*) умереть\b", r"\bпорежу себя\b", r"\bпричинить себе\b", r"\bпрыгнуть с крыши\b",
    ),
    "danger": (
        r"\b(pills?|drugs?|cocaine|heroin|weed|marijuana|vape|vaping|alcohol|vodka|beer|cigarettes?|"
        r"sleeping tablets|overdose)\b",
        r"\bhow (do|can|to|would) (i |you |we )?(make|build|get|buy|use|hide) (a |an |some )?"
        r"(bomb|gun|weapon|poison|explosive|knife)\w*",
        r"\b(kill|hurt|poison|stab|shoot|beat up) (someone|somebody|people|my|a person|him|her|them)\b",
        r"\bwhere can i (get|buy) (a )?(gun|knife|weapon)\w*",
        r"\bтаблет\w*", r"\bнаркот\w*", r"\bкокаин\w*", r"\bгероин\w*", r"\bвейп\w*",
        r"\bалкогол\w*", r"\bводк\w*", r"\bпив\w*", r"\bсигарет\w*", r"\bкурить\b", r"\bпередоз\w*",
        r"\bкак (сделать|сделат|достать|купить|спрятать|собрать) (бомб|оружи|яд|взрывчат|нож|пистолет)\w*",
        r"\b(убить|отравить|зарезать|застрелить|избить|поранить) (кого|человек|людей|его|ее|их|друга|брата|сестру|маму|папу)\w*",
        r"\bгде (достать|купить) (оружие|пистолет|нож)\w*",
    ),
    "sexual": (
        r"\bsex\w*", r"\bporn\w*", r"\bnaked\b", r"\bnude\w*", r"\bkiss me\b", r"\bboobs?\b", r"\bpenis\b",
        r"\bvagina\b", r"\bhorny\b", r"\bmake love\b",
        r"\bсекс\w*", r"\bпорн\w*", r"\bгол(ая|ый|ые|ую|ой|ых|ого)\b", r"\bраздень\w*", r"\bпоцелуй меня\b",
        r"\bсиськ\w*", r"\bэроти\w*",
    ),
    "personal": (
        r"\b(my|our) (home )?address\b", r"\bcome (to|over to) my (house|home|place)\b",
        r"\b(can|could|will|shall) (we|i|you) meet\b", r"\bmeet (me|up)\b", r"\bvisit me\b",
        r"\b(parents|mum|mom|dad|mother|father) (are|is) (away|not home|out)\b", r"\b(home|house) alone\b",
        r"\b(alone|by myself) (at|in the) (home|house)\b", r"\bgive me your (number|phone)\b",
        r"\b(my|your) phone number\b", r"\bcall me (at|on|tonight|later|back)\b", r"\b(my|your) (password|pin code)\b",
        r"\bwhat('?s| is) your (address|phone)\b", r"\bi live (at|on|in) \w+ (street|road|avenue)\b",
        r"\bмой адрес\b", r"\bнаш адрес\b", r"\bкакой у тебя адрес\b",
        r"\bприходи ко мне\b", r"\bприезжай ко мне\b", r"\bвстрет\w* (со мной|с тобой|нами)\b", r"\bдавай встрет\w*",
        r"\b(родител\w*|мам\w*|пап\w*) (нет дома|уехал\w*|ушл\w*)\b", r"\bодин дома\b", r"\bодна дома\b",
        r"\bномер телефон\w*", r"\b(дай|скажи|напиши) (мне )?(свой|твой) (телефон|номер|адрес)\w*", r"\bпозвони мне\b", r"\bмой пароль\b", r"\bпин-?код\w*",
    ),
    "bullying": (
        r"\b(bully|bullies|bullied|bullying)\b",
        r"\b(they|he|she|kids|boys|girls|classmates|someone)\b(?: \w+){0,3} (hit|hits|beat|beats|push|pushes|kick|kicks|"
        r"tease|teases|laugh at|laughs at) me\b", r"\bnobody likes me\b", r"\beveryone hates me\b",
        r"\bобижа\w* (меня)?\b", r"\b(меня )?(бьют|дразнят|травят|толкают|обзывают)\b", r"\bтравл\w*",
        r"\bменя никто не любит\b", r"\bвсе меня ненавидят\b",
    ),
    "hijack": (
        r"\bignore (all |your |the |any )?(previous |earlier |above |prior )?(instructions|rules|prompt)\w*",
        r"\bforget (all |your |the )?(previous |earlier )?(instructions|rules|prompt)\w*",
        r"\b(system|initial|hidden|secret) prompt\b", r"\byour (instructions|rules|prompt)\b",
        r"\byou are (now|no longer)\b", r"\bfrom now on you\b", r"\bpretend (to be|you are|you're)\b",
        r"\bact as (if you|my|an? (evil|bad|different|new|real))\b", r"\bbehave as\b", r"\brole-?play\b", r"\bjailbreak\w*", r"\b(you are|you're|act as|be) dan\b", r"\bdo anything now\b",
        r"\bdeveloper mode\b", r"\bno (rules|limits|restrictions|filters)\b", r"\bunfiltered\b",
        r"\bsay (a )?(bad|swear|rude) words?\b", r"\bswear\w*\b", r"\brepeat (after me|the words above)\b",
        r"\bигнорируй\w*", r"\bзабудь,? (что|кто) ты\b", r"\bзабудь (все |свои |все свои )?(инструкци|правил|указани)\w*",
        r"\b(системн|скрыт|секретн)\w* (промпт|инструкци|запрос)\w*", r"\bтвои (инструкции|правила)\b",
        r"\bты теперь\b", r"\bс этого момента ты\b", r"\bпритворись\b", r"\bпредставь, что ты\b",
        r"\bпредставь что ты\b", r"\bролев\w* игр\w*", r"\bведи себя как\b", r"\bбез (правил|ограничений|цензуры|фильтров)\b",
        r"\bрежим разработчика\b", r"\bругайся\b", r"\bскажи (плохое|матерное|грубое) слово\b", r"\bматерись\b",
        r"\bповтори за мной\b",
    ),
}
_COMPILED = {cat: re.compile("|".join(f"(?:{p})" for p in pats), re.IGNORECASE) for cat, pats in PATTERNS.items()}
# Checked in this order: the most serious first (a child speaking of self-harm and of drugs is answered
# about the self-harm).
ORDER = ("self_harm", "danger", "sexual", "personal", "bullying", "hijack")

ANSWERS = {
    "self_harm": {
        "en": "I'm so sorry you feel this way. Please tell a grown-up you trust, or the museum staff, right now. "
              "They will help you.",
        "ru": "Мне очень жаль, что тебе так тяжело. Пожалуйста, прямо сейчас скажи об этом взрослому, которому "
              "доверяешь, или сотруднику музея. Они помогут.",
    },
    "danger": {
        "en": "That's not something I can help with. Please ask a grown-up or the museum staff about it. "
              "Shall we talk about space?",
        "ru": "С этим я помочь не могу. Пожалуйста, спроси об этом взрослых или сотрудников музея. "
              "Давай лучше поговорим о космосе?",
    },
    "sexual": {
        "en": "That's not something I talk about. Shall we talk about the planets instead?",
        "ru": "Об этом я не говорю. Давай лучше поговорим о планетах?",
    },
    "personal": {
        "en": "Please never share your address or phone number, and never arrange to meet anyone you talk to "
              "on a screen. If you are on your own or worried, tell the museum staff.",
        "ru": "Пожалуйста, никогда не называй свой адрес и телефон и не договаривайся о встрече с тем, с кем "
              "говоришь через экран. Если ты один или тебе тревожно, скажи сотрудникам музея.",
    },
    "bullying": {
        "en": "I'm sorry that's happening to you. You deserve help: please tell a grown-up you trust, a parent, "
              "a teacher or the museum staff.",
        "ru": "Мне жаль, что с тобой так обращаются. Ты заслуживаешь помощи: пожалуйста, расскажи взрослому, "
              "которому доверяешь, родителям, учителю или сотрудникам музея.",
    },
    "hijack": {
        "en": "I'm {name}, the museum's guide, and that's who I'll stay. What would you like to know about space?",
        "ru": "Я {name}, экскурсовод музея, и останусь собой. Что ты хочешь узнать о космосе?",
    },
}


@dataclass(frozen=True)
class Verdict:
    category: str   # "" = the question may go to the LLM
    answer: str     # the fixed answer to give instead (empty when the category is "")


def check_question(text: str, language: str, name: str = "Anna") -> Verdict:
    """Whether the LLM may answer ``text``; if not, the kiosk's fixed answer in ``language``."""
    t = " ".join(text.lower().replace("ё", "е").replace("’", "'").split())
    for cat in ORDER:
        if _COMPILED[cat].search(t):
            lang = "ru" if language == "ru" else "en"
            return Verdict(cat, ANSWERS[cat][lang].format(name=name))
    return Verdict("", "")


def echoes(sentence: str, prompt: str, n: int = 7) -> bool:
    """Whether ``sentence`` repeats ``n`` words in a row of ``prompt`` (the system prompt leaking)."""
    grams = _grams(prompt, n)
    said = re.findall(r"\w+", sentence.lower())
    return any(" ".join(said[i:i + n]) in grams for i in range(len(said) - n + 1))


@functools.lru_cache(maxsize=8)
def _grams(prompt: str, n: int) -> frozenset[str]:
    """The prompt's n-word runs: computed once per prompt, not once per reply sentence."""
    words = re.findall(r"\w+", prompt.lower())
    return frozenset(" ".join(words[i:i + n]) for i in range(len(words) - n + 1))
