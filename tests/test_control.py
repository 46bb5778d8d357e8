"""The control socket's mechanics (permissions, peer check, framing, stale sockets) and the technician
commands, against a real daemon child running a stand-in app. What the real kiosk answers to
``say`` and ``ask`` is tested through its front door in test_kiosk_app.py."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import time

import pytest
from test_daemon_support import REPO, control, start_daemon, stop, wait_socket

from appliance.daemon import control as control_mod

NOBODY = 65534


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    home = tmp_path_factory.mktemp("ctl") / "k"
    p = start_daemon(home, "null", None)
    sock = home / "run" / "control.sock"
    try:
        wait_socket(sock)
        end = time.monotonic() + 15
        while control(sock, {"cmd": "status"})["state"] != "listening" and time.monotonic() < end:
            time.sleep(0.05)
        yield home, sock, p
    finally:
        if p.poll() is None:
            stop(p)


def _as_other_user(sock_dir, uid: int = NOBODY) -> dict:
    """Connect from a forked child running as ``uid`` (SO_PEERCRED sees that uid); return what it got."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            os.close(r)
            os.chdir(sock_dir)  # a relative connect needs no search permission on the parents
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                    s.settimeout(5)
                    s.connect("control.sock")
                    s.sendall(b'{"cmd": "status"}\n')
                    data = s.makefile("rb").readline()
                out = {"connected": True, "reply": json.loads(data) if data else None}
            except OSError as e:
                out = {"connected": False, "errno": e.errno, "error": str(e)}
            os.write(w, json.dumps(out).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as fh:
        data = fh.read()
    os.waitpid(pid, 0)
    return json.loads(data)


def test_socket_is_0660_and_answers_root(daemon):
    _home, sock, _p = daemon
    assert stat.S_IMODE(os.stat(sock).st_mode) == 0o660
    assert stat.S_ISSOCK(os.stat(sock).st_mode)
    st = control(sock, {"cmd": "status"})
    assert st["ok"] and st["state"] == "listening" and st["app"] == "NullApp"
    assert st["latency"]["stt"] == {"p50": 120.0, "p95": 300.0, "n": 3}


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch to another uid")
def test_file_permissions_keep_other_users_out(daemon):
    _home, sock, _p = daemon
    got = _as_other_user(sock.parent)
    assert got["connected"] is False and got["errno"] == 13, got  # EACCES from the 0660 mode


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch to another uid")
def test_peer_uid_check_refuses_other_users_even_when_the_file_lets_them_in(daemon):
    _home, sock, _p = daemon
    os.chmod(sock, 0o666)
    try:
        got = _as_other_user(sock.parent)
    finally:
        os.chmod(sock, 0o660)
    assert got["connected"] is True, got
    assert got["reply"]["ok"] is False
    assert got["reply"]["error"].startswith(f"refused: uid {NOBODY}")
    # the daemon logged it, and root still gets in
    assert any(f"uid {NOBODY}" in e["msg"] for e in control(sock, {"cmd": "status"})["errors"])


def test_app_commands_pass_through_to_the_app_and_bad_requests_get_one_line(daemon):
    _home, sock, _p = daemon
    assert control(sock, {"cmd": "say", "text": "Привет"}) == {"ok": True, "said": "Привет"}
    assert control(sock, {"cmd": "status"})["info"]["turns"] >= 1
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(str(sock))
        f = s.makefile("rwb")
        for line in (b"not json\n", b'{"nocmd": 1}\n', b'{"cmd": "ping"}\n'):
            f.write(line)
            f.flush()
        replies = [json.loads(f.readline()) for _ in range(3)]
    assert [r["ok"] for r in replies] == [False, False, True]
    assert replies[0]["error"].startswith("bad request")


def _cli(home, *argv) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("AVATAR_KIOSK_CONFIG", "AVATAR_KIOSK_MODE")}
    env["AVATAR_KIOSK_HOME"] = str(home)
    return subprocess.run([sys.executable, "-m", "appliance", *argv], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=60)


def test_status_command_prints_the_running_kiosk(daemon):
    home, _sock, _p = daemon
    r = _cli(home, "status")
    assert r.returncode == 0, r.stderr
    assert "avatar-kiosk: listening" in r.stdout
    assert "p50 ms" in r.stdout and "stt" in r.stdout
    assert "vram" in r.stdout


def test_status_and_doctor_when_no_daemon_runs(tmp_path):
    r = _cli(tmp_path / "none", "status")
    assert r.returncode == 3
    assert "not running" in r.stderr
    r = _cli(tmp_path / "none", "doctor", "--quick")
    assert "INFO  daemon" in r.stdout and "checks ran directly" in r.stdout
    assert "PASS  config" in r.stdout


def test_second_daemon_refuses_to_steal_the_socket(daemon, tmp_path):
    home, sock, _p = daemon
    p2 = start_daemon(home, "null", None)
    try:
        rc = p2.wait(30)
    finally:
        if p2.poll() is None:
            p2.kill()
    assert rc == 1
    assert "already serving" in p2.stdout.read()
    assert control(sock, {"cmd": "ping"})["ok"]


def test_stale_socket_from_a_killed_daemon_is_replaced(tmp_path):
    home = tmp_path / "k"
    (home / "run").mkdir(parents=True)
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(home / "run" / "control.sock"))
    dead.close()  # the file stays, nobody listens
    p = start_daemon(home, "null", None)
    try:
        wait_socket(home / "run" / "control.sock")
    finally:
        stop(p)


def test_logs_command_says_clearly_when_there_is_no_unit(tmp_path, monkeypatch, capsys):
    class A:
        n = 5

    monkeypatch.setattr(control_mod, "unit_installed", lambda: False)
    assert control_mod.logs_cmd(None, A()) == 3
    assert "not installed on this machine" in capsys.readouterr().err
    monkeypatch.setenv("PATH", str(tmp_path))  # no journalctl at all
    assert control_mod.logs_cmd(None, A()) == 3
    assert "journalctl is not installed" in capsys.readouterr().err


def test_logs_command_runs_journalctl_for_the_unit(tmp_path, monkeypatch, capfd):
    fake = tmp_path / "journalctl"
    fake.write_text("#!/bin/sh\necho \"journalctl $*\"\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(control_mod, "unit_installed", lambda: True)

    class A:
        n = 7

    assert control_mod.logs_cmd(None, A()) == 0
    assert "journalctl -u avatar-kiosk -n 7 -o cat --no-pager" in capfd.readouterr().out
