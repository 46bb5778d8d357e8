"""Logging, set up once per process: journald with structured fields under systemd, the console otherwise.

Technicians find events with ``journalctl -u avatar-kiosk MESSAGE_ID=<id>``; every event kind has a
fixed id below (listed in the README's technicians' section). Structured fields are passed with
``extra=`` on a log call: ``log.info("turn done", extra=fields(TURN_DONE, turn_id=..., latency_ms=...))``.

The journal is spoken to over its native datagram socket (the protocol is ~20 lines), so no C
extension has to be built on the box. Privacy: transcripts and replies never go to the log —
callers pass lengths and languages, not text.
"""

from __future__ import annotations

import logging
import os
import socket
import struct
import sys
import traceback
from typing import Any

# Fixed MESSAGE_IDs, one per event kind (never change a published id).
STARTED = "b725c04786134aeda13af51bd4237df0"
READY = "2a577724d6ba4aa793d9a93bd2300038"
TURN_DONE = "29b14c65a0374a7dafcb76e5b367d23d"
PROVISION_OK = "2e386786ce6b44b0a9826ce7728e94e0"
PROVISION_FAILED = "489d1032067945619b6eae72db1078e4"
DEVICE_LOST = "bc8c212f3a0745a6bef193c991a4cc67"
DEVICE_BACK = "3eedf32d2d814994a466d2f2fec30a9e"
MODEL_LOAD_FAILED = "1d80f8507da74b319452bdb7f52fd57c"
WATCHDOG_FIRED = "eae27b4e46924439aa583b7915312fd8"
CONFIG_ERROR = "f02a61140302449ab4a0c71c95e4d99a"
ENGINE_FALLBACK = "882a9abd81144a2098ab7a86b5ef39b9"
ENGINE_BACK = "4cf4504bbb044b7b8244678bd130ea31"
STOPPED = "2e773013f834448eb64c561bd28cfb15"
CONFIG_RELOADED = "3e70a582d6dd4033bbb71883e03d187c"
CONTROL_REFUSED = "d9d7bd9aba824e4d8597f4cb45c4185e"

PROFILE_CONFIRMED = "3bb5614342b44f23a4e94172add89a28"
PROFILE_ROLLED_BACK = "bbb4d1a19be242f5abc48bbc785c31f3"

MESSAGE_IDS = {
    "STARTED": STARTED, "READY": READY, "TURN_DONE": TURN_DONE, "PROVISION_OK": PROVISION_OK,
    "PROVISION_FAILED": PROVISION_FAILED, "DEVICE_LOST": DEVICE_LOST, "DEVICE_BACK": DEVICE_BACK,
    "MODEL_LOAD_FAILED": MODEL_LOAD_FAILED, "WATCHDOG_FIRED": WATCHDOG_FIRED,
    "CONFIG_ERROR": CONFIG_ERROR, "ENGINE_FALLBACK": ENGINE_FALLBACK,
    "ENGINE_BACK": ENGINE_BACK, "STOPPED": STOPPED,
    "PROFILE_CONFIRMED": PROFILE_CONFIRMED, "PROFILE_ROLLED_BACK": PROFILE_ROLLED_BACK,
    "CONFIG_RELOADED": CONFIG_RELOADED, "CONTROL_REFUSED": CONTROL_REFUSED,
}

# Record attributes that become journal fields (upper-cased).
STRUCTURED = ("message_id", "turn_id", "stage", "latency_ms", "profile_id", "device", "model_id", "code")
JOURNAL_SOCKET = "/run/systemd/journal/socket"


def fields(message_id: str | None = None, **kw: Any) -> dict[str, Any]:
    """The ``extra=`` mapping for a structured log call."""
    out = {k: v for k, v in kw.items() if v is not None}
    if message_id:
        out["message_id"] = message_id
    return out


def _encode_field(key: str, value: str) -> bytes:
    k, v = key.encode(), value.encode("utf-8", "replace")
    if b"\n" in v:  # the journal's binary-safe form: KEY\n<u64 le length><value>\n
        return k + b"\n" + struct.pack("<Q", len(v)) + v + b"\n"
    return k + b"=" + v + b"\n"


_PRIORITY = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6, logging.DEBUG: 7}


class JournalHandler(logging.Handler):
    """Sends each record to journald as one datagram with structured fields."""

    def __init__(self, socket_path: str = JOURNAL_SOCKET, identifier: str = "avatar-kiosk") -> None:
        super().__init__()
        self.socket_path = socket_path
        self.identifier = identifier
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)

    def encode(self, record: logging.LogRecord) -> bytes:
        msg = record.getMessage()
        if record.exc_info:
            msg += "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip()
        parts = [
            _encode_field("MESSAGE", msg),
            _encode_field("PRIORITY", str(_PRIORITY.get(record.levelno, 6))),
            _encode_field("SYSLOG_IDENTIFIER", self.identifier),
            _encode_field("LOGGER", record.name),
            _encode_field("CODE_FILE", record.pathname),
            _encode_field("CODE_LINE", str(record.lineno)),
        ]
        for name in STRUCTURED:
            value = getattr(record, name, None)
            if value is not None:
                parts.append(_encode_field(name.upper(), str(value)))
        return b"".join(parts)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.sock.sendto(self.encode(record), self.socket_path)
        except OSError:
            self.handleError(record)


class ConsoleFormatter(logging.Formatter):
    """Console lines that still show the structured fields, for a dev checkout and the CLI."""

    def format(self, record: logging.LogRecord) -> str:
        base = super().format(record)
        extra = [f"{n}={getattr(record, n)}" for n in STRUCTURED[1:] if getattr(record, n, None) is not None]
        return base + (f"  [{' '.join(extra)}]" if extra else "")


def under_journald(env: dict[str, str] | None = None) -> bool:
    """True when systemd connected our stderr to the journal (it sets $JOURNAL_STREAM then)."""
    env = os.environ if env is None else env
    return bool(env.get("JOURNAL_STREAM")) and os.path.exists(JOURNAL_SOCKET)


_configured = False


def setup(level: str = "INFO", *, force_console: bool = False) -> None:
    """Configure the root logger once; later calls only change the level."""
    global _configured
    root = logging.getLogger()
    root.setLevel(level)
    if _configured:
        return
    _configured = True
    if under_journald() and not force_console:
        handler: logging.Handler = JournalHandler()
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(ConsoleFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    root.addHandler(handler)
    # Chatty third-party loggers stay at WARNING so the journal holds our events, not theirs.
    for noisy in ("faster_whisper", "numba", "PIL", "matplotlib", "urllib3", "jax"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
