"""RHVoice in this process, through its C library (``libRHVoice.so.5``, package ``librhvoice5``;
LGPL-2.1+, used as a shared library, unmodified), instead of one ``RHVoice-test`` process per sentence.

Why: the command loads the voice on every call, ~0.3 s here before the first sample; the reply's
first sentence waits for that. The engine made here loads it once and keeps it.

The structures below are those of ``RHVoice.h`` from 1.8.0 (Debian bookworm), unchanged in the 1.x
series that Ubuntu ships; a library that reports another major version, or that cannot be loaded
or made to speak, is not used and the caller keeps the command (see :class:`.russian_voice.RussianVoice`).
Synthesis is synchronous: ``RHVoice_speak`` calls ``play_speech`` in the calling thread (the TTS
worker) until the text is said. One message at a time per engine (a lock).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

DATA_PATH = "/usr/share/RHVoice"
CONFIG_PATH = "/etc/RHVoice"
LIBRARY_NAMES = ("libRHVoice.so.5", "libRHVoice.so")  # Debian/Ubuntu package librhvoice5

_SET_RATE = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_void_p)
_PLAY = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_uint, ctypes.c_void_p)


class _Callbacks(ctypes.Structure):
    _fields_ = [("set_sample_rate", _SET_RATE), ("play_speech", _PLAY),
                ("process_mark", ctypes.c_void_p), ("word_starts", ctypes.c_void_p),
                ("word_ends", ctypes.c_void_p), ("sentence_starts", ctypes.c_void_p),
                ("sentence_ends", ctypes.c_void_p), ("play_audio", ctypes.c_void_p), ("done", ctypes.c_void_p)]


class _InitParams(ctypes.Structure):
    _fields_ = [("data_path", ctypes.c_char_p), ("config_path", ctypes.c_char_p),
                ("resource_paths", ctypes.POINTER(ctypes.c_char_p)), ("callbacks", _Callbacks),
                ("options", ctypes.c_uint)]


class _SynthParams(ctypes.Structure):
    _fields_ = [("voice_profile", ctypes.c_char_p),
                ("absolute_rate", ctypes.c_double), ("absolute_pitch", ctypes.c_double),
                ("absolute_volume", ctypes.c_double), ("relative_rate", ctypes.c_double),
                ("relative_pitch", ctypes.c_double), ("relative_volume", ctypes.c_double),
                ("punctuation_mode", ctypes.c_int), ("punctuation_list", ctypes.c_char_p),
                ("capitals_mode", ctypes.c_int), ("flags", ctypes.c_int)]


class RHVoiceLib:
    """``synthesize(text, voice) -> (float32 mono, sample rate)``; raises OSError when unusable."""

    def __init__(self) -> None:
        path = next((p for p in (*LIBRARY_NAMES, ctypes.util.find_library("RHVoice")) if p and _loads(p)), None)
        if path is None or not Path(DATA_PATH).is_dir():
            raise OSError("libRHVoice is not installed (package librhvoice5)")
        lib = ctypes.CDLL(path)
        lib.RHVoice_get_version.restype = ctypes.c_char_p
        self.version = (lib.RHVoice_get_version() or b"").decode()
        if not self.version.startswith("1."):
            raise OSError(f"libRHVoice {self.version}: not the 1.x interface this binding was written for")
        lib.RHVoice_new_tts_engine.restype = ctypes.c_void_p
        lib.RHVoice_new_tts_engine.argtypes = [ctypes.POINTER(_InitParams)]
        lib.RHVoice_new_message.restype = ctypes.c_void_p
        lib.RHVoice_new_message.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint, ctypes.c_int,
                                            ctypes.POINTER(_SynthParams), ctypes.c_void_p]
        lib.RHVoice_speak.argtypes = [ctypes.c_void_p]
        lib.RHVoice_delete_message.argtypes = [ctypes.c_void_p]
        self._lib = lib
        self._lock = threading.Lock()
        self._rate = 24000
        self._chunks: list[np.ndarray] = []
        # The callbacks must outlive the engine: ctypes frees a CFUNCTYPE object it no longer sees.
        self._set_rate = _SET_RATE(self._on_rate)
        self._play = _PLAY(self._on_speech)
        params = _InitParams(DATA_PATH.encode(), CONFIG_PATH.encode(), None,
                             _Callbacks(self._set_rate, self._play, None, None, None, None, None, None, None), 0)
        self._engine = lib.RHVoice_new_tts_engine(ctypes.byref(params))
        if not self._engine:
            raise OSError("RHVoice could not start (its voice data under /usr/share/RHVoice?)")

    def _on_rate(self, rate: int, _user: object) -> int:
        self._rate = int(rate)
        return 1

    def _on_speech(self, samples, count: int, _user: object) -> int:
        self._chunks.append(np.ctypeslib.as_array(samples, shape=(count,)).astype(np.float32) / 32768.0)
        return 1

    def synthesize(self, text: str, voice: str) -> tuple[np.ndarray, int]:
        data = text.encode("utf-8")
        params = _SynthParams(voice.encode(), 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0, None, 0, 0)
        with self._lock:
            self._chunks = []
            message = self._lib.RHVoice_new_message(self._engine, data, len(data), 0, ctypes.byref(params), None)
            if not message:
                raise OSError(f"RHVoice refused the text (voice {voice!r})")
            try:
                self._lib.RHVoice_speak(message)
            finally:
                self._lib.RHVoice_delete_message(message)
            audio = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.float32)
            self._chunks = []
            return audio, self._rate


def _loads(name: str) -> bool:
    try:
        ctypes.CDLL(name)
    except OSError:
        return False
    return True
