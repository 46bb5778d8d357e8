"""``avatar-kiosk doctor``: everything a real box needs, one line per check, each failure with its fix.

Checks are small functions returning ``(name, ok, detail, fix)``; ``ok`` is True (PASS), False
(FAIL) or None (INFO: worth knowing, not a fault). They read the machine directly — device nodes,
/proc, nvidia-smi, the model files — so doctor works whether or not the daemon runs; a running
daemon only adds its own state line. Exit status: 0 when nothing failed, 1 otherwise.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import models as models_mod
from . import control

Check = tuple[str, "bool | None", str, str]
MIN_FREE_GB = 2.0
EARLIEST_PLAUSIBLE = 1767225600  # 2026-01-01: a clock before this was reset (dead RTC battery)


@dataclass
class Machine:
    """Where the checks look; tests point these at a fake tree."""

    dev: Path = Path("/dev")
    proc: Path = Path("/proc")
    sys: Path = Path("/sys")
    path: str | None = None  # $PATH for nvidia-smi / cage (None = the process's)
    extra_lib_dirs: list[Path] = field(default_factory=list)

    def which(self, name: str) -> str | None:
        return shutil.which(name, path=self.path)


def _cards(m: Machine) -> dict[str, str]:
    """ALSA card number -> name, from /proc/asound/cards."""
    out = {}
    try:
        text = (m.proc / "asound" / "cards").read_text()
    except OSError:
        return out
    for line in text.splitlines():
        head, _, name = line.partition("]:")
        num = head.strip().split(" ")[0]
        if num.isdigit():
            out[num] = name.strip()
    return out


def _pcm(m: Machine, kind: str) -> list[str]:
    """Card names with a capture ('c') or playback ('p') PCM device node."""
    cards = _cards(m)
    found = []
    for node in sorted(glob.glob(str(m.dev / "snd" / f"pcmC*D*{kind}"))):
        card = Path(node).name[4:].split("D")[0]
        name = cards.get(card, f"card {card}")
        if name not in found:
            found.append(name)
    return found


def check_audio(settings: Any, m: Machine, kind: str) -> Check:
    name, letter = ("microphone", "c") if kind == "in" else ("speaker", "p")
    want = settings.config.audio.input_device if kind == "in" else settings.config.audio.output_device
    found = _pcm(m, letter)
    if not (m.dev / "snd").is_dir():
        return (name, False, f"no sound card: {m.dev / 'snd'} does not exist",
                "plug in the USB microphone/speaker (or enable the onboard audio in the BIOS); check `aplay -l`")
    if not found:
        what = "capture" if kind == "in" else "playback"
        return (name, False, f"no {what} device in {m.dev / 'snd'}",
                f"plug in the {name}; `{'arecord' if kind == 'in' else 'aplay'} -l` must list it")
    if want and not any(want.lower() in c.lower() for c in found):
        return (name, False, f"audio.{'input' if kind == 'in' else 'output'}_device = {want!r} matches none of: "
                f"{', '.join(found)}", "plug that device in, or fix the name in /etc/avatar-kiosk/config.toml")
    return (name, True, f"{len(found)} device(s): {', '.join(found)}", "")


def check_display(settings: Any, m: Machine) -> Check:
    cards = sorted(glob.glob(str(m.dev / "dri" / "card*")))
    if not cards:
        return ("display", False, f"no display device ({m.dev / 'dri' / 'card*'} missing)",
                "install the NVIDIA driver with nvidia-drm.modeset=1 (systemd/install.sh does), connect the "
                "screen, reboot")
    modeset = m.sys / "module" / "nvidia_drm" / "parameters" / "modeset"
    if (m.sys / "module" / "nvidia").exists() and modeset.exists() and modeset.read_text().strip() != "Y":
        return ("display", False, "nvidia-drm is loaded without modeset=1: no KMS for the kiosk compositor",
                "echo 'options nvidia-drm modeset=1' | sudo tee /etc/modprobe.d/avatar-kiosk-nvidia.conf; "
                "sudo update-initramfs -u; reboot")
    driver = settings.config.display.sdl_driver or "SDL's choice"
    return ("display", True, f"{', '.join(Path(c).name for c in cards)}; SDL driver {driver}", "")


def _nvidia_smi(m: Machine) -> tuple[str | None, str]:
    exe = m.which("nvidia-smi")
    if exe is None:
        return None, "nvidia-smi not found: no NVIDIA driver installed"
    try:
        r = subprocess.run([exe, "--query-gpu=name,driver_version,memory.total,memory.used",
                            "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError) as e:
        return None, f"nvidia-smi failed: {e}"
    if r.returncode != 0 or not r.stdout.strip():
        return None, f"nvidia-smi failed: {(r.stderr or r.stdout).strip().splitlines()[:1]}"
    return r.stdout.strip().splitlines()[0], ""


def _configured_models(settings: Any, manifest: models_mod.Manifest) -> list[models_mod.Model]:
    """The embedded defaults (always the fallback) plus every model the config names."""
    cfg = settings.config
    ids = [m.id for m in manifest.for_tier("embedded")]
    named = [cfg.stt.model, cfg.llm.model, cfg.tts.english_voice]
    if cfg.tts.engine == "xtts":
        named.append(cfg.tts.model)
    if cfg.face.engine == "neural-lipsync":
        named.append(cfg.face.lipsync_model)
    ids += [i for i in named if i not in ids]
    out = []
    for i in ids:
        try:
            out.append(manifest.get(i))
        except models_mod.ModelError:
            out.append(models_mod.Model(id=i, role="?", tier="?", engine="?", licence="?"))
    return out


def check_gpu(settings: Any, m: Machine) -> Check:
    line, err = _nvidia_smi(m)
    if line is None:
        return ("gpu", False, err, "install the NVIDIA driver: sudo ubuntu-drivers install; sudo reboot "
                "(the kiosk still runs its CPU defaults meanwhile)")
    parts = [p.strip() for p in line.split(",")]
    name, driver = parts[0], parts[1] if len(parts) > 1 else "?"
    total = int(parts[2]) if len(parts) > 2 and parts[2].isdigit() else 0
    used = int(parts[3]) if len(parts) > 3 and parts[3].isdigit() else 0
    try:
        manifest = models_mod.load_manifest(settings.paths.manifest)
        need = sum(x.vram_mb for x in _configured_models(settings, manifest))
    except (OSError, models_mod.ModelError):
        need = 0
    detail = f"{name}, driver {driver}, VRAM {used}/{total} MiB used"
    if need and total and need > total:
        return ("gpu", False, f"{detail}; the configured models need ~{need} MiB",
                "choose smaller production models in /etc/avatar-kiosk/config.toml (stt.model, llm.model)")
    return ("gpu", True, detail + (f"; configured models need ~{need} MiB" if need else ""), "")


def check_engines(settings: Any, m: Machine) -> Check:
    """Which engines will really run: a production engine without its weights (or without a GPU)
    falls back to the embedded default — a warning, not a failure: the kiosk still talks."""
    from ..engines.select import RTX3060_MB, gpu_total_mb, resolve, vram_plan

    manifest = models_mod.load_manifest(settings.paths.manifest)
    cfg, fallbacks = resolve(settings.config, manifest, settings.paths.models_dir)
    plan = vram_plan(cfg, manifest, gpu_total_mb() or RTX3060_MB)
    running = f"stt {cfg.stt.model}/{cfg.stt.device}, llm {cfg.llm.model}, tts {cfg.tts.engine}, face {cfg.face.engine}"
    if plan.items and not plan.fits:
        return ("engines", False, f"{running}; {plan.describe()}", "use smaller models or a shorter llm.n_ctx")
    if fallbacks:
        return ("engines", None, "warning: " + "; ".join(f.describe() for f in fallbacks) + f" — running {running}", "")
    return ("engines", True, running + (f"; {plan.describe()}" if plan.items else ""), "")


def check_llm_server(settings: Any, m: Machine) -> Check:
    """llm.engine = "openai-server": the key file is the service's alone, and the server answers. A
    server that does not answer is a warning: the local model answers the kiosk's turns meanwhile."""
    from ..engines import EngineError
    from ..engines.llm_remote import endpoint_of
    from ..engines.openai_stream import answers

    cfg = settings.config.llm
    try:
        endpoint = endpoint_of(cfg)
    except EngineError as e:
        return ("llm server", False, str(e), "see the message; then sudo systemctl restart avatar-kiosk")
    if answers(endpoint, timeout=3.0):
        return ("llm server", True, f"{cfg.server_url} answers", "")
    return ("llm server", None, f"warning: {cfg.server_url} does not answer (down, unreachable, a wrong key or CA) — "
            "the local model answers every turn meanwhile", "")


