"""The smoke check: every configured engine is loaded and run once, in a child process.

    vad: silero on half a second · tts: one sentence · stt: one pass over that sentence
    llm: one token · face: one frame of the active photo · wake: one frame (wake mode only)

Why a child process: the engines are native code (llama.cpp, CTranslate2, onnxruntime, mediapipe).
A library built for another CPU does not raise, it kills the process (SIGSEGV, SIGILL) — in the
daemon that would be a restart loop with a dark screen. The child reports each engine before it
starts it, so when it dies the parent names the engine that killed it and the fix.

Who runs it:
* the set-up (``./bootstrap.sh``, ``systemd/install.sh``) as ``avatar-kiosk smoke``, last;
* the daemon before it loads anything (:func:`preflight`); a failure puts the engine and the fix on
  the maintenance screen. A pass is remembered for this CPU, these native libraries and this engine
  configuration (``<state>/smoke-ok.json``), so a normal start does not pay for it again, while a
  disk image copied to a box with another CPU checks again.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import logging
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .. import logs
from ..paths import Settings

log = logging.getLogger("avatar-kiosk.smoke")

MARK = "SMOKE "          # the child's report lines on stdout start with this
TIMEOUT_S = 300.0        # loading every model on a slow CPU takes well under a minute
RECORD = "smoke-ok.json"
NATIVE_PACKAGES = ("llama_cpp_python", "ctranslate2", "onnxruntime", "onnxruntime_gpu", "piper_tts", "mediapipe",
                   "numpy", "torch", "webrtcvad_wheels", "pymicro_wakeword")


@dataclass(frozen=True)
class EngineCheck:
    engine: str
    ok: bool
    ms: float = 0.0
    detail: str = ""


@dataclass(frozen=True)
class SmokeResult:
    checks: tuple[EngineCheck, ...]
    failed: str | None = None   # the engine that failed or killed the check
    reason: str = ""            # one line: what happened
    fix: str = ""               # one line: what to do

    @property
    def ok(self) -> bool:
        return self.failed is None

    def message(self) -> str:
        return f"{self.failed} engine: {self.reason} — fix: {self.fix}" if self.failed else "all engines ran"


# ------------------------------------------------------------------------------------ the child

def _report(**kw) -> None:
    sys.stdout.write(MARK + json.dumps(kw) + "\n")
    sys.stdout.flush()


def _photo(settings: Settings, tmp: Path) -> Path:
    from .profile import active_profile

    try:
        return active_profile(settings).photo
    except (FileNotFoundError, OSError, ValueError):
        from PIL import Image
        from skimage import data as skdata

        path = tmp / "astronaut.png"  # the packaged public-domain portrait
        Image.fromarray(skdata.astronaut()).save(path)
        return path


def _stages(settings: Settings):
    """(engine name, callable) in the order the child runs them; later ones use earlier results."""
    from ..audio.resample import resample
    from ..engines import factory
    from ..messages import ChatMessage, MouthPose

    rs = factory.resolved(settings)
    resolved = rs.config
    lang = resolved.session.languages[0] if resolved.session.languages else "en"
    got: dict = {}

    def vad():
        from ..audio.vad import SileroCheck

        SileroCheck().speech_probability(np.zeros(8000, np.int16))
        return "silero"

    def tts():
        eng = factory.make("tts", rs)
        audio = np.concatenate([np.asarray(c, np.float32).reshape(-1) for c in eng.synthesize("Hello.", "en")])
        if audio.size == 0:
            raise RuntimeError("no sound came out")
        got["speech16k"] = resample(audio, int(eng.sample_rate), 16000)
        return f"{resolved.tts.engine}, {audio.size / eng.sample_rate:.1f} s"

    def stt():
        eng = factory.make("stt", rs)
        audio = got.get("speech16k", np.zeros(16000, np.float32))
        text, *_ = eng.transcribe(audio.astype(np.float32), (lang,), lang)
        return f"{resolved.stt.engine}, heard {len(text)} characters"

    def llm():
        eng = factory.make("llm", rs)
        cancel = threading.Event()
        for _piece in eng.generate([ChatMessage("system", "You are a kiosk."), ChatMessage("user", "Hi")], cancel):
            cancel.set()
            break
        return resolved.llm.engine

    def face():
        with tempfile.TemporaryDirectory() as tmp:
            frame = factory.face(rs, _photo(settings, Path(tmp))).frame(0.5, MouthPose(0.5, 0.5))
        if frame.ndim != 3 or frame.shape[2] != 3:
            raise RuntimeError(f"the frame has shape {frame.shape}")
        return f"{resolved.face.engine}, {frame.shape[1]}x{frame.shape[0]}"

    def wake():
        factory.make_wake(resolved).process(np.zeros(160, np.int16))
        return resolved.wake.wake_word

    stages = [("vad", vad), ("tts", tts), ("stt", stt), ("llm", llm), ("face", face)]
    if resolved.wake.mode == "wake":
        stages.append(("wake", wake))
    return stages


def child(settings: Settings) -> int:
    """Run in the child: report each engine's start and end on stdout."""
    logging.getLogger().setLevel(logging.WARNING)
    try:
        stages = _stages(settings)
    except Exception as e:
        _report(engine="config", phase="fail", error=f"{e.__class__.__name__}: {e}")
        return 1
    for name, fn in stages:
        _report(engine=name, phase="start")
        t0 = time.perf_counter()
        try:
            detail = fn()
        except Exception as e:
            _report(engine=name, phase="fail", error=f"{e.__class__.__name__}: {e}"[:400])
            return 1
        _report(engine=name, phase="ok", ms=round((time.perf_counter() - t0) * 1000, 1), detail=detail)
    return 0


