"""The technician's line into the running kiosk: a local unix socket speaking JSON lines.

``<runtime_dir>/control.sock`` (box: ``/run/avatar-kiosk/control.sock``), mode 0660, no network
port. Each connection sends one JSON object per line, ``{"cmd": "status"}``, and reads one JSON
object per line back, always with ``"ok"``; a failure carries ``"error"`` (one line). The server
checks the peer's uid with SO_PEERCRED and answers only root and the daemon's own user, whatever
the file permissions say.

Commands: ``ping``, ``status``, ``reload`` (as SIGHUP), and anything else is passed to the app's
``command()`` hook (``say``, ``ask``, …). Other code talks to the daemon with :func:`request`:
``request(settings.paths.control_socket, {"cmd": "say", "text": "Hello"}, timeout=60)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from .. import logs

log = logging.getLogger("avatar-kiosk.control")

MAX_LINE = 64 * 1024
UNIT = "avatar-kiosk"


class DaemonUnavailable(RuntimeError):
    """No daemon answers on the control socket (not running, or we may not talk to it)."""


def peer_uid(sock: socket.socket) -> int:
    """The uid of the process at the other end of a unix stream socket (SO_PEERCRED)."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid


Handler = Callable[[dict], Awaitable[dict]]


class ControlServer:
    """An asyncio unix-socket server: JSON lines in, JSON lines out, peers checked by uid."""

    def __init__(self, path: Path, handler: Handler, allowed_uids: set[int] | None = None) -> None:
        self.path = Path(path)
        self.handler = handler
        self.allowed_uids = allowed_uids if allowed_uids is not None else {0, os.getuid()}
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists() or self.path.is_symlink():
            if _answers(self.path):
                raise DaemonUnavailable(f"another kiosk daemon is already serving {self.path}")
            self.path.unlink()  # stale, from a daemon that was killed
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o117)  # the socket is born 0660: no window where others may connect
        try:
            sock.bind(str(self.path))
        finally:
            os.umask(old)
        os.chmod(self.path, 0o660)
        self._server = await asyncio.start_unix_server(self._serve, sock=sock, limit=MAX_LINE)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            uid = peer_uid(writer.get_extra_info("socket"))
            if uid not in self.allowed_uids:
                log.warning("control socket: refused a client with uid %d", uid,
                            extra=logs.fields(logs.CONTROL_REFUSED, code=f"uid={uid}"))
                with contextlib.suppress(Exception):  # take its request first, so it can read the refusal
                    await asyncio.wait_for(reader.readline(), 2)
                await _send(writer, {"ok": False, "error": f"refused: uid {uid} is neither root nor the kiosk's "
                                     "user; run the command with sudo"})
                return
            while True:
                try:
                    line = await asyncio.wait_for(reader.readline(), 300)
                except (TimeoutError, asyncio.LimitOverrunError, ValueError):
                    await _send(writer, {"ok": False, "error": "request too long or too slow"})
                    return
                if not line:
                    return
                try:
                    req = json.loads(line)
                    if not isinstance(req, dict) or not isinstance(req.get("cmd"), str):
                        raise ValueError("expected an object with a string 'cmd'")
                except ValueError as e:
                    await _send(writer, {"ok": False, "error": f"bad request: {e}"})
                    continue
                try:
                    resp = await self.handler(req)
                except Exception as e:
                    log.exception("control command %r failed", req.get("cmd"))
                    resp = {"ok": False, "error": f"{e.__class__.__name__}: {e}"}
                await _send(writer, resp)
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


async def _send(writer: asyncio.StreamWriter, obj: dict) -> None:
    writer.write(json.dumps(obj, ensure_ascii=False, default=str).encode() + b"\n")
    await writer.drain()


