"""doctor's checks against a fake machine tree (a real box's /dev, /proc, /sys and nvidia-smi), and on this one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from appliance import config as config_mod
from appliance import models as models_mod
from appliance import paths as paths_mod
from appliance.daemon import doctor

REPO = Path(__file__).resolve().parent.parent


def _box(tmp: Path, *, sound=True, drm=True, gpu_csv: str | None = "NVIDIA GeForce RTX 3060, 550.120, 12288, 300",
         modeset="Y") -> doctor.Machine:
    dev, proc, sysd, bin_ = tmp / "dev", tmp / "proc", tmp / "sys", tmp / "bin"
    for d in (dev, proc / "asound", sysd / "module" / "nvidia" , bin_):
        d.mkdir(parents=True, exist_ok=True)
    if sound:
        (dev / "snd").mkdir()
        for n in ("pcmC0D0c", "pcmC1D3p", "controlC0"):
            (dev / "snd" / n).touch()
        (proc / "asound" / "cards").write_text(
            " 0 [Device         ]: USB-Audio - USB PnP Sound Device\n                      C-Media\n"
            " 1 [NVidia         ]: HDA-Intel - HDA NVidia\n                      HDA NVidia at 0xfc080000\n")
    if drm:
        (dev / "dri").mkdir()
        (dev / "dri" / "card0").touch()
    (sysd / "module" / "nvidia_drm" / "parameters").mkdir(parents=True)
    (sysd / "module" / "nvidia_drm" / "parameters" / "modeset").write_text(modeset + "\n")
    if gpu_csv is not None:
        smi = bin_ / "nvidia-smi"
        smi.write_text(f"#!/bin/sh\necho '{gpu_csv}'\n")
        smi.chmod(0o755)
    return doctor.Machine(dev=dev, proc=proc, sys=sysd, path=str(bin_))


def _by_name(checks):
    return {c[0]: c for c in checks}


def test_a_healthy_box_passes_its_device_checks(settings, tmp_path):
    m = _box(tmp_path)
    got = _by_name(doctor.run_checks(settings, m, quick=True))
    assert got["microphone"][1] is True and "USB PnP Sound Device" in got["microphone"][2]
    assert got["speaker"][1] is True and "HDA NVidia" in got["speaker"][2]
    assert got["display"][1] is True and "card0" in got["display"][2]
    assert got["gpu"][1] is True and "RTX 3060" in got["gpu"][2] and "300/12288 MiB" in got["gpu"][2]
    for name, c in got.items():
        if name.startswith("model "):
            assert c[1] is True, c


def test_a_box_without_sound_gpu_or_kms_says_what_to_fix(settings, tmp_path):
    m = _box(tmp_path, sound=False, drm=True, gpu_csv=None, modeset="N")
    got = _by_name(doctor.run_checks(settings, m, quick=True))
    assert got["microphone"][1] is False and "no sound card" in got["microphone"][2] and got["microphone"][3]
    assert got["speaker"][1] is False
    assert got["gpu"][1] is False and "nvidia-smi not found" in got["gpu"][2] and "ubuntu-drivers" in got["gpu"][3]
    assert got["display"][1] is False and "modeset" in got["display"][3]
    line = doctor.format_check(got["gpu"])
    assert line.startswith("FAIL  gpu") and "-> fix:" in line and "\n" not in line


def test_configured_device_name_must_match_a_card(settings, tmp_path):
    s = paths_mod.Settings(config_mod.replace(settings.config, "audio", input_device="Jabra"), settings.paths)
    name, ok, detail, fix = doctor.check_audio(s, _box(tmp_path), "in")
    assert ok is False and "'Jabra'" in detail and "USB PnP Sound Device" in detail


def test_vram_too_small_for_the_configured_models(settings, tmp_path):
    s = paths_mod.Settings(config_mod.replace(settings.config, "llm", model="qwen2.5-7b-instruct-q4km"),
                           settings.paths)
    _, ok, detail, _ = doctor.check_gpu(s, _box(tmp_path, gpu_csv="NVIDIA T400, 550.1, 2048, 10"))
    assert ok is False and "the configured models need ~" in detail and "2048 MiB" in detail


def test_models_missing_or_corrupt_are_named_with_the_fix(settings, tmp_path):
    models = tmp_path / "models"
    bad = models / "realesrgan-x4plus-ncnn"
    bad.mkdir(parents=True)
    (bad / "realesrgan-x4plus.param").write_bytes(b"\0" * 116029)  # right size, wrong content
    p = paths_mod.Paths(**{**settings.paths.__dict__, "models_dir": models})
    s = paths_mod.Settings(settings.config, p)
    got = _by_name(doctor.check_models(s, doctor.Machine(), full=True))
    c = got["model realesrgan-x4plus-ncnn"]
    assert c[1] is False and "sha256" in c[2] and "models install" in c[3]
    assert got["model whisper-base"][1] is False and "no file" in got["model whisper-base"][2]
    assert got["model mesh-warp"][1] is True


def test_profile_and_clock(settings, tmp_path):
    assert doctor.check_profile(settings, doctor.Machine())[1] is False
    prof = settings.paths.profiles_dir / "anna-1"
    prof.mkdir(parents=True)
    settings.paths.current_profile.symlink_to("anna-1")
    assert doctor.check_profile(settings, doctor.Machine())[1:3] == (True, "anna-1")
    assert doctor.check_clock(settings, doctor.Machine(), now=86400.0)[1] is False
    assert doctor.check_clock(settings, doctor.Machine())[1] is True


def test_doctor_on_this_machine_names_what_a_real_box_would_lack(settings):
    """The real command on this machine: every FAIL carries its fix on the same line, the exit code
    follows the FAILs, and what any machine has (config, disk, clock, the installed embedded models)
    passes. Which devices fail here is the fake-tree tests' business, not a recomputation here."""
    env = {**os.environ, "AVATAR_KIOSK_CONFIG": str(settings.paths.config_file)}
    r = subprocess.run([sys.executable, "-m", "appliance", "doctor"], cwd=REPO, env=env, capture_output=True,
                       text=True, timeout=120)
    lines = r.stdout.splitlines()
    checks = [ln for ln in lines if ln[:4] in ("PASS", "FAIL", "INFO", "WARN")]
    fails = [ln for ln in checks if ln.startswith("FAIL")]
    assert lines[-1] == (f"{len(fails)} problem(s)" if fails else "all checks passed"), r.stdout
    assert r.returncode == (1 if fails else 0)
    assert all("-> fix:" in ln for ln in fails), fails
    tags = {ln.split()[1]: ln.split()[0] for ln in checks}
    for always in ("config", "disk", "clock"):
        assert tags[always] == "PASS", r.stdout
    embedded = {m.id for m in models_mod.load_manifest(REPO / "models" / "manifest.toml").for_tier("embedded")}
    model_lines = {ln.split()[2]: ln.split()[0] for ln in checks if ln.split()[1] == "model"}
    assert embedded <= set(model_lines), (embedded, model_lines)
    assert all(model_lines[m] == "PASS" for m in embedded), r.stdout