# ----------------------------------------------------------------------------------- the parent

def _fix(settings: Settings, engine: str, crashed: bool) -> str:
    box = settings.paths.mode == "box"
    if crashed and engine == "llm":
        return ("llama-cpp-python's native library was not built for any x86-64 CPU (a -march=native build crashes "
                "on other CPUs, and on AVX-512/AMX ones even on its own): rebuild it with the flags in "
                "systemd/native-build.sh — " +
                ("`sudo systemd/install.sh --rebuild-native`" if box else
                 "`rm -f .venv/.installed-* && ./bootstrap.sh demo`"))
    if crashed:
        return ("a native library of this engine does not run on this machine: reinstall — " +
                ("`sudo systemd/install.sh --rebuild-native`" if box else "`rm -rf .venv && ./bootstrap.sh demo`"))
    return ("`avatar-kiosk models verify` and `avatar-kiosk doctor` name the missing or damaged file; "
            "or set the engine back to its default in " + str(settings.paths.config_file))


def _signal_name(rc: int) -> str:
    with contextlib.suppress(ValueError):
        return signal.Signals(-rc).name
    return f"signal {-rc}"


def run_checks(settings: Settings, timeout: float = TIMEOUT_S, on_check=None) -> SmokeResult:
    """Run :func:`child` in a fresh process with this kiosk's config; never raises for what it finds."""
    cmd = [sys.executable, "-m", "appliance"]
    if settings.paths.config_file.is_file():
        cmd += ["--config", str(settings.paths.config_file)]
    cmd += ["smoke", "--child"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, env=env,
                                cwd=str(Path(__file__).resolve().parents[2]))
        killed = threading.Event()

        def kill() -> None:
            killed.set()
            proc.kill()

        timer = threading.Timer(timeout, kill)
        timer.start()
        checks: list[EngineCheck] = []
        running, failed, reason = None, None, ""
        try:
            for line in proc.stdout:
                if not line.startswith(MARK):
                    continue
                msg = json.loads(line[len(MARK):])
                if msg["phase"] == "start":
                    running = msg["engine"]
                    continue
                running = None
                check = EngineCheck(msg["engine"], msg["phase"] == "ok", msg.get("ms", 0.0),
                                    msg.get("detail") or msg.get("error", ""))
                checks.append(check)
                if on_check is not None:
                    on_check(check)
                if not check.ok:
                    failed, reason = check.engine, check.detail
            rc = proc.wait()
        finally:
            timer.cancel()
        timed_out = killed.is_set()
        err.seek(0)
        tail = [ln.strip() for ln in err.read().splitlines() if ln.strip()][-3:]
    if failed is not None:
        return SmokeResult(tuple(checks), failed, reason, _fix(settings, failed, crashed=False))
    if rc == 0 and running is None:
        return SmokeResult(tuple(checks))
    engine = running or "start-up"
    if timed_out:
        reason = f"did not finish within {timeout:.0f} s"
        return SmokeResult(tuple(checks), engine, reason, _fix(settings, engine, crashed=False))
    if rc < 0:
        reason = f"the process was killed by {_signal_name(rc)} inside this engine's native code"
        if -rc == signal.SIGILL:
            reason += " (an instruction this CPU does not have)"
        return SmokeResult(tuple(checks), engine, reason, _fix(settings, engine, crashed=True))
    reason = f"the check exited with status {rc}" + (f": {tail[-1]}" if tail else "")
    return SmokeResult(tuple(checks), engine, reason, _fix(settings, engine, crashed=False))


