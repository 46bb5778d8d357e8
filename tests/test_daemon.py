"""The daemon as systemd runs it: a real `python -m appliance run` child, a fake NOTIFY_SOCKET, real signals."""

from __future__ import annotations

import logging
import os
import signal
import time

import pytest
from test_daemon_support import FakeSystemd, control, start_daemon, stop, wait_socket

from appliance import logs
from appliance.daemon.notify import Notifier
from appliance.daemon.status import percentile


@pytest.fixture
def systemd(tmp_path):
    fake = FakeSystemd(tmp_path / "notify.sock")
    yield fake
    fake.close()


@pytest.fixture
def procs():
    started = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_notifier_speaks_sd_notify_to_path_and_abstract_sockets(tmp_path):
    for addr in (str(tmp_path / "n.sock"), f"@avatar-kiosk-test-{os.getpid()}"):
        fake = FakeSystemd(addr)
        n = Notifier({"NOTIFY_SOCKET": addr, "WATCHDOG_USEC": "3000000", "WATCHDOG_PID": str(os.getpid())})
        assert n.watchdog_interval == 1.5
        assert n.ready("listening") and n.watchdog()
        assert fake.poll(2) == {"READY": "1", "STATUS": "listening"}
        assert fake.poll(2) == {"WATCHDOG": "1"}
        fake.close()
    # no socket: every call is a no-op; a watchdog meant for another process is not ours
    assert not Notifier({}).ready()
    assert Notifier({"WATCHDOG_USEC": "3000000", "WATCHDOG_PID": "1"}).watchdog_interval is None


def test_percentile_is_nearest_rank():
    assert percentile([100, 120, 300], 50) == 120
    assert percentile([100, 120, 300], 95) == 300
    assert percentile(list(range(1, 101)), 95) == 95
    assert percentile([7], 50) == 7


def test_ready_status_watchdog_then_sigterm(tmp_path, systemd, procs):
    p = start_daemon(tmp_path / "k", "null", systemd.path, watchdog_usec=400_000)
    procs.append(p)
    first = systemd.wait_for("MAINPID")
    assert first["MAINPID"] == str(p.pid)
    systemd.wait_for("STATUS", "loading models")
    ready = systemd.wait_for("READY", "1")
    assert ready.get("STATUS") == "listening"
    order = [next(i for i, (_, m) in enumerate(systemd.messages) if pred(m)) for pred in (
        lambda m: m.get("STATUS") == "loading models", lambda m: m.get("READY") == "1")]
    assert order[0] < order[1], "STATUS=loading models must come before READY=1"
    # pings every ~0.2 s from the loop once ready (generous: at least 3 in 2.5 s)
    pings = [m for m in systemd.drain(2.5) if m.get("WATCHDOG") == "1"]
    assert len(pings) >= 3
    took, rc, out = stop(p)
    assert rc == 0, out
    assert took < 5.0, f"SIGTERM took {took:.1f}s\n{out}"
    systemd.wait_for("STOPPING", "1", timeout=2)
    assert "avatar-kiosk stopped" in out


def test_hung_main_loop_stops_the_watchdog_pings(tmp_path, systemd, procs):
    p = start_daemon(tmp_path / "k", "hang", systemd.path, watchdog_usec=200_000,
                     extra_env={"AVATAR_KIOSK_HANG_AFTER": "0.5"})
    procs.append(p)
    systemd.wait_for("READY", "1")
    systemd.wait_for("WATCHDOG", "1", timeout=5)
    # find a silence of 2 s (10x the ping interval) within 20 s; a free-running pinger never goes quiet
    end = time.monotonic() + 20
    last_ping = time.monotonic()
    pings = 0
    while time.monotonic() < end and time.monotonic() - last_ping < 2.0:
        msg = systemd.poll(0.1)
        if msg and msg.get("WATCHDOG") == "1":
            last_ping = time.monotonic()
            pings += 1
    assert time.monotonic() - last_ping >= 2.0, "watchdog pings kept coming from a hung main loop"
    assert p.poll() is None, "the hung daemon should still be there (systemd kills it, not itself)"
    # even hung, SIGTERM gets it out within the bound (the hard-exit timer)
    took, rc, out = stop(p)
    assert took < 5.0, out
    assert rc != 0