def check_cuda(settings: Any, m: Machine) -> Check:
    found = ctypes.util.find_library("cudart")
    if not found:
        pats = [str(d / "libcudart.so*") for d in m.extra_lib_dirs]
        pats.append(os.path.join(sys.prefix, "lib", "python3*", "site-packages", "nvidia", "cuda_runtime",
                                 "lib", "libcudart.so*"))
        hits = [h for p in pats for h in glob.glob(p)]
        found = hits[0] if hits else None
    if not found:
        return ("cuda runtime", False, "libcudart not found (no CUDA runtime)",
                "sudo apt-get install nvidia-cuda-toolkit, or pip install nvidia-cuda-runtime-cu12 into "
                "/opt/avatar-kiosk/venv")
    try:
        ctypes.CDLL(found)
    except OSError as e:
        return ("cuda runtime", False, f"{found} does not load: {e}", "reinstall the CUDA runtime")
    return ("cuda runtime", True, str(found), "")


def check_models(settings: Any, m: Machine, *, full: bool = True) -> list[Check]:
    try:
        manifest = models_mod.load_manifest(settings.paths.manifest)
    except (OSError, models_mod.ModelError) as e:
        return [("models", False, f"manifest {settings.paths.manifest}: {e}", "reinstall the kiosk")]
    out = []
    for model in _configured_models(settings, manifest):
        label = f"model {model.id}"
        if model.role == "?":
            out.append((label, False, "named in the config but not in models/manifest.toml",
                        "fix the model id in /etc/avatar-kiosk/config.toml (`avatar-kiosk models list`)"))
            continue
        if not model.files:
            out.append((label, True, "no files (built-in)", ""))
            continue
        st = models_mod.verify([model], settings.paths.models_dir, full=full)
        bad = [s for s in st if not s.ok]
        if not bad:
            out.append((label, True, f"{len(st)} file(s), {'sha256' if full else 'size'} ok", ""))
            continue
        fix = ("sudo -u avatar avatar-kiosk models install" if model.tier == "embedded"
               else f"sudo -u avatar avatar-kiosk models fetch {model.id} (or bring it on the USB stick)")
        out.append((label, False, bad[0].describe().split(None, 1)[1] + (f" (+{len(bad) - 1} more)"
                    if len(bad) > 1 else ""), fix))
    return out


