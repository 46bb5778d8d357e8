"""The on-screen keyboard: a visitor who cannot or would rather not speak writes instead.

Pure geometry and state, no pygame: :func:`keyboard_layout` says where each key is for a screen
size and a layout ("ru" ЙЦУКЕН, "en" QWERTY), so the renderer draws it and a test knows where to
tap. :class:`TouchKeyboard` is what was typed and whether the keyboard is open; the renderer feeds
it taps and a physical keyboard's text, and hands on what was sent.

Where it sits: anchored at the bottom of the screen, only while open and only while the kiosk
waits for a question (idle, listening). Sending folds it away, so the face is never covered while
the kiosk answers; a small "Write · Написать" button in the caption band opens it again.
"""

from __future__ import annotations

from dataclasses import dataclass

Rect = tuple[int, int, int, int]  # x, y, w, h

ROWS = {
    "ru": ["йцукенгшщзхъ", "фывапролджэ", "ячсмитьбюё"],
    "en": ["qwertyuiop", "asdfghjkl", "zxcvbnm"],
}
LAYOUT_NAMES = {"ru": "РУС", "en": "ENG"}
UNITS = 12          # the widest row (ЙЦУКЕН) is 12 keys: every layout uses the same key size
MAX_TEXT = 300      # a question, not an essay (the LLM's prompt stays small)

# Actions besides typing a character.
SWITCH, BACKSPACE, SPACE, SEND, HIDE, OPEN = "switch", "backspace", "space", "send", "hide", "open"


@dataclass(frozen=True)
class Key:
    label: str
    action: str       # a character to type, or one of the actions above
    rect: Rect

    @property
    def center(self) -> tuple[int, int]:
        x, y, w, h = self.rect
        return x + w // 2, y + h // 2


@dataclass(frozen=True)
class KeyboardLayout:
    panel: Rect        # the whole keyboard (drawn over the bottom of the screen while open)
    field: Rect        # where the typed text shows
    keys: tuple[Key, ...]

    def key(self, action: str) -> Key:
        return next(k for k in self.keys if k.action == action)


def open_button(size: tuple[int, int]) -> Key:
    """The button that opens the keyboard: the bottom-right corner of the caption band."""
    w, h = size
    bw, bh = max(240, int(min(w, h) * 0.4)), max(48, min(h // 16, w // 12))
    pad = max(8, min(w, h) // 60)
    return Key("⌨  Write · Написать", OPEN, (w - bw - pad, h - bh - pad, bw, bh))


def keyboard_layout(size: tuple[int, int], layout: str) -> KeyboardLayout:
    """Where every key of ``layout`` is on a ``size`` screen (portrait or landscape)."""
    if layout not in ROWS:
        raise ValueError(f"keyboard layout {layout!r}: one of {', '.join(ROWS)}")
    w, h = size
    # Keys a finger hits: at least ~7 % of the screen's height, never wider than a square-ish key
    # (a landscape screen would stretch them across 1920 px: the keyboard is centred instead).
    width = min(w, int(h * 1.35))
    pad = max(6, width // 90)
    unit = (width - 2 * pad) // UNITS
    key_h = max(40, min(int(unit * 1.1), int(h * 0.075)))
    gap = max(3, unit // 14)
    field_h = key_h
    rows_h = 4 * key_h
    panel_h = pad + field_h + pad + rows_h + pad
    x0 = (w - width) // 2
    panel = (x0, h - panel_h, width, panel_h)
    field = (x0 + pad, h - panel_h + pad, width - 2 * pad, field_h)
    keys: list[Key] = []
    y = field[1] + field_h + pad
    rows = ROWS[layout]

    def row(items: list[tuple[str, str, float]], y: int) -> None:
        total = sum(u for _, _, u in items)
        x = x0 + pad + int((UNITS - total) * unit / 2)
        for label, action, u in items:
            kw = int(u * unit)
            keys.append(Key(label, action, (x + gap // 2, y + gap // 2, kw - gap, key_h - gap)))
            x += kw

    row([(c.upper(), c, 1) for c in rows[0]], y)
    row([(c.upper(), c, 1) for c in rows[1]], y + key_h)
    row([(c.upper(), c, 1) for c in rows[2]] + [("⌫", BACKSPACE, 1.5)], y + 2 * key_h)
    other = "en" if layout == "ru" else "ru"
    row([(f"⇄ {LAYOUT_NAMES[other]}", SWITCH, 2), ("✕", HIDE, 1), (",", ",", 1), ("", SPACE, 4),
         ("?", "?", 1), ("Send ➤" if layout == "en" else "Спросить ➤", SEND, 3)], y + 3 * key_h)
    return KeyboardLayout(panel, field, tuple(keys))


def hit(rect: Rect, pos: tuple[int, int]) -> bool:
    x, y, w, h = rect
    return x <= pos[0] < x + w and y <= pos[1] < y + h


class TouchKeyboard:
    """What the visitor has typed, the layout shown, and whether the keyboard is open.

    ``version`` changes with anything that changes the picture (the renderer redraws the cached
    keyboard only then)."""

    def __init__(self, layout: str = "ru") -> None:
        self.layout = layout if layout in ROWS else "en"
        self.text = ""
        self.is_open = False
        self.version = 0
        self._layouts: dict[tuple, KeyboardLayout] = {}

    def geometry(self, size: tuple[int, int]) -> KeyboardLayout:
        key = (size, self.layout)
        if key not in self._layouts:
            self._layouts[key] = keyboard_layout(size, self.layout)
        return self._layouts[key]

    def _changed(self) -> None:
        self.version += 1

    def open(self) -> None:
        if not self.is_open:
            self.is_open = True
            self._changed()

    def close(self) -> None:
        if self.is_open:
            self.is_open = False
            self._changed()

    def type(self, text: str) -> None:
        """Characters typed (a key tapped, or a physical keyboard's text)."""
        text = "".join(c for c in text if c.isprintable())
        if text and len(self.text) < MAX_TEXT:
            self.text = (self.text + text)[:MAX_TEXT]
            self.open()
            self._changed()

    def backspace(self) -> None:
        if self.text:
            self.text = self.text[:-1]
            self._changed()

    def send(self) -> str | None:
        """The question to answer (None if nothing was typed); the keyboard folds away."""
        text = " ".join(self.text.split())
        if not text:
            return None
        self.text = ""
        self.close()
        self._changed()
        return text

    def tap(self, pos: tuple[int, int], size: tuple[int, int]) -> str | None:
        """A tap at ``pos``: returns the question when the tap was on Send."""
        if not self.is_open:
            if hit(open_button(size).rect, pos):
                self.open()
            return None
        for k in self.geometry(size).keys:
            if hit(k.rect, pos):
                return self.press(k.action)
        return None

    def press(self, action: str) -> str | None:
        if action == SEND:
            return self.send()
        if action == SWITCH:
            self.layout = "en" if self.layout == "ru" else "ru"
            self._changed()
        elif action == BACKSPACE:
            self.backspace()
        elif action == HIDE:
            self.close()
        elif action == SPACE:
            self.type(" ")
        else:
            self.type(action)
        return None