def fingerprint(settings: Settings) -> str:
    """What a passing check holds for: this CPU, these native libraries, this engine config."""
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.startswith(("model name", "flags")):
                cpu += line + "\n"
            if line.startswith("flags"):
                break
    libs = {}
    for name in NATIVE_PACKAGES:
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        record = next((f for f in dist.files or () if f.name == "RECORD"), None)
        stamp = ""
        if record is not None:
            with contextlib.suppress(OSError):
                stamp = str(Path(dist.locate_file(record)).stat().st_mtime_ns)
        libs[name] = f"{dist.version}@{stamp}"
    cfg = settings.config
    key = {"cpu": cpu or platform.processor(), "python": sys.version, "exe": sys.executable, "libs": libs,
           "engines": repr((cfg.stt, cfg.llm, cfg.tts, cfg.face, cfg.wake)), "models": str(settings.paths.models_dir)}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def preflight(settings: Settings) -> str | None:
    """For the daemon, before anything loads: None when the engines run here, else the one-line
    reason for the maintenance screen (also in the journal: MODEL_LOAD_FAILED, CODE=smoke_<engine>)."""
    record = settings.paths.state_dir / RECORD
    fp = fingerprint(settings)
    with contextlib.suppress(OSError, ValueError):
        if json.loads(record.read_text(encoding="utf-8")).get("fingerprint") == fp:
            return None
    log.info("start-up check: running every engine once in a child process (new CPU, libraries or config)")
    result = run_checks(settings)
    if not result.ok:
        log.error("start-up check failed: %s", result.message(),
                  extra=logs.fields(logs.MODEL_LOAD_FAILED, code=f"smoke_{result.failed}"))
        return result.message()
    log.info("start-up check passed: %s", ", ".join(f"{c.engine} {c.ms:.0f} ms" for c in result.checks))
    with contextlib.suppress(OSError):
        tmp = record.with_name(record.name + ".partial")
        tmp.write_text(json.dumps({"fingerprint": fp, "checks": [asdict(c) for c in result.checks]}, indent=1),
                       encoding="utf-8")
        os.replace(tmp, record)
    return None


def main(settings: Settings, args) -> int:
    """``avatar-kiosk smoke``: one line per engine; exit 1 and the fix when one fails."""
    if getattr(args, "child", False):
        return child(settings)

    def show(c: EngineCheck) -> None:
        print(f"  {c.engine:<5} {'ok' if c.ok else 'FAILED'}  {c.ms:7.0f} ms  {c.detail}", flush=True)

    print("smoke check: loading every configured engine and running it once", flush=True)
    result = run_checks(settings, on_check=show)
    if result.ok:
        print(f"smoke check: PASS ({len(result.checks)} engines)")
        return 0
    print(f"smoke check: FAIL — {result.message()}", file=sys.stderr)
    return 1