def check_profile(settings: Any, m: Machine) -> Check:
    cur = settings.paths.current_profile
    if cur.is_symlink() and not cur.exists():
        return ("profile", False, f"{cur} points to a missing folder ({os.readlink(cur)})",
                "sudo -u avatar avatar-kiosk profile rollback, or provision again from the USB stick")
    if not cur.exists():
        return ("profile", False, f"no profile provisioned ({cur} missing)",
                "plug in a USB stick with a bundle, or `avatar-kiosk demo --prepare-only` for the demo persona")
    return ("profile", True, f"{cur.resolve().name}", "")


def check_disk(settings: Any, m: Machine) -> Check:
    worst = None
    for d in (settings.paths.state_dir, settings.paths.cache_dir):
        p = d
        while not p.exists() and p != p.parent:
            p = p.parent
        free = shutil.disk_usage(p).free / 2**30
        if worst is None or free < worst[1]:
            worst = (d, free)
    d, free = worst
    if free < MIN_FREE_GB:
        return ("disk", False, f"{free:.1f} GiB free under {d} (< {MIN_FREE_GB} GiB)",
                "free space: sudo journalctl --vacuum-size=200M; remove old profiles; clear /var/cache/avatar-kiosk")
    return ("disk", True, f"{free:.1f} GiB free under {d}", "")


