"""``avatar-kiosk bench --soak MINUTES``: the real kiosk, busy for a while — does anything grow?

Starts the service itself (``avatar-kiosk run --headless``, the same process systemd starts) with a
recorded visitor who asks a question every ~15 s (English and Russian, some of them talking over the
reply: barge-ins), and meanwhile works its control socket: ``status`` every 2 s, a typed ``ask``
every 20 s, a ``say`` every 30 s, and 20 connections opened and left idle then dropped, every
minute. Every minute it prints the service's resident memory, open files and threads. A kiosk runs
for months: whatever grows here grows there.

Judged (issue 14): RSS within 10 % of its value after the first minute, no growth in open files or
threads. Exit 0 when it holds.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

QUESTIONS = (("en", "What is your name?"), ("ru", "@hello"), ("en", "Where is the cafe?"),
             ("en", "Tell me about the Moon, please, tell me everything you know about it."),
             ("ru", "@one-moment-please"), ("en", "Which planet is the biggest?"))
GAP_S = 15.0
BARGE_EVERY = 4        # every 4th question comes 2 s after the previous one: it talks over the reply
GOALS = {"rss_growth": 0.10}


def proc_stats(pid: int) -> dict:
    """Resident memory (MB), open files and threads of ``pid`` (Linux /proc)."""
    rss_kb = 0
    with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss_kb = int(line.split()[1])
    return {"rss_mb": round(rss_kb / 1024, 1), "files": len(os.listdir(f"/proc/{pid}/fd")),
            "threads": len(os.listdir(f"/proc/{pid}/task"))}


def visitor_wav(settings, minutes: float, out: Path) -> Path:
    """A recording of a visitor asking a question every ~15 s for ``minutes`` (plus a tail)."""
    from ..audio.wav import write_wav
    from ..engines.tts_piper import PiperEspeakTTS
    from . import question_audio

    tts = PiperEspeakTTS.from_settings(settings)
    spoken = [question_audio(q, tts) for q in QUESTIONS]
    parts, t, i = [np.zeros(8 * 16000, np.int16)], 8.0, 0
    while t < minutes * 60:
        q = spoken[i % len(spoken)]
        gap = 2.0 if i % BARGE_EVERY == BARGE_EVERY - 1 else GAP_S
        parts += [np.zeros(int(gap * 16000), np.int16), q]
        t += gap + len(q) / 16000
        i += 1
    parts.append(np.zeros(60 * 16000, np.int16))
    write_wav(out, np.concatenate(parts), 16000)
    return out


def _request(sock: Path, req: dict, timeout: float = 60.0) -> dict:
    from ..daemon.control import DaemonUnavailable, request

    try:
        return request(sock, req, timeout)
    except DaemonUnavailable as e:
        return {"ok": False, "error": str(e)}


def run(settings, args) -> int:
    minutes = float(getattr(args, "soak", 0) or 0)
    settings.paths.ensure()
    wav = visitor_wav(settings, minutes, settings.paths.cache_dir / "soak-visitor.wav")
    env = {**os.environ, "SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy"}
    env.pop("NOTIFY_SOCKET", None)
    cfg = ["--config", str(settings.paths.config_file)]
    proc = subprocess.Popen([sys.executable, "-m", "appliance", *cfg, "run", "--headless", "--visitor", str(wav)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sock = settings.paths.control_socket
    samples: list[dict] = []
    counts = {"status": 0, "ask": 0, "say": 0, "idle_connections": 0, "failed": 0}
    try:
        t0 = time.monotonic()
        while time.monotonic() - t0 < 300 and not _request(sock, {"cmd": "ping"}, 2).get("ok"):
            if proc.poll() is not None:
                print("bench --soak: the kiosk exited while starting", file=sys.stderr)
                return 1
            time.sleep(1)
        start, last_minute, k = time.monotonic(), -1, 0
        print(f"{'minute':>6} {'RSS MB':>8} {'files':>6} {'threads':>8}  requests")
        while (now := time.monotonic() - start) < minutes * 60 and proc.poll() is None:
            k += 1
            ok = _request(sock, {"cmd": "status"}, 10).get("ok")
            counts["status"] += 1
            if k % 10 == 0:
                ok &= bool(_request(sock, {"cmd": "ask", "text": "How far away is the Moon?"}).get("ok"))
                counts["ask"] += 1
            if k % 15 == 0:
                ok &= bool(_request(sock, {"cmd": "say", "text": "Welcome to the museum!"}).get("ok"))
                counts["say"] += 1
            counts["failed"] += 0 if ok else 1
            minute = int(now // 60)
            if minute != last_minute:
                last_minute = minute
                samples.append({"minute": minute, **proc_stats(proc.pid), **counts})  # before the idle ones
                idle = [socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(20)]
                for s in idle:
                    s.connect(str(sock))
                counts["idle_connections"] += len(idle)
                s = samples[-1]
                print(f"{minute:6d} {s['rss_mb']:8.1f} {s['files']:6d} {s['threads']:8d}  "
                      f"{counts['status']} status, {counts['ask']} ask, {counts['say']} say, "
                      f"{counts['idle_connections']} idle connections, {counts['failed']} failed", flush=True)
                time.sleep(1.0)
                for s in idle:
                    s.close()
            time.sleep(2.0)
        samples.append({"minute": round((time.monotonic() - start) / 60, 1), **proc_stats(proc.pid), **counts})
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
    res = judge(samples)
    print(f"RSS after the first minute {res['rss_first_mb']} MB, at the end {res['rss_last_mb']} MB "
          f"({res['rss_growth']:+.1%}; goal within {GOALS['rss_growth']:.0%}); open files {res['files']}; "
          f"threads {res['threads']}: {'held' if res['held'] else 'NOT held'}")
    out = getattr(args, "json", None)
    if out:
        Path(out).write_text(json.dumps({"soak": {**res, "samples": samples}}, indent=2))
    return 0 if res["held"] else 1


def judge(samples: list[dict]) -> dict:
    """Growth from the sample after the first minute to the last one."""
    if len(samples) < 2:
        return {"held": False, "rss_first_mb": 0, "rss_last_mb": 0, "rss_growth": 0.0, "files": [], "threads": []}
    first, last = samples[1] if len(samples) > 2 else samples[0], samples[-1]
    growth = (last["rss_mb"] - first["rss_mb"]) / (first["rss_mb"] or 1)
    res = {"rss_first_mb": first["rss_mb"], "rss_last_mb": last["rss_mb"], "rss_growth": growth,
           "files": [first["files"], last["files"]], "threads": [first["threads"], last["threads"]]}
    res["held"] = growth <= GOALS["rss_growth"] and last["files"] <= first["files"] and \
        last["threads"] <= first["threads"] + 2
    return res
