"""Structured journald logging, checked against a real datagram socket standing in for journald."""

from __future__ import annotations

import logging
import socket
import struct

from appliance import logs


def _parse(datagram: bytes) -> dict[str, str]:
    out, i = {}, 0
    while i < len(datagram):
        nl = datagram.index(b"\n", i)
        line = datagram[i:nl]
        if b"=" in line:
            k, v = line.split(b"=", 1)
            out[k.decode()] = v.decode()
            i = nl + 1
        else:  # binary-safe form
            (n,) = struct.unpack("<Q", datagram[nl + 1:nl + 9])
            out[line.decode()] = datagram[nl + 9:nl + 9 + n].decode()
            i = nl + 9 + n + 1
    return out


def test_journal_handler_sends_structured_fields(tmp_path):
    path = str(tmp_path / "journal.sock")
    sink = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sink.bind(path)
    handler = logs.JournalHandler(socket_path=path)
    log = logging.getLogger("test.journal")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        log.warning("turn done\nsecond line", extra=logs.fields(logs.TURN_DONE, turn_id="t-7", stage="tts",
                                                                latency_ms=412, profile_id=None))
        rec = _parse(sink.recv(65536))
    finally:
        log.removeHandler(handler)
        sink.close()
    assert rec["MESSAGE"] == "turn done\nsecond line"
    assert rec["MESSAGE_ID"] == logs.TURN_DONE
    assert rec["TURN_ID"] == "t-7" and rec["STAGE"] == "tts" and rec["LATENCY_MS"] == "412"
    assert "PROFILE_ID" not in rec  # None fields are left out
    assert rec["PRIORITY"] == "4" and rec["SYSLOG_IDENTIFIER"] == "avatar-kiosk"


def test_message_ids_are_unique_128_bit_hex():
    ids = list(logs.MESSAGE_IDS.values())
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)


def test_console_is_used_outside_systemd():
    assert not logs.under_journald({})