def test_box_setup_check_names_what_install_sh_would_fix(settings, tmp_path, monkeypatch):
    import grp
    import pwd
    from types import SimpleNamespace

    def no_user(name):
        raise KeyError(name)

    monkeypatch.setattr(pwd, "getpwnam", no_user)
    name, ok, detail, fix = doctor.check_box_setup(settings, doctor.Machine(path=str(tmp_path)))
    assert (name, ok) == ("box setup", False)
    assert "no user avatar" in detail and "no display server" in detail and "install.sh" in fix
    # the user exists but install.sh's groups were never added: the fix is the exact usermod
    monkeypatch.setattr(pwd, "getpwnam", lambda n: SimpleNamespace(pw_name=n))
    monkeypatch.setattr(grp, "getgrall", lambda: [SimpleNamespace(gr_name="audio", gr_mem=["avatar"])])
    cage = tmp_path / "cage"
    cage.write_text("#!/bin/sh\n")
    cage.chmod(0o755)
    name, ok, detail, fix = doctor.check_box_setup(settings, doctor.Machine(path=str(tmp_path)))
    assert ok is False and "not in group(s) video, render" in detail
    assert fix.startswith("sudo usermod -aG video,render avatar")


def test_doctor_warns_when_a_production_engine_falls_back(settings):
    from appliance import config as config_mod
    from appliance import paths as paths_mod
    from appliance.daemon.doctor import check_engines

    name, ok, detail, _fix = check_engines(settings, None)
    assert (name, ok) == ("engines", True) and "llm qwen2.5-coder-1.5b-q4km" in detail
    cfg = config_mod.replace(settings.config, "tts", engine="xtts")
    name, ok, detail, _fix = check_engines(paths_mod.Settings(cfg, settings.paths), None)
    assert ok is None and detail.startswith("warning: tts: xtts") and "using piper-espeak" in detail


def test_doctor_reports_the_camera(settings, tmp_path):
    m = _box(tmp_path)
    none = _by_name(doctor.run_checks(settings, m, quick=True))["camera"]
    assert none[1] is None and "none configured" in none[2] and "[presence] camera" in none[2]
    (m.dev / "video0").touch()
    plugged = doctor.check_camera(settings, m, quick=True)
    assert plugged[1] is None and "video0" in plugged[2]
    with_cam = paths_mod.Settings(config_mod.replace(settings.config, "presence", camera="/dev/video2"),
                                  settings.paths)
    missing = doctor.check_camera(with_cam, m, quick=True)
    assert missing[1] is False and "video2 does not exist" in missing[2] and "video0" in missing[2]
    assert "v4l2-ctl" in missing[3]
    there = doctor.check_camera(paths_mod.Settings(config_mod.replace(settings.config, "presence", camera="0"),
                                                   settings.paths), m, quick=True)
    assert there[1] is True and "video0" in there[2]


def test_doctor_reads_a_frame_from_a_video_file_camera(settings, tmp_path):
    from support import scenes

    video = scenes.write_scene(tmp_path / "hall.avi", [("close", 1.0)], fps=5)
    s = paths_mod.Settings(config_mod.replace(settings.config, "presence", camera=str(video)), settings.paths)
    c = doctor.check_camera(s, doctor.Machine())
    assert c[1] is True and "stands in for the camera" in c[2]
    probe = doctor._probe_camera(str(video), s.config.presence)
    assert probe[1] is True and "640x480" in probe[2] and "1 face(s) in view (1 close and looking)" in probe[2], probe
