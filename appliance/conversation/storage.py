"""The turn journal in SQLite: when, which language, how long each stage took, how long the reply
was. Text only when ``privacy.store_text`` allows it, and then with an expiry; raw audio never
(debug capture writes WAVs to the cache folder, see conversation/turn.py, and only when enabled)."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..config import PrivacyConfig

SCHEMA = """
CREATE TABLE IF NOT EXISTS turns (
    id INTEGER PRIMARY KEY,
    turn_id TEXT NOT NULL,
    started_at REAL NOT NULL,          -- unix time
    language TEXT,
    outcome TEXT NOT NULL,             -- replied, no_reply, barge_in, error
    eos_ms REAL, stt_ms REAL, llm_first_token_ms REAL, llm_first_sentence_ms REAL,
    tts_first_chunk_ms REAL, ttfa_ms REAL,
    reply_chars INTEGER NOT NULL DEFAULT 0,
    heard TEXT, reply TEXT,            -- only with privacy.store_text
    text_expires_at REAL               -- unix time after which heard/reply are erased
);
CREATE INDEX IF NOT EXISTS turns_expiry ON turns(text_expires_at);
"""


@dataclass
class TurnRecord:
    turn_id: str
    started_at: float = field(default_factory=time.time)
    language: str = ""
    outcome: str = "replied"
    eos_ms: float | None = None
    stt_ms: float | None = None
    llm_first_token_ms: float | None = None
    llm_first_sentence_ms: float | None = None
    tts_first_chunk_ms: float | None = None
    ttfa_ms: float | None = None
    reply_chars: int = 0
    heard: str = ""
    reply: str = ""


class TurnStore:
    def __init__(self, db_path: Path, privacy: PrivacyConfig) -> None:
        db_path.parent.mkdir(parents=True, exist_ok=True)
        self.privacy = privacy
        self.db = sqlite3.connect(str(db_path), check_same_thread=False)
        self.db.executescript(SCHEMA)
        self.purge()

    def add(self, rec: TurnRecord) -> None:
        d = asdict(rec)
        if self.privacy.store_text:
            d["text_expires_at"] = rec.started_at + self.privacy.text_retention_days * 86400
        else:
            d["heard"] = d["reply"] = None
            d["text_expires_at"] = None
        cols = ", ".join(d)
        self.db.execute(f"INSERT INTO turns ({cols}) VALUES ({', '.join('?' * len(d))})", tuple(d.values()))
        self.purge()
        self.db.commit()

    def purge(self, now: float | None = None) -> int:
        """Erase stored text past its expiry (the timing figures stay)."""
        cur = self.db.execute("UPDATE turns SET heard = NULL, reply = NULL, text_expires_at = NULL "
                              "WHERE text_expires_at IS NOT NULL AND text_expires_at < ?", (now or time.time(),))
        self.db.commit()
        return cur.rowcount

    def rows(self) -> list[dict]:
        cur = self.db.execute("SELECT * FROM turns ORDER BY id")
        names = [c[0] for c in cur.description]
        return [dict(zip(names, r, strict=False)) for r in cur.fetchall()]

    def close(self) -> None:
        self.db.close()