def _answers(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        try:
            s.connect(str(path))
            return True
        except OSError:
            return False


def request(path: Path, req: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
    """One request to the running daemon; raises :class:`DaemonUnavailable` with a one-line reason."""
    path = Path(path)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError) as e:
            raise DaemonUnavailable(f"the kiosk daemon is not running (nothing answers on {path})") from e
        except PermissionError as e:
            raise DaemonUnavailable(f"permission denied on {path}: run this command with sudo") from e
        except OSError as e:
            raise DaemonUnavailable(f"cannot reach the kiosk daemon at {path}: {e}") from e
        try:
            s.sendall(json.dumps(req, ensure_ascii=False).encode() + b"\n")
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
        except OSError as e:
            raise DaemonUnavailable(f"the kiosk daemon did not answer on {path}: {e}") from e
    if not buf:
        raise DaemonUnavailable(f"the kiosk daemon closed the connection on {path} without an answer")
    return json.loads(buf)


# ---------------------------------------------------------------------------- avatar-kiosk status


def _duration(s: float) -> str:
    s = int(s)
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return (f"{d}d " if d else "") + (f"{h}h " if d or h else "") + f"{m}m {s}s"


def format_status(st: dict[str, Any]) -> str:
    state, text = st.get("state", "?"), st.get("status", "")
    lines = [f"avatar-kiosk: {state}" + (f" — {text}" if text and text != state else "")]
    lines.append(f"  pid {st.get('pid')}, up {_duration(st.get('uptime_s', 0))}, app {st.get('app')}, "
                 f"config {st.get('config')}")
    info = st.get("info") or {}
    if "profile" in info:
        lines.append(f"  profile   {info['profile']}")
    if "maintenance_reason" in info:
        lines.append(f"  reason    {info['maintenance_reason']}")
    if info.get("fps") is not None:
        lines.append(f"  fps       {info['fps']:.1f}")
    vram = info.get("vram_mb", st.get("vram_mb"))
    lines.append(f"  vram      {f'{vram} MiB' if vram is not None else 'n/a (no NVIDIA GPU in use)'}")
    if "turns" in info:
        lines.append(f"  turns     {info['turns']}")
    if "llm_server" in info:
        srv = info["llm_server"]
        lines.append(f"  llm       {srv['url']}: " + ("answering" if srv["up"] else "NOT answering — the local model "
                     "answers meanwhile") + f"; {srv['fallbacks']} turn(s) answered locally")
    if "presence" in info:
        p = info["presence"]
        lines.append(f"  camera    {p['camera']}: " + ("reading" if p["camera_ok"] else "NOT reading — presence by "
                     "sound meanwhile") + f"; {p['visitors']} visitor(s), {p['invitations']} invitation(s), "
                     f"someone there: {'yes' if p['present'] else 'no'}, detector {p['detector_ms']} ms/frame")
    for k, v in (info.get("devices") or {}).items():
        lines.append(f"  {k:9} {v}")
    lat = st.get("latency") or {}
    if lat:
        lines.append("  latency (last turns)   p50 ms   p95 ms   n")
        for stage, d in lat.items():
            lines.append(f"    {stage:20} {d['p50']:8.0f} {d['p95']:8.0f} {d['n']:4d}")
    errs = st.get("errors") or []
    lines.append(f"  recent errors: {len(errs) or 'none'}")
    for e in errs[-5:]:
        lines.append(f"    {time.strftime('%m-%d %H:%M:%S', time.localtime(e['t']))} {e['level']:7} {e['msg']}")
    return "\n".join(lines)


def status_cmd(settings, args) -> int:
    try:
        st = request(settings.paths.control_socket, {"cmd": "status"})
    except DaemonUnavailable as e:
        print(f"avatar-kiosk: {e}", file=sys.stderr)
        print("  see: systemctl status avatar-kiosk; avatar-kiosk logs; avatar-kiosk doctor", file=sys.stderr)
        return 3
    if not st.get("ok"):
        print(f"avatar-kiosk: {st.get('error')}", file=sys.stderr)
        return 4
    print(format_status(st))
    return 0 if st.get("state") not in ("maintenance", "error") else 1


# ------------------------------------------------------------------------------ avatar-kiosk logs


def unit_installed() -> bool:
    return any(Path(d, f"{UNIT}.service").exists()
               for d in ("/etc/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system"))


def logs_cmd(settings, args) -> int:
    n = max(1, int(getattr(args, "n", 50) or 50))
    journalctl = shutil.which("journalctl")
    if journalctl is None:
        print("avatar-kiosk logs: journalctl is not installed here; when run by hand the kiosk logs to its "
              "console (stderr)", file=sys.stderr)
        return 3
    if not unit_installed():
        print(f"avatar-kiosk logs: the {UNIT} unit is not installed on this machine (a dev checkout?); "
              "install with systemd/install.sh, or read the console of `avatar-kiosk run`", file=sys.stderr)
        return 3
    cmd = [journalctl, "-u", UNIT, "-n", str(n), "-o", "cat", "--no-pager"]
    try:
        return subprocess.call(cmd)
    except OSError as e:
        print(f"avatar-kiosk logs: cannot run {' '.join(cmd)}: {e}", file=sys.stderr)
        return 3