def _ntp_unsynced() -> bool | None:
    """True if the kernel says the clock is not NTP-synchronised (adjtimex TIME_ERROR)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        buf = ctypes.create_string_buffer(512)  # struct timex, modes = 0: read only
        state = libc.adjtimex(buf)
    except (OSError, AttributeError):
        return None
    return None if state < 0 else state == 5


def check_clock(settings: Any, m: Machine, now: float | None = None) -> Check:
    now = time.time() if now is None else now
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(now))
    if now < EARLIEST_PLAUSIBLE:
        return ("clock", False, f"the clock says {stamp}: it was reset",
                "sudo timedatectl set-ntp true (needs network), or sudo date -s 'YYYY-MM-DD HH:MM'; replace the "
                "RTC battery")
    if _ntp_unsynced():
        return ("clock", True, f"{stamp}, not NTP-synchronised (fine offline; logs may drift)", "")
    return ("clock", True, stamp, "")


BOX_USER = "avatar"
ECHO_CANCEL = "/var/lib/avatar/.config/pipewire/pipewire.conf.d/50-avatar-kiosk-echo-cancel.conf"


def check_box_setup(settings: Any, m: Machine) -> Check:
    """What install.sh sets up on a box: the display stack, the user's groups, PipeWire's echo canceller."""
    import grp
    import pwd

    problems = []
    if m.which("cage") is None and m.which("Xorg") is None:
        problems.append(("no display server (cage) installed", "sudo /opt/avatar-kiosk/app/systemd/install.sh"))
    try:
        pw = pwd.getpwnam(BOX_USER)
        groups = {g.gr_name for g in grp.getgrall() if BOX_USER in g.gr_mem}
        missing = [g for g in ("audio", "video", "render") if g not in groups]
        if missing:
            problems.append((f"user {BOX_USER} is not in group(s) {', '.join(missing)}",
                             f"sudo usermod -aG {','.join(missing)} {BOX_USER}; sudo systemctl restart avatar-kiosk"))
        if not Path("/var/lib/systemd/linger", BOX_USER).exists():
            problems.append((f"user {BOX_USER} does not linger: no PipeWire at boot",
                             f"sudo loginctl enable-linger {BOX_USER}"))
    except KeyError:
        pw = None
        problems.append((f"no user {BOX_USER}", "sudo /opt/avatar-kiosk/app/systemd/install.sh"))
    if pw is not None and not Path(ECHO_CANCEL).exists():
        problems.append(("no PipeWire echo-cancel config: the kiosk may hear itself",
                         "sudo /opt/avatar-kiosk/app/systemd/install.sh"))
    if problems:
        return ("box setup", False, "; ".join(p for p, _ in problems), problems[0][1])
    return ("box setup", True, f"user {BOX_USER} (audio, video, render, lingering), echo cancel, display server", "")


def _daemon_presence(settings: Any) -> dict | None:
    """The running kiosk's view of its camera (it holds the device: a second open would fail)."""
    try:
        st = control.request(settings.paths.control_socket, {"cmd": "status"}, timeout=3)
    except control.DaemonUnavailable:
        return None
    return (st.get("info") or {}).get("presence") if st.get("ok") else None


def check_camera(settings: Any, m: Machine, *, quick: bool = False) -> Check:
    """The presence camera: configured or not, there or not, giving frames, and how fast the face
    detector runs on them. A frame read here is looked at for faces and dropped, never kept."""
    spec = settings.config.presence.camera
    found = sorted(Path(p).name for p in glob.glob(str(m.dev / "video*")))
    if not spec:
        seen = f"; camera(s) plugged in: {', '.join(found)}" if found else ""
        return ("camera", None, f"none configured: presence by sound{seen} (to use one: [presence] camera = "
                "\"/dev/video0\" in the config, then `avatar-kiosk doctor`)", "")
    from ..presence.camera import describe, is_file_spec

    if is_file_spec(spec):
        ok = Path(spec).is_file()
        return ("camera", ok, f"{describe(spec)} stands in for the camera" + ("" if ok else ": missing"),
                "" if ok else "set [presence] camera to a V4L2 device such as /dev/video0, or an existing file")
    node = m.dev / (f"video{spec}" if spec.isdigit() else Path(spec).name)
    if not node.exists():
        return ("camera", False, f"{node} does not exist" + (f" (there are: {', '.join(found)})" if found else ""),
                "plug the USB camera in; `v4l2-ctl --list-devices` names its /dev/videoN; set [presence] camera")
    live = _daemon_presence(settings)
    if live is not None:
        ok = bool(live.get("camera_ok"))
        return ("camera", ok, f"{node}: the running kiosk {'reads it' if ok else 'cannot read it'}; "
                f"{live.get('visitors', 0)} visitor(s) seen, detector {live.get('detector_ms', 0):.0f} ms/frame",
                "" if ok else "`avatar-kiosk logs` says why; check the cable, or another program holding it")
    if quick or m.dev != Path("/dev"):
        return ("camera", True, f"{node} is there (not opened: quick check)", "")
    return _probe_camera(spec, settings.config.presence)


