"""The kiosk's screen (pygame): the face scaled to the display, captions and a cue per state.

Public API::

    Renderer(display: DisplayConfig, *, headless: bool = False, fps: int = 25)
        .draw(model: ScreenModel, face: np.ndarray | None, t: float | None = None) -> pygame.Surface
              # face: HxWx3 uint8 RGB (None in states without a face); t: audio-clock seconds for
              # the animated cues (default: frames drawn so far / fps)
        .present() -> None        # show the drawn frame (display flip)
        .pump() -> bool           # handle window events; False when asked to quit (window close, Esc)
        .take_typed() -> list[str]  # questions sent from the keyboard since the last call
        .keyboard                 # the TouchKeyboard (keyboard.py): its key positions for a test's taps
        .rgb() -> np.ndarray      # the drawn frame as (H, W, 3) uint8 RGB (for the Recorder)
        .save_png(path) -> None
        .size -> (width, height)
        .close() -> None

pygame must own the main thread: construct, draw and present from the main thread only (the
constructor refuses other threads). ``display.fullscreen`` takes the whole screen and hides the
cursor (the box); otherwise a ``width`` x ``height`` window (a dev checkout). ``headless=True`` or
``display.sdl_driver = "dummy"`` renders offscreen. The font is ``display.font`` or DejaVu Sans
(Cyrillic). Layout, chosen from the screen's shape: a portrait screen (1080×1920) shows the face
across its whole width and the top four fifths of its height, cropped at the sides rather than
shrunk; a landscape screen (1920×1080) shows it the full height, centred. Captions and the state
cues sit in a band along the bottom, over a soft gradient that lets the shoulders show through and
never reaches the eyes or the mouth. The face image is scaled once per frame from the animator's
output (the photo was upscaled once, at provisioning).

States (``ScreenModel.state``): idle (face alive, a hint to say hello), listening (a green ring, a
"Listening" cue and a live level meter), thinking (animated dots; the visitor's words shown),
speaking (the visitor's words small and grey, the reply's caption large), provisioning (a progress
bar with the step's name), error (a big plain message and what to do, no face). A ``notice`` (a
refused USB stick's reason) is a band at the bottom of the caption band in any state but error.

Writing instead of speaking (``display.keyboard``): idle or listening, a "Write · Написать" button
sits in the caption band's corner; tapped (a finger or a mouse), the on-screen keyboard opens over
the bottom of the screen, and a physical keyboard types into it too (Enter sends, Esc folds it).
Sending folds it away: the kiosk answers with the face uncovered. The keyboard is drawn onto a
cached surface, redrawn only when what was typed or the layout changes.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from collections import OrderedDict
from pathlib import Path

import cv2
import numpy as np

from ..config import DisplayConfig
from ..messages import KioskState, ScreenModel
from .fonts import bold_path, font_path
from .keyboard import TouchKeyboard, open_button

log = logging.getLogger(__name__)

BG = (14, 16, 22)
PANEL = (24, 27, 36)
TEXT = (240, 240, 236)
DIM = (150, 156, 170)
ACCENT = (64, 200, 120)
THINK = (110, 150, 255)
WARN = (255, 184, 64)
ERROR_BG = (60, 16, 20)

DEFAULT_HINT = "Say hello!  ·  Скажите «привет»!"


class Renderer:
    def __init__(self, display: DisplayConfig, *, headless: bool = False, fps: int = 25,
                 keyboard_layout: str = "en") -> None:
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("the Renderer (pygame) must be created on the main thread")
        if headless:
            os.environ["SDL_VIDEODRIVER"] = "dummy"
        elif display.sdl_driver:
            os.environ["SDL_VIDEODRIVER"] = display.sdl_driver
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        import pygame

        self.pg = pygame
        try:
            self.screen = self._open(display)
        except pygame.error as e:
            if os.environ.get("SDL_VIDEODRIVER") == "dummy":
                raise
            # no display (unplugged monitor, SSH session): keep running offscreen, say so
            log.warning("no display (%s); rendering offscreen with SDL's dummy driver", e)
            pygame.display.quit()
            os.environ["SDL_VIDEODRIVER"] = "dummy"
            self.screen = self._open(display)
        pygame.font.init()
        pygame.mouse.set_visible(False)
        self.fps = fps
        self.size = self.screen.get_size()
        self._frames = 0
        path = font_path(display.font)
        if path is None:
            log.warning("no TTF font with Cyrillic found (install fonts-dejavu-core); Russian captions will not show")
        self._font_file = str(path) if path else None
        bold = bold_path(path)
        self._bold_file = str(bold) if bold else None
        self._fonts: dict[tuple[bool, int], object] = {}
        self._text_cache: OrderedDict = OrderedDict()
        self._layout()
        # Writing instead of speaking: the state (what was typed) and its drawing, cached.
        self.keyboard = TouchKeyboard(keyboard_layout) if display.keyboard else None
        self._typed: list[str] = []
        self._state = KioskState.IDLE
        self._kbd_cache: tuple | None = None
        self._button_cache = None

    def _open(self, display: DisplayConfig):
        pg = self.pg
        pg.display.init()
        if display.fullscreen and pg.display.get_driver() != "dummy":
            return pg.display.set_mode((0, 0), pg.FULLSCREEN)
        screen = pg.display.set_mode((display.width, display.height))
        pg.display.set_caption("avatar-kiosk")
        return screen

    # ------------------------------------------------------------------ layout and text

    def _layout(self) -> None:
        w, h = self.size
        pg = self.pg
        # The rig frames every face alike: the mouth sits at ~62 % of the face image's height, so
        # the band and its fade stop short of it (portrait: 50 % of the screen; landscape: 62 %).
        if h >= w * 1.15:   # portrait: the face across the width, the top four fifths
            self.face_rect = pg.Rect(0, 0, w, int(h * 0.8))
            band, fade = int(h * 0.28), int(h * 0.14)
        else:               # landscape: the face the full height, centred
            side = min(w, h)
            self.face_rect = pg.Rect((w - side) // 2, 0, side, h)
            band, fade = int(h * 0.22), int(h * 0.08)
        self.panel = pg.Rect(0, h - band, w, band)
        base = max(14, min(w // 22, band // 8))
        self.fs_caption = base
        self.fs_small = max(12, int(base * 0.72))
        self.fs_big = max(18, int(base * 1.45))
        self.pad = max(8, base // 2)
        # The band's backdrop: a fade from transparent to the background colour above it (blended
        # each frame: only this strip is, the band itself is a plain fill), then the band.
        grad = pg.Surface((w, fade), pg.SRCALPHA)
        grad.fill((*BG, 0))
        pixels = pg.surfarray.pixels_alpha(grad)
        pixels[:, :] = np.linspace(0, 255, fade).astype(np.uint8)[None, :]
        del pixels  # unlock the surface
        self._band = grad
        self._band_at = (0, h - band - fade)
        # What the face does not cover is filled (not the whole screen: 2 MP a frame at 1080×1920).
        f = self.face_rect
        self._uncovered = [rect for rect in (pg.Rect(0, 0, f.x, h), pg.Rect(f.right, 0, w - f.right, h),
                                             pg.Rect(0, f.bottom, w, h - f.bottom)) if rect.w > 0 and rect.h > 0]

    def font(self, size: int, bold: bool = False):
        key = (bold, size)
        if key not in self._fonts:
            f = self._bold_file if bold else self._font_file
            self._fonts[key] = self.pg.font.Font(f, size)
        return self._fonts[key]

    def _text(self, text: str, size: int, color: tuple, bold: bool = False):
        key = (text, size, color, bold)
        surf = self._text_cache.get(key)
        if surf is None:
            surf = self.font(size, bold).render(text, True, color)
            self._text_cache[key] = surf
            if len(self._text_cache) > 256:
                self._text_cache.popitem(last=False)
        else:
            self._text_cache.move_to_end(key)
        return surf

    def wrap(self, text: str, size: int, width: int, bold: bool = False) -> list[str]:
        """Greedy word wrap to ``width`` pixels; words longer than a line are split."""
        font = self.font(size, bold)
        lines: list[str] = []
        for para in text.splitlines() or [""]:
            line = ""
            for word in para.split():
                cand = f"{line} {word}" if line else word
                if font.size(cand)[0] <= width:
                    line = cand
                    continue
                if line:
                    lines.append(line)
                while font.size(word)[0] > width and len(word) > 1:
                    cut = len(word)
                    while cut > 1 and font.size(word[:cut])[0] > width:
                        cut -= 1
                    lines.append(word[:cut])
                    word = word[cut:]
                line = word
            lines.append(line)
        return lines

    def _lines(self, lines: list[str], size: int, color: tuple, x: int, y: int, width: int,
               center: bool = False, bold: bool = False) -> int:
        step = int(size * 1.25)
        for line in lines:
            surf = self._text(line, size, color, bold)
            lx = x + (width - surf.get_width()) // 2 if center else x
            self.screen.blit(surf, (lx, y))
            y += step
        return y

    def _paragraph(self, text: str, size: int, color: tuple, x: int, y: int, width: int, *,
                   max_lines: int = 0, center: bool = False, bold: bool = False, keep: str = "last") -> int:
        lines = self.wrap(text, size, width, bold)
        if max_lines and len(lines) > max_lines:
            lines = lines[-max_lines:] if keep == "last" else lines[:max_lines]
        return self._lines(lines, size, color, x, y, width, center, bold)

    # ------------------------------------------------------------------ drawing

    def _face(self, face: np.ndarray | None, dim: float = 0.0) -> None:
        r = self.face_rect
        if face is None:
            self.pg.draw.rect(self.screen, PANEL, r)
            return
        # Cover the face's rectangle: scale until both sides fill it, crop what overflows at the
        # sides (background) or the bottom (chest) — never the top of the head.
        fh, fw = face.shape[:2]
        scale = max(r.w / fw, r.h / fh)
        cw, ch = min(fw, round(r.w / scale)), min(fh, round(r.h / scale))
        x0 = (fw - cw) // 2
        crop = face[:ch, x0:x0 + cw]
        img = crop if crop.shape[:2] == (r.h, r.w) else cv2.resize(
            crop, (r.w, r.h), interpolation=cv2.INTER_LINEAR if r.w > cw else cv2.INTER_AREA)
        if dim > 0:
            img = (img.astype(np.float32) * (1 - dim)).astype(np.uint8)
        img = np.ascontiguousarray(img)
        surf = self.pg.image.frombuffer(img, (r.w, r.h), "RGB")  # the array's own memory: no copy
        self.screen.blit(surf, r.topleft)

    def draw(self, model: ScreenModel, face: np.ndarray | None, t: float | None = None):
        """Draw one frame of ``model`` (and the face image) and return the screen surface."""
        t = self._frames / self.fps if t is None else t
        self._frames += 1
        state = KioskState(model.state)
        self._state = state
        if state == KioskState.ERROR:
            self.screen.fill(BG)
            self._error(model)
            return self.screen
        for rect in self._uncovered:
            self.screen.fill(BG, rect)
        self._face(face, dim=0.45 if state == KioskState.PROVISIONING else 0.0)
        self.screen.blit(self._band, self._band_at)
        self.screen.fill(BG, self.panel)
        p = self.panel.inflate(-2 * self.pad, -2 * self.pad)
        if model.notice:  # the notice takes the bottom of the panel; the state draws above it
            band = self._notice(model.notice, p)
            p = self.pg.Rect(p.x, p.y, p.w, max(self.fs_caption, band.y - self.pad - p.y))
        if state == KioskState.IDLE:
            self._idle(model, p, t)
        elif state == KioskState.LISTENING:
            self._listening(model, p, t)
        elif state == KioskState.THINKING:
            self._thinking(model, p, t)
        elif state == KioskState.SPEAKING:
            self._speaking(model, p)
        elif state == KioskState.PROVISIONING:
            self._provisioning(model, p)
        if self._writable():
            self._draw_keyboard()
        return self.screen

    # ------------------------------------------------------------------ the keyboard

    def _writable(self) -> bool:
        """The keyboard shows (and takes input) only while the kiosk waits for a question."""
        return self.keyboard is not None and self._state in (KioskState.IDLE, KioskState.LISTENING)

    def _draw_keyboard(self) -> None:
        kb = self.keyboard
        if not kb.is_open:
            if self._button_cache is None:  # (where, surface): the size never changes
                key = open_button(self.size)
                self._button_cache = (key.rect[:2], self._key_surface(key, ACCENT, (10, 40, 24)))
            self.screen.blit(self._button_cache[1], self._button_cache[0])
            return
        geo = kb.geometry(self.size)
        stamp = (kb.version, kb.layout, self.size)
        if self._kbd_cache is None or self._kbd_cache[0] != stamp:
            self._kbd_cache = (stamp, self._keyboard_surface(geo))
        self.screen.blit(self._kbd_cache[1], geo.panel[:2])

    def _key_surface(self, key, fill: tuple, color: tuple):
        pg = self.pg
        x, y, w, h = key.rect
        surf = pg.Surface((w, h), pg.SRCALPHA)
        pg.draw.rect(surf, fill, (0, 0, w, h), border_radius=max(4, h // 6))
        size = max(14, int(h * 0.42))
        while size > 14 and self.font(size, True).size(key.label)[0] > w - h // 3:
            size -= 2  # a long label (the open button's, two languages) fits its key
        label = self._text(key.label, size, color, True)
        surf.blit(label, ((w - label.get_width()) // 2, (h - label.get_height()) // 2))
        return surf

    def _keyboard_surface(self, geo):
        pg = self.pg
        px, py, pw, ph = geo.panel
        surf = pg.Surface((pw, ph))
        surf.fill(PANEL)
        pg.draw.line(surf, ACCENT, (0, 0), (pw, 0), 3)
        fx, fy, fw, fh = geo.field
        field = pg.Rect(fx - px, fy - py, fw, fh)
        pg.draw.rect(surf, (8, 9, 12), field, border_radius=fh // 5)
        pg.draw.rect(surf, ACCENT, field, 2, border_radius=fh // 5)
        size = max(14, int(fh * 0.45))
        kb = self.keyboard
        if kb.text:
            text = kb.text + "▏"
            while len(text) > 1 and self.font(size).size(text)[0] > fw - 2 * self.pad:
                text = text[1:]  # the end of a long question: where the visitor is typing
            shown = self._text(text, size, TEXT)
        else:
            shown = self._text("Type your question…  ·  Напишите вопрос…", size, DIM)
        surf.blit(shown, (field.x + self.pad, field.y + (fh - shown.get_height()) // 2))
        for key in geo.keys:
            special = len(key.action) > 1
            fill = ACCENT if key.action == "send" else ((58, 64, 80) if special else (78, 84, 100))
            ks = self._key_surface(key, fill, (10, 40, 24) if key.action == "send" else TEXT)
            surf.blit(ks, (key.rect[0] - px, key.rect[1] - py))
        return surf

    def take_typed(self) -> list[str]:
        if not self._typed:  # the loop asks every few ms; most times nothing was typed
            return self._typed
        typed, self._typed = self._typed, []
        return typed

    def _tap(self, pos: tuple[int, int]) -> None:
        if not self._writable():
            return  # the kiosk is answering: the keyboard is folded away, taps do nothing
        sent = self.keyboard.tap(pos, self.size)
        if sent:
            self._typed.append(sent)

    def _notice(self, text: str, p):
        """A message that stays until its cause goes (a refused USB stick): a band at the bottom of the
        panel, never over the face. Returns the band's rectangle."""
        lines = self.wrap(text, self.fs_small, p.w - 2 * self.pad)[:6]
        h = len(lines) * int(self.fs_small * 1.25) + 2 * self.pad
        band = self.pg.Rect(p.x, p.bottom - h, p.w, h)
        self.pg.draw.rect(self.screen, ERROR_BG, band, border_radius=self.pad)
        self.pg.draw.rect(self.screen, WARN, band, 2, border_radius=self.pad)
        self._lines(lines, self.fs_small, TEXT, band.x + self.pad, band.y + self.pad, band.w - 2 * self.pad)
        return band

    def _idle(self, m: ScreenModel, p, t: float) -> None:
        pulse = 0.75 + 0.25 * math.sin(2 * math.pi * t / 2.4)
        color = tuple(int(c * pulse) for c in TEXT)
        hint = m.hint or DEFAULT_HINT
        lines = self.wrap(hint.replace("  ·  ", "\n"), self.fs_big, p.w, bold=True)
        height = len(lines) * int(self.fs_big * 1.25)
        self._lines(lines, self.fs_big, color, p.x, p.y + (p.h - height) // 2, p.w, center=True, bold=True)

    def _ring(self, color: tuple, width: int) -> None:
        # Around the face down to the caption band, not through it (it crossed the captions).
        f = self.face_rect
        self.pg.draw.rect(self.screen, color, (f.x, f.y, f.w, min(f.bottom, self.panel.top) - f.y), width)

    def _listening(self, m: ScreenModel, p, t: float) -> None:
        self._ring(ACCENT, max(4, self.pad // 2))
        y = p.y
        r = self.fs_caption // 2
        self.pg.draw.circle(self.screen, ACCENT, (p.x + r, y + int(self.fs_caption * 0.6)), r)
        self.screen.blit(self._text("Listening…  Слушаю…", self.fs_caption, ACCENT, True), (p.x + 3 * r, y))
        y += int(self.fs_caption * 1.8)
        # live level meter: 24 segments
        n, gap = 24, 4
        seg_w = (p.w - gap * (n - 1)) // n
        bar_h = max(12, self.fs_caption)
        lit = round(max(0.0, min(1.0, m.level)) * n)
        for i in range(n):
            c = ACCENT if i < lit else (50, 56, 68)
            if i < lit and i >= n * 0.8:
                c = WARN
            self.pg.draw.rect(self.screen, c, (p.x + i * (seg_w + gap), y, seg_w, bar_h), border_radius=3)
        y += bar_h + self.pad * 2
        if m.heard:
            self._paragraph(m.heard, self.fs_caption, DIM, p.x, y, p.w, max_lines=3)

    def _thinking(self, m: ScreenModel, p, t: float) -> None:
        self._ring(THINK, max(3, self.pad // 3))
        y = self._heard(m, p, p.y)
        dots = 1 + int(t * 3) % 3
        label = "Thinking" + "." * dots
        self.screen.blit(self._text(label, self.fs_caption, THINK, True), (p.x, y + self.pad))
        r = self.fs_caption // 3
        cx = p.x + p.w // 2
        cy = y + self.pad * 3 + self.fs_caption * 2
        for i in range(3):
            phase = (t * 2.5 - i * 0.25) % 1.0
            rr = int(r * (0.6 + 0.6 * math.sin(math.pi * phase)))
            self.pg.draw.circle(self.screen, THINK, (cx + (i - 1) * r * 4, cy), max(2, rr))

    def _heard(self, m: ScreenModel, p, y: int) -> int:
        if not m.heard:
            return y
        y = self._paragraph("You: " + m.heard, self.fs_small, DIM, p.x, y, p.w, max_lines=2)
        return y + self.pad // 2

    def _speaking(self, m: ScreenModel, p) -> None:
        y = self._heard(m, p, p.y)
        self.pg.draw.line(self.screen, (60, 66, 80), (p.x, y), (p.right, y), 2)
        y += self.pad
        lines_fit = max(1, (p.bottom - y) // int(self.fs_caption * 1.25))
        self._paragraph(m.saying, self.fs_caption, TEXT, p.x, y, p.w, max_lines=lines_fit)

    def _provisioning(self, m: ScreenModel, p) -> None:
        y = self._paragraph(m.message or "Setting up  ·  Настройка", self.fs_caption, TEXT, p.x, p.y, p.w,
                            max_lines=3, bold=True, keep="first")
        y += self.pad
        y = self._paragraph(m.step or "…", self.fs_caption, DIM, p.x, y, p.w, max_lines=2)
        y += self.pad
        bar_h = max(16, self.fs_caption)
        frac = max(0.0, min(1.0, m.progress))
        self.pg.draw.rect(self.screen, (50, 56, 68), (p.x, y, p.w, bar_h), border_radius=bar_h // 2)
        if frac > 0:
            self.pg.draw.rect(self.screen, ACCENT, (p.x, y, max(bar_h, int(p.w * frac)), bar_h),
                              border_radius=bar_h // 2)
        pct = self._text(f"{frac * 100:.0f} %", self.fs_small, TEXT)
        self.screen.blit(pct, (p.right - pct.get_width(), y + bar_h + self.pad // 2))
        y += bar_h + self.pad * 2 + self.fs_small
        if m.detail:
            self._paragraph(m.detail, self.fs_small, DIM, p.x, y, p.w, max_lines=4)

    def _error(self, m: ScreenModel) -> None:
        w, h = self.size
        self.screen.fill(ERROR_BG)
        pad = max(16, w // 18)
        width = w - 2 * pad
        big = max(22, min(w // 12, h // 14))
        self.pg.draw.rect(self.screen, WARN, (0, 0, w, max(8, h // 60)))
        y = h // 6
        y = self._paragraph("⚠  Out of order  ·  Не работает", max(16, big // 2), WARN, pad, y, width, bold=True)
        y += pad
        y = self._paragraph(m.message or "Something went wrong.", big, TEXT, pad, y, width, max_lines=6,
                            bold=True, keep="first")
        y += pad
        if m.detail:
            self._paragraph(m.detail, max(16, int(big * 0.6)), (235, 220, 200), pad, y, width, max_lines=8,
                            keep="first")

    # ------------------------------------------------------------------ output

    def present(self) -> None:
        self.pg.display.flip()

    def pump(self) -> bool:
        pg = self.pg
        for ev in pg.event.get():
            if ev.type == pg.QUIT:
                return False
            if ev.type == pg.MOUSEBUTTONDOWN and ev.button == 1 and not getattr(ev, "touch", False):
                self._tap(ev.pos)  # (a finger's tap also comes as FINGERDOWN: taken there, once)
            elif ev.type == pg.FINGERDOWN:
                w, h = self.size
                self._tap((int(ev.x * w), int(ev.y * h)))
            elif ev.type == pg.TEXTINPUT and self._writable():
                self.keyboard.type(ev.text)  # a physical keyboard: its own layout decides the letters
            elif ev.type == pg.KEYDOWN:
                kb = self.keyboard if self._writable() else None
                if ev.key == pg.K_ESCAPE:
                    if kb is None or not kb.is_open:
                        return False
                    kb.close()
                elif kb is not None and ev.key in (pg.K_RETURN, pg.K_KP_ENTER):
                    sent = kb.send()
                    if sent:
                        self._typed.append(sent)
                elif kb is not None and ev.key == pg.K_BACKSPACE:
                    kb.backspace()
        return True

    def rgb(self) -> np.ndarray:
        w, h = self.size
        return np.frombuffer(self.pg.image.tobytes(self.screen, "RGB"), np.uint8).reshape(h, w, 3)

    def save_png(self, path: Path) -> None:
        self.pg.image.save(self.screen, str(path))

    def close(self) -> None:
        self.pg.display.quit()
