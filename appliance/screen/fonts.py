"""The kiosk's font: a TTF with Cyrillic (captions are Russian or English).

``font_path(configured: str = "") -> Path | None``: the configured file if it exists, else DejaVu
Sans from the system (``fonts-dejavu-core``), else ``None`` (pygame's built-in font: no Cyrillic —
the renderer logs a warning, since Russian captions would show as boxes).
"""

from __future__ import annotations

from pathlib import Path

CANDIDATES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
)


def font_path(configured: str = "") -> Path | None:
    if configured and Path(configured).is_file():
        return Path(configured)
    for c in CANDIDATES:
        if Path(c).is_file():
            return Path(c)
    return None


def bold_path(regular: Path | None) -> Path | None:
    """The bold face next to a regular DejaVu file, when there is one."""
    if regular is None:
        return None
    cand = regular.with_name(regular.stem + "-Bold" + regular.suffix)
    return cand if cand.is_file() else regular
