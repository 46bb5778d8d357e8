"""The unit files, the udev rule and the root helpers as shipped in systemd/."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

SYSTEMD = Path(__file__).resolve().parent.parent / "systemd"


def unit(name: str) -> dict[str, dict[str, list[str]]]:
    """Parse a unit file into {section: {key: [values…]}} (keys repeat in units)."""
    out: dict[str, dict[str, list[str]]] = {}
    section = None
    for raw in (SYSTEMD / name).read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = out.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        section.setdefault(key, []).append(value)
    return out


def test_kiosk_unit_is_notify_watchdog_restart_and_hardened():
    u = unit("avatar-kiosk.service")
    s = u["Service"]
    assert s["Type"] == ["notify"] and s["NotifyAccess"] == ["all"]
    assert int(s["WatchdogSec"][0]) >= 10
    assert s["Restart"] == ["on-failure"]
    assert "StartLimitBurst" in u["Unit"] and "StartLimitIntervalSec" in u["Unit"]
    assert s["User"] == ["avatar"] and s["SupplementaryGroups"] == ["audio video render"]
    for k in ("StateDirectory", "CacheDirectory", "ConfigurationDirectory"):
        assert s[k] == ["avatar-kiosk"], k
    for k, v in (("ProtectSystem", "strict"), ("PrivateTmp", "yes"), ("NoNewPrivileges", "yes"),
                 ("DevicePolicy", "closed")):
        assert s[k] == [v], k
    assert s["ProtectHome"][0] in ("yes", "read-only", "tmpfs")
    allowed = " ".join(s["DeviceAllow"])
    for dev in ("char-alsa", "char-drm", "char-video4linux", "/dev/nvidiactl", "/dev/nvidia-uvm"):
        assert dev in allowed, dev
    assert s["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert s["ExecStart"] == ["/opt/avatar-kiosk/bin/kiosk-session cage"]
    assert "/run/avatar-kiosk" in s["ReadWritePaths"]
    assert u["Install"]["WantedBy"] == ["graphical.target"]


def test_usb_unit_and_rule_mount_sticks_read_only_as_root():
    u = unit("avatar-kiosk-usb@.service")
    assert u["Service"]["Type"] == ["oneshot"] and "User" not in u["Service"]
    assert u["Service"]["ExecStart"] == ["/opt/avatar-kiosk/bin/usb-mount mount %i"]
    assert u["Unit"]["BindsTo"] == ["dev-%i.device"]
    # a private mount namespace would swallow the mount: the kiosk would never see the stick
    ns_options = {"ProtectSystem", "ProtectHome", "PrivateTmp", "PrivateDevices", "PrivateNetwork", "ProtectKernelTunables",
                  "ProtectKernelModules", "ProtectKernelLogs", "ProtectControlGroups", "ReadOnlyPaths",
                  "ReadWritePaths", "InaccessiblePaths", "TemporaryFileSystem", "BindPaths", "MountFlags"}
    assert not ns_options & set(u["Service"]), ns_options & set(u["Service"])
    rules = [ln for ln in (SYSTEMD / "99-avatar-kiosk-usb.rules").read_text().splitlines()
             if ln.strip() and not ln.startswith("#")]
    assert rules
    token = re.compile(r'^\s*([A-Z_]+(?:\{[A-Za-z_0-9]+\})?)\s*(==|!=|\+=|-=|:=|=)\s*"([^"]*)"\s*$')
    for rule in rules:
        parts = dict()
        for tok in rule.split(","):
            m = token.match(tok)
            assert m, f"not a udev rule token: {tok!r}"
            parts[m.group(1)] = (m.group(2), m.group(3))
        assert parts["ACTION"] == ("==", "add") and parts["SUBSYSTEM"] == ("==", "block")
        assert parts["ENV{ID_BUS}"] == ("==", "usb")
        assert parts["ENV{SYSTEMD_WANTS}"] == ("+=", "avatar-kiosk-usb@%k.service")
        assert parts["TAG"] == ("+=", "systemd")
    helper = (SYSTEMD / "usb-mount").read_text()
    assert 'opts="ro,nosuid,nodev,noexec' in helper and "root=/run/avatar-kiosk/usb" in helper


@pytest.mark.parametrize("dev,rc,msg", [("../etc", 2, "bad device name"), ("nvme0n1", 2, "refusing"),
                                        ("", 2, "bad device name"), ("sdzz9", 1, "not a block device")])
def test_usb_mount_refuses_anything_but_a_present_usb_disk(dev, rc, msg):
    r = subprocess.run(["sh", str(SYSTEMD / "usb-mount"), "mount", dev], capture_output=True, text=True)
    assert r.returncode == rc and msg in r.stderr


def test_kiosk_session_starts_the_daemon_in_the_chosen_display(tmp_path):
    env = {**os.environ, "AVATAR_KIOSK_BIN": "/bin/echo"}
    r = subprocess.run(["sh", str(SYSTEMD / "kiosk-session"), "direct"], env=env, capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout == "run\n"
    fake = tmp_path / "cage"
    fake.write_text('#!/bin/sh\necho "cage $*"\n')
    fake.chmod(0o755)
    env["PATH"] = f"{tmp_path}:{env['PATH']}"
    r = subprocess.run(["sh", str(SYSTEMD / "kiosk-session")], env=env, capture_output=True, text=True)
    assert r.stdout == "cage -d -s -- /bin/echo run\n"
    r = subprocess.run(["sh", str(SYSTEMD / "kiosk-session"), "weston"], env=env, capture_output=True, text=True)
    assert r.returncode == 2


def test_xorg_fallback_drop_in_replaces_exec_start():
    text = (SYSTEMD / "fallback-xorg.conf").read_text()
    assert "ExecStart=\nExecStart=/opt/avatar-kiosk/bin/kiosk-session xorg" in text


def test_pipewire_echo_cancel_makes_itself_the_default():
    text = (SYSTEMD / "pipewire-echo-cancel.conf").read_text()
    assert "libpipewire-module-echo-cancel" in text
    assert text.count("priority.session = 10000") == 2  # source and sink
    assert text.count("{") == text.count("}") and text.count("[") == text.count("]")


def test_technicians_section_lists_every_message_id():
    from appliance import logs

    text = (SYSTEMD.parent / "README.md").read_text()
    text = text[text.index("## For technicians"):]
    for name, mid in logs.MESSAGE_IDS.items():
        assert mid in text and name in text, name
    for cmd in ("avatar-kiosk status", "avatar-kiosk doctor", "journalctl -u avatar-kiosk"):
        assert cmd in text


def test_shell_scripts_pass_shellcheck():
    import shutil

    exe = shutil.which("shellcheck")
    if exe is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    r = subprocess.run([exe, "-x", "install.sh", "usb-mount", "kiosk-session"], cwd=SYSTEMD, capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stdout