def test_failing_health_check_stops_pings_and_says_why(tmp_path, systemd, procs):
    p = start_daemon(tmp_path / "k", "unhealthy", systemd.path, watchdog_usec=200_000,
                     extra_env={"AVATAR_KIOSK_HANG_AFTER": "0.5"})
    procs.append(p)
    systemd.wait_for("READY", "1")
    systemd.wait_for("STATUS", "error: test app: microphone delivers no frames", timeout=15)
    after = systemd.drain(1.5)
    assert not [m for m in after if m.get("WATCHDOG")], after
    took, rc, out = stop(p)
    assert rc == 0 and took < 5.0, out
    assert "withholding the watchdog ping" in out


def test_sigterm_bound_holds_when_the_app_will_not_stop(tmp_path, systemd, procs):
    p = start_daemon(tmp_path / "k", "slowstop", systemd.path)
    procs.append(p)
    systemd.wait_for("READY", "1")
    took, rc, out = stop(p)
    assert took < 5.0, f"took {took:.1f}s\n{out}"
    assert "app did not stop cleanly" in out


def test_sigterm_while_loading_exits_promptly(tmp_path, systemd, procs):
    p = start_daemon(tmp_path / "k", "slowstart", systemd.path, extra_env={"AVATAR_KIOSK_HANG_AFTER": "60"})
    procs.append(p)
    systemd.wait_for("STATUS", "loading models")
    took, rc, out = stop(p)
    assert took < 5.0 and rc == 0, out
    assert not [m for _, m in systemd.messages if m.get("READY")], "never READY: it was stopped while loading"


def test_model_that_fails_to_load_shows_maintenance_and_stays_up(tmp_path, systemd, procs):
    home = tmp_path / "k"
    p = start_daemon(home, "fail", systemd.path, watchdog_usec=400_000)
    procs.append(p)
    ready = systemd.wait_for("READY", "1")
    assert ready["STATUS"].startswith("error: RuntimeError: model 'whisper-base' failed to load")
    sock = home / "run" / "control.sock"
    wait_socket(sock)
    st = control(sock, {"cmd": "status"})
    assert st["state"] == "maintenance" and st["app"] == "MaintenanceApp"
    assert "whisper-base" in st["info"]["maintenance_reason"]
    assert any("could not start" in e["msg"] for e in st["errors"])
    # it stays up and healthy: the pings go on
    assert [m for m in systemd.drain(1.5) if m.get("WATCHDOG")]
    assert p.poll() is None
    took, rc, out = stop(p)
    assert rc == 0 and took < 5.0, out


def test_sighup_reloads_the_config_and_survives_a_bad_one(tmp_path, systemd, procs):
    home = tmp_path / "k"
    home.mkdir()
    cfg = home / "config.toml"
    cfg.write_text("[display]\nfullscreen = false\n")
    p = start_daemon(home, "null", systemd.path)
    procs.append(p)
    systemd.wait_for("READY", "1")
    sock = home / "run" / "control.sock"
    wait_socket(sock)
    cfg.write_text("[display]\nfullscreen = true\n")
    p.send_signal(signal.SIGHUP)
    systemd.wait_for("RELOADING", "1", timeout=10)
    end = time.monotonic() + 10
    while control(sock, {"cmd": "status"})["reloads"] < 1 and time.monotonic() < end:
        time.sleep(0.05)
    st = control(sock, {"cmd": "status"})
    assert st["reloads"] == 1 and st["info"]["reloads"] == 1
    cfg.write_text("[display]\nfullscreen = 3\n")
    p.send_signal(signal.SIGHUP)
    end = time.monotonic() + 10
    while time.monotonic() < end:
        st = control(sock, {"cmd": "status"})
        if any("reload refused" in e["msg"] for e in st["errors"]):
            break
        time.sleep(0.05)
    assert any("display.fullscreen = 3" in e["msg"] for e in st["errors"]), st["errors"]
    assert st["reloads"] == 1 and st["state"] == "listening"
    took, rc, out = stop(p)
    assert rc == 0, out