def _probe_camera(spec: str, cfg) -> Check:
    from ..presence.camera import CameraError, open_camera
    from ..presence.detector import FaceDetector, counts

    try:
        cam = open_camera(spec, fps=cfg.fps)
    except CameraError as e:
        return ("camera", False, str(e), "add the service user to the video group; close other camera programs")
    try:
        got = cam.read()
        if got is None:
            return ("camera", False, f"{spec} opened but gave no frame", "replug the camera; try another USB port")
        _t, rgb = got
        h, w = rgb.shape[:2]
        detector = FaceDetector(cfg.min_confidence)
        t0 = time.perf_counter()
        faces = detector.faces(rgb)
        ms = (time.perf_counter() - t0) * 1000
        close = counts(faces, cfg.min_face, cfg.max_turn if cfg.looking else None)
        detector.close()
        del rgb
    finally:
        cam.close()
    return ("camera", True, f"{spec}: {w}x{h}, {len(faces)} face(s) in view ({close} close and looking), "
            f"detector {ms:.0f} ms/frame", "")


def check_daemon(settings: Any, m: Machine) -> Check:
    try:
        st = control.request(settings.paths.control_socket, {"cmd": "status"}, timeout=3)
    except control.DaemonUnavailable as e:
        return ("daemon", None, f"{e}; checks ran directly", "")
    if not st.get("ok"):
        return ("daemon", None, str(st.get("error")), "")
    ok = st.get("state") not in ("maintenance", "error")
    return ("daemon", ok, f"{st.get('state')}: {st.get('status')}",
            "" if ok else "read the reason above; `avatar-kiosk logs`; fix, then sudo systemctl restart avatar-kiosk")


def run_checks(settings: Any, m: Machine | None = None, *, quick: bool = False) -> list[Check]:
    m = m or Machine()
    cfg_file = settings.paths.config_file
    checks: list[Check] = [("config", True, f"{cfg_file} ({'found' if cfg_file.exists() else 'absent: defaults'}), "
                            f"mode {settings.paths.mode}", "")]
    for fn in (check_daemon, lambda s, mm: check_audio(s, mm, "in"), lambda s, mm: check_audio(s, mm, "out"),
               check_display, check_gpu, check_cuda):
        checks.append(_safe(fn, settings, m))
    try:
        checks += check_models(settings, m, full=not quick)
    except Exception as e:
        checks.append(("models", False, f"check crashed: {e.__class__.__name__}: {e}", "report this"))
    for fn in (check_engines, check_profile, check_disk, check_clock):
        checks.append(_safe(fn, settings, m))
    checks.append(_safe(lambda s, mm: check_camera(s, mm, quick=quick), settings, m))
    if settings.config.llm.engine == "openai-server":
        checks.append(_safe(check_llm_server, settings, m))
    if settings.paths.mode == "box":
        checks.append(_safe(check_box_setup, settings, m))
    return checks


def _safe(fn, settings: Any, m: Machine) -> Check:
    try:
        return fn(settings, m)
    except Exception as e:
        name = getattr(fn, "__name__", "check").replace("check_", "")
        return (name, False, f"check crashed: {e.__class__.__name__}: {e}", "report this with `avatar-kiosk logs`")


def format_check(c: Check) -> str:
    name, ok, detail, fix = c
    tag = "INFO" if ok is None else ("PASS" if ok else "FAIL")
    return f"{tag}  {name:28} {detail}" + (f"  -> fix: {fix}" if fix and ok is False else "")


def main(settings, args) -> int:
    checks = run_checks(settings, quick=bool(getattr(args, "quick", False)))
    for c in checks:
        print(format_check(c), flush=True)
    failed = [c for c in checks if c[1] is False]
    print(f"{len(failed)} problem(s)" if failed else "all checks passed")
    return 1 if failed else 0
