"""The smoke check: every configured engine loaded and run once in a child process; a native crash
(the llama.cpp build for another CPU that segfaulted on a fresh machine) is named with its fix —
by `avatar-kiosk smoke` at set-up, and by the daemon, which shows it on the maintenance screen.

The crash itself is stood in for (this machine's llama.cpp build runs): a ``sitecustomize`` on the
child's path makes the LLM engine's constructor die by SIGSEGV, as the bad build died in
``llama_decode``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_daemon_support import FakeSystemd, control, start_daemon, stop

from appliance.app import smoke

REPO = Path(__file__).resolve().parent.parent

SEGFAULT_IN_LLM = """\
import os, signal
import appliance.engines.llm_llama as m
def _crash(self, *a, **k):
    os.kill(os.getpid(), signal.SIGSEGV)
m.LlamaPersonaLLM.__init__ = _crash
"""


@pytest.fixture
def crashing_llm(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SEGFAULT_IN_LLM)
    monkeypatch.setenv("PYTHONPATH", str(site))
    return site


def test_a_healthy_machine_passes_and_the_daemon_remembers_it(settings, monkeypatch):
    assert smoke.preflight(settings) is None
    record = settings.paths.state_dir / smoke.RECORD
    assert record.is_file()
    # the next start on the same CPU, libraries and config does not spawn the check again…
    monkeypatch.setattr(smoke, "run_checks", lambda *a, **k: pytest.fail("checked again"))
    assert smoke.preflight(settings) is None
    # …but another CPU (a disk image moved to another box) does
    monkeypatch.setattr(smoke, "fingerprint", lambda s: "another cpu")
    with pytest.raises(pytest.fail.Exception, match="checked again"):
        smoke.preflight(settings)


def test_a_segfault_in_the_llm_is_named_with_the_fix(settings, crashing_llm):
    result = smoke.run_checks(settings)
    assert not result.ok and result.failed == "llm"
    assert "SIGSEGV" in result.reason and "native" in result.reason
    assert "systemd/native-build.sh" in result.fix and "./bootstrap.sh" in result.fix
    assert [c.engine for c in result.checks if c.ok] == ["vad", "tts", "stt"]  # those ran before it


def test_the_smoke_command_fails_with_one_line_naming_the_engine(settings, crashing_llm):
    env = {**os.environ, "AVATAR_KIOSK_CONFIG": str(settings.paths.config_file)}
    r = subprocess.run([sys.executable, "-m", "appliance", "smoke"], cwd=REPO, env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 1
    assert "  stt   ok" in r.stdout
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("smoke check: FAIL — llm engine: the process was killed by SIGSEGV"), r.stderr


def test_the_daemon_shows_a_crashing_engine_on_the_maintenance_screen(tmp_path, models_dir, crashing_llm):
    home = tmp_path / "k"
    home.mkdir()
    (home / "config.toml").write_text(f'[paths]\nmodels_dir = "{models_dir}"\n', encoding="utf-8")
    systemd = FakeSystemd(tmp_path / "notify.sock")
    proc = start_daemon(home, "real", systemd.path, extra_env={"PYTHONPATH": str(crashing_llm)})
    try:
        ready = systemd.wait_for("READY", "1", timeout=180)
        assert ready["STATUS"].startswith("error: llm engine: the process was killed by SIGSEGV"), ready
        st = control(home / "run" / "control.sock", {"cmd": "status"})
        assert st["app"] == "MaintenanceApp" and st["state"] == "maintenance"
        assert "native-build.sh" in st["info"]["maintenance_reason"]
        took, rc, out = stop(proc)
        assert rc == 0, out
        assert "MODEL_LOAD_FAILED" in out or "start-up check failed" in out
        assert not (home / "state" / smoke.RECORD).exists()  # a failure is never remembered as a pass
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        systemd.close()