def test_runs_without_systemd(tmp_path, procs):
    home = tmp_path / "k"
    p = start_daemon(home, "null", None)
    procs.append(p)
    sock = home / "run" / "control.sock"
    wait_socket(sock)
    end = time.monotonic() + 15
    while control(sock, {"cmd": "status"})["state"] != "listening" and time.monotonic() < end:
        time.sleep(0.05)
    assert control(sock, {"cmd": "status"})["state"] == "listening"
    took, rc, out = stop(p, signal.SIGINT)
    assert rc == 0 and took < 5.0, out
    assert not (home / "run" / "control.sock").exists(), "the socket is removed on a clean stop"


def test_app_that_finishes_ends_the_daemon_with_its_exit_code(tmp_path, systemd, procs):
    p = start_daemon(tmp_path / "k", "null", systemd.path, args=("--exit-after", "0.5"))
    procs.append(p)
    systemd.wait_for("READY", "1")
    rc = p.wait(15)
    assert rc == 0
    assert "the app finished" in p.stdout.read()


def test_usb_stick_mounted_by_the_helper_reaches_the_app(tmp_path, procs):
    home = tmp_path / "k"
    p = start_daemon(home, "null", None)
    procs.append(p)
    sock = home / "run" / "control.sock"
    wait_socket(sock)
    (home / "run" / "usb" / "sdb1").mkdir(parents=True)  # dev checkout: a folder stands for a mount
    end = time.monotonic() + 15
    while time.monotonic() < end and not control(sock, {"cmd": "status"})["info"].get("sticks"):
        time.sleep(0.1)
    assert control(sock, {"cmd": "status"})["info"]["sticks"] == [str(home / "run" / "usb" / "sdb1")]
    stop(p)


def test_usb_watcher_counts_only_mount_points_on_the_box(tmp_path):
    from appliance.daemon.usb import UsbWatcher

    (tmp_path / "sdb1").mkdir()
    (tmp_path / "sdc1").mkdir()
    mounted = {str(tmp_path / "sdb1")}
    w = UsbWatcher(tmp_path, require_mount=True, is_mount=lambda p: p in mounted)
    assert w.scan() == ([tmp_path / "sdb1"], [])
    assert w.scan() == ([], [])
    mounted.clear()
    assert w.scan() == ([], [tmp_path / "sdb1"])
    assert UsbWatcher(tmp_path / "missing").scan() == ([], [])


def test_maintenance_screen_provisions_from_a_stick_and_asks_for_a_restart(settings, tmp_path, monkeypatch):
    import asyncio
    from types import SimpleNamespace

    pipeline = pytest.importorskip("provisioning.pipeline")  # lands with the provisioning work
    from appliance.daemon.apps import EX_TEMPFAIL, MaintenanceApp

    stick = tmp_path / "stick"
    stick.mkdir()
    (stick / "junk.txt").write_text("not a bundle")
    app = MaintenanceApp(settings, "no profile provisioned", headless=True)

    async def go():
        await app.start()
        await app.provision(stick)  # the real pipeline: refuses, nothing changes
        assert app.exit_code is None and "did not help" in app.reason and app.state == "maintenance"
        seen = []

        def fake(settings, path, on_progress):
            on_progress("Copying from the USB stick", 0.5)
            seen.append(path)
            return SimpleNamespace(ok=True, message="ok")

        monkeypatch.setattr(pipeline, "provision", fake)
        await app.provision(stick)
        await asyncio.sleep(0)
        assert seen == [stick] and app.exit_code == EX_TEMPFAIL
        await app.stop()

    asyncio.run(go())


def test_sigterm_does_not_wait_for_a_busy_inference_thread(tmp_path, systemd, procs):
    p = start_daemon(tmp_path / "k", "busy", systemd.path)
    procs.append(p)
    systemd.wait_for("READY", "1")
    took, rc, out = stop(p)
    assert took < 5.0 and rc == 0, f"{took:.1f}s rc={rc}\n{out}"
    assert "leaving 1 busy worker thread(s) behind" in out and "exiting hard" not in out


