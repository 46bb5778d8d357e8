"""The embedded Russian voice: RHVoice (Debian/Ubuntu packages ``rhvoice`` + ``rhvoice-russian``), with
espeak-ng only as the last fallback.

Measured here (whisper base transcribing six Russian sentences back): RHVoice Irina gets 8 % of the
words wrong, Anna 14 %, Elena 18 %, Aleksandr 17 %; espeak-ng 82 %. Only these four voices are used:
they are LGPL-2.1+, while other voices in the same package (Tatiana, Victoria, Arina) are
CC-BY-NC-ND and must never ship in a product.

Blocking; runs in the TTS worker. RHVoice runs in this process through its C library where the
``librhvoice5`` package is installed (:mod:`.rhvoice_lib`: the voice loads once, ~0.3 s sooner a
sentence), else as the ``RHVoice-test`` command with the text on stdin, never on a command line: it
is visitor-influenced.
"""

from __future__ import annotations

import io
import logging
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from ..audio.wav import read_wav

log = logging.getLogger(__name__)

RHVOICE_VOICES = ("irina", "anna", "elena", "aleksandr")  # LGPL-2.1+ only
ESPEAK = "espeak-ng"
TIMEOUT_S = 30

# What the engines choke on or read aloud wrongly: long dashes end RHVoice's phrase early and make
# festival exit; symbols and emoji are spelled out or dropped at random.
_DASHES = re.compile(r"\s*[—–―]\s*")
_UNSPOKEN = re.compile(r"[^\w\s.,!?;:()«»\"'%+\-/]", re.UNICODE)


def clean(text: str) -> str:
    """Text a Russian voice reads as a person would."""
    text = _DASHES.sub(", ", text)
    text = _UNSPOKEN.sub(" ", text)
    return re.sub(r"\s+", " ", text).strip()


class RussianVoice:
    """``synthesize(text) -> (float32 mono, sample rate)`` with RHVoice's ``voice``, or espeak-ng when
    ``voice`` is "espeak-ng" or RHVoice is not installed (said once in the journal)."""

    def __init__(self, voice: str = "irina") -> None:
        self.rhvoice = shutil.which("RHVoice-test") if voice in RHVOICE_VOICES else None
        self.lib = _open_library() if voice in RHVOICE_VOICES else None
        if voice in RHVOICE_VOICES and self.rhvoice is None and self.lib is None:
            log.warning("RHVoice is not installed (packages rhvoice, rhvoice-russian): Russian falls back to "
                        "espeak-ng, which speech recognition can hardly follow — run the set-up again")
        self.voice = voice if self.rhvoice or self.lib else ESPEAK
        self.espeak = shutil.which(ESPEAK) or ESPEAK

    @property
    def id(self) -> str:
        return f"rhvoice:{self.voice}" if self.rhvoice or self.lib else "espeak:ru"

    def synthesize(self, text: str) -> tuple[np.ndarray, int]:
        text = clean(text)
        if not text:
            return np.zeros(0, np.float32), 24000
        if self.lib is not None:
            try:
                return self.lib.synthesize(text, self.voice)
            except OSError as e:  # the command says it the same way, only later
                log.warning("RHVoice's library failed (%s): using its command from now on", e)
                self.lib = None
        if self.rhvoice:
            return self._rhvoice(text)
        return self._espeak(text)

    def _rhvoice(self, text: str) -> tuple[np.ndarray, int]:
        with tempfile.TemporaryDirectory(prefix="rhvoice-") as tmp:
            out = Path(tmp) / "out.wav"
            subprocess.run([self.rhvoice, "-p", self.voice, "-o", str(out)], input=text.encode("utf-8"),
                           capture_output=True, timeout=TIMEOUT_S, check=True)
            data, rate = read_wav(out)
        return data[:, 0].astype(np.float32), rate

    def _espeak(self, text: str) -> tuple[np.ndarray, int]:
        proc = subprocess.run([self.espeak, "-v", "ru", "-s", "165", "--stdout"], input=text.encode("utf-8"),
                              capture_output=True, timeout=TIMEOUT_S, check=True)
        data, rate = read_wav(io.BytesIO(proc.stdout))
        return data[:, 0].astype(np.float32), rate


def _open_library():
    """RHVoice's C library in this process, or None (not installed, not the interface we know)."""
    from .rhvoice_lib import RHVoiceLib

    try:
        return RHVoiceLib()
    except OSError as e:
        log.info("RHVoice runs as a command: %s", e)
        return None
