"""Helpers for the daemon tests (no tests here): a fake systemd notify socket, a real `avatar-kiosk run` child."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


class FakeSystemd:
    """Binds the datagram socket systemd would, and records what the daemon tells it."""

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if self.path.startswith("@"):
            self.sock.bind("\0" + self.path[1:])
        else:
            self.sock.bind(self.path)
        self.messages: list[tuple[float, dict[str, str]]] = []

    def poll(self, timeout: float) -> dict[str, str] | None:
        self.sock.settimeout(max(0.001, timeout))
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return None
        msg = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
        self.messages.append((time.monotonic(), msg))
        return msg

    def wait_for(self, key: str, value: str | None = None, timeout: float = 30.0) -> dict[str, str]:
        end = time.monotonic() + timeout
        for _, msg in self.messages:
            if key in msg and (value is None or msg[key] == value):
                return msg
        while time.monotonic() < end:
            msg = self.poll(end - time.monotonic())
            if msg and key in msg and (value is None or msg[key] == value):
                return msg
        raise AssertionError(f"no {key}={value} from the daemon in {timeout}s; got {self.messages}")

    def drain(self, seconds: float) -> list[dict[str, str]]:
        end = time.monotonic() + seconds
        got = []
        while time.monotonic() < end:
            msg = self.poll(end - time.monotonic())
            if msg:
                got.append(msg)
        return got

    def close(self) -> None:
        self.sock.close()


def start_daemon(home: Path, app: str, notify: str | None, *, watchdog_usec: int = 0,
                 extra_env: dict[str, str] | None = None, args: tuple[str, ...] = ()) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items()
           if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM", "AVATAR_KIOSK_CONFIG",
                        "AVATAR_KIOSK_MODE")}
    env.update({"AVATAR_KIOSK_HOME": str(home), "SDL_VIDEODRIVER": "dummy",
                "SDL_AUDIODRIVER": "dummy", "PYTHONUNBUFFERED": "1"})
    if notify:
        env["NOTIFY_SOCKET"] = notify
    if watchdog_usec:
        env["WATCHDOG_USEC"] = str(watchdog_usec)
    env.update(extra_env or {})
    home.mkdir(parents=True, exist_ok=True)
    # "real": the kiosk app itself (`avatar-kiosk run`); anything else: a stand-in for the daemon's mechanics
    cmd = ([sys.executable, "-m", "appliance"] if app == "real" else
           [sys.executable, str(REPO / "tests" / "support" / "stand_in_daemon.py"), app])
    return subprocess.Popen([*cmd, "run", "--headless", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 10.0) -> tuple[float, int, str]:
    """Signal the daemon; (seconds until it exited, exit code, its output)."""
    t0 = time.monotonic()
    proc.send_signal(sig)
    try:
        rc = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = proc.wait()
        return float("inf"), rc, proc.stdout.read()
    return time.monotonic() - t0, rc, proc.stdout.read()


def control(sock_path: Path, req: dict, timeout: float = 5.0) -> dict:
    from appliance.daemon.control import request

    return request(sock_path, req, timeout)


def wait_socket(sock_path: Path, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if control(sock_path, {"cmd": "ping"}, 2).get("ok"):
                return
        except Exception:
            pass
        time.sleep(0.05)
    raise AssertionError(f"control socket {sock_path} never answered")


def dumps(obj) -> str:
    return json.dumps(obj, indent=1, default=str)