def test_box_mode_uses_the_directories_systemd_passes(tmp_path, systemd, procs):
    box = tmp_path / "box"
    env = {"AVATAR_KIOSK_MODE": "box", "STATE_DIRECTORY": str(box / "state"), "CACHE_DIRECTORY": str(box / "cache"),
           "RUNTIME_DIRECTORY": str(box / "run"), "CONFIGURATION_DIRECTORY": str(box / "etc")}
    (box / "etc").mkdir(parents=True)
    (box / "etc" / "config.toml").write_text("[display]\nfullscreen = true\n")
    p = start_daemon(tmp_path / "unused", "null", systemd.path, extra_env=env)
    procs.append(p)
    systemd.wait_for("READY", "1")
    st = control(box / "run" / "control.sock", {"cmd": "status"})
    assert st["config"] == str(box / "etc" / "config.toml")
    assert (box / "state" / "profiles").is_dir() and (box / "cache").is_dir()
    # on the box only real mount points are sticks: a plain folder is not
    (box / "run" / "usb" / "sdb1").mkdir(parents=True)
    time.sleep(1.5)
    assert control(box / "run" / "control.sock", {"cmd": "status"})["info"]["sticks"] == []
    took, rc, out = stop(p)
    assert rc == 0, out


def test_broken_config_at_start_shows_maintenance_until_it_is_fixed(tmp_path, systemd, procs):
    """A config.toml that does not parse must not leave the screen dark (systemd would not restart a
    configuration error): the daemon comes up on its defaults behind the maintenance screen, says
    which key is wrong, and the real app starts once the file is fixed and reloaded."""
    home = tmp_path / "k"
    home.mkdir()
    cfg = home / "config.toml"
    cfg.write_text("[vad]\naggressiveness = 7\n")
    p = start_daemon(home, "null", systemd.path, watchdog_usec=400_000)
    procs.append(p)
    ready = systemd.wait_for("READY", "1")
    assert ready["STATUS"].startswith("error: config: vad.aggressiveness = 7 is out of range"), ready
    sock = home / "run" / "control.sock"
    wait_socket(sock)
    st = control(sock, {"cmd": "status"})
    assert st["state"] == "maintenance" and "config.toml" in st["info"]["maintenance_reason"]
    assert any("config is broken" in e["msg"] for e in st["errors"])
    assert [m for m in systemd.drain(1.5) if m.get("WATCHDOG")]  # up and pinging, not crash-looping
    cfg.write_text("[vad]\naggressiveness = 2\n")
    p.send_signal(signal.SIGHUP)
    end = time.monotonic() + 10
    while time.monotonic() < end and control(sock, {"cmd": "status"})["state"] != "listening":
        time.sleep(0.05)
    st = control(sock, {"cmd": "status"})
    assert st["state"] == "listening" and st["app"] == "NullApp", st
    took, rc, out = stop(p)
    assert rc == 0, out


def test_engines_that_do_not_fit_the_gpu_show_maintenance_before_loading(settings, monkeypatch, caplog):
    """The real load path on a box whose GPU is too small for the configured engines: VramError
    before any model loads, and the daemon puts the reason on the maintenance screen."""
    import asyncio
    from types import SimpleNamespace

    from appliance import config as config_mod
    from appliance.daemon.service import Kiosk
    from appliance.engines import factory, select
    from appliance.paths import Settings

    monkeypatch.setattr(select, "cuda_available", lambda: True)  # a GPU box…
    monkeypatch.setattr(select, "gpu_total_mb", lambda: 4096)    # …with a 4 GB card
    cfg = config_mod.replace(settings.config, "llm", n_gpu_layers=-1, n_ctx=32768)
    s = Settings(cfg, settings.paths)
    loaded = []
    monkeypatch.setattr(factory, "make", lambda *a: loaded.append(a))
    with pytest.raises(select.VramError, match=r"need \d+ MB but this GPU allows 2048 MB"):
        factory.load(s)
    assert loaded == []  # nothing was loaded into a GPU that cannot hold it

    def app_factory(settings, args):
        return SimpleNamespace(start=lambda: asyncio.sleep(0, factory.load(settings)))

    kiosk = Kiosk(s, SimpleNamespace(headless=True), app_factory=app_factory)

    async def go():
        await kiosk._start_app()
        app = kiosk.app
        assert type(app).__name__ == "MaintenanceApp" and "VramError" in app.reason and "n_ctx" in app.reason
        await app.stop()

    with caplog.at_level(logging.ERROR):
        asyncio.run(go())
    rec = next(r for r in caplog.records if "could not start" in r.getMessage())
    assert rec.message_id == logs.MODEL_LOAD_FAILED and rec.code == "vram_plan"
