"""``bench --soak``: the judge of growth, and the /proc reading it rests on (the soak itself runs
the real kiosk for MINUTES: quoted in the notes, not run here)."""

from __future__ import annotations

import os
import threading

from appliance.bench import soak


def test_proc_stats_reads_this_process():
    before = soak.proc_stats(os.getpid())
    stop = threading.Event()
    t = threading.Thread(target=stop.wait)
    t.start()
    with open(__file__, encoding="utf-8"):
        during = soak.proc_stats(os.getpid())
    stop.set()
    t.join()
    assert during["threads"] == before["threads"] + 1 and during["files"] == before["files"] + 1
    assert before["rss_mb"] > 10


def test_growth_is_judged_from_the_first_minute():
    warm = [{"rss_mb": 50, "files": 10, "threads": 5}, {"rss_mb": 1000, "files": 40, "threads": 30}]
    steady = soak.judge([*warm, {"rss_mb": 1050, "files": 40, "threads": 31}])
    assert steady["held"] and abs(steady["rss_growth"] - 0.05) < 1e-9
    leaking = soak.judge([*warm, {"rss_mb": 1500, "files": 40, "threads": 30}])
    assert not leaking["held"]
    files = soak.judge([*warm, {"rss_mb": 1000, "files": 60, "threads": 30}])
    assert not files["held"]
