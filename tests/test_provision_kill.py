"""SIGKILL the provisioning process at random moments: after recover() the kiosk always has a complete
old or complete new profile, and staging is empty.

The subprocess runs the light entry point (``python -m provisioning``) with the heavy validate/derive
models stubbed by the test switch (AVATAR_KIOSK_PROVISION_STUB=1): copying, hashing, the voice
analysis, building the profile folder and the switch all run for real.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from support import bundles as T

from provisioning import derive, pipeline, profiles

KILLS = 50
REPO = Path(__file__).resolve().parent.parent


def _check_invariant(paths, known: set[str]) -> str:
    cur = profiles.active(paths)
    assert cur is not None, "no active profile after recover()"
    assert profiles.is_complete(cur, full=True), f"active profile {cur.name} is incomplete"
    for rel in ("persona.toml", "photo.png", "derived/voice_reference.wav", profiles.PROFILE_JSON):
        assert (cur / rel).is_file(), rel
    assert list(paths.staging_dir.iterdir()) == [], "staging leftovers survived recover()"
    leftovers = [p.name for p in paths.profiles_dir.iterdir() if p.name.startswith(".")]
    assert leftovers == [], leftovers
    for p in profiles.list_profiles(paths):
        assert p.active or not p.trying, f"{p.id} was never switched to but is still there"
        assert profiles.is_complete(p.path), f"{p.id} is incomplete"
    assert cur.name in known or profiles.info(paths, cur.name).previous in known, "neither old nor new"
    return cur.name


def test_sigkill_at_random_points_never_leaves_a_half_provisioned_kiosk(settings, tmp_path, monkeypatch):
    paths = settings.paths
    b = T.make_bundle(tmp_path / "stick", voice_s=240.0, voice_files=4)  # ~4 MB of files
    monkeypatch.setenv(derive.STUB_ENV, "1")
    first = pipeline.provision(settings, b)
    assert first.ok, first.message
    profiles.confirm(paths)
    known = {first.profile_id}

    env = dict(os.environ, AVATAR_KIOSK_HOME=str(paths.state_dir.parent), PYTHONPATH=str(REPO))
    env[derive.STUB_ENV] = "1"
    env.pop("AVATAR_KIOSK_CONFIG", None)
    cmd = [sys.executable, "-m", "provisioning", str(b)]

    # One undisturbed run tells how long a run takes here, so the kill moments spread over all of it.
    t0 = time.monotonic()
    r = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    full = time.monotonic() - t0
    assert r.returncode == 0, r.stdout + r.stderr
    profiles.recover(paths)
    known.add(profiles.active_id(paths))

    seed = int.from_bytes(os.urandom(4), "little")
    rng = random.Random(seed)
    outcomes = {"killed": 0, "finished": 0, "old": 0, "new": 0}
    for _ in range(KILLS):
        before = profiles.active_id(paths)
        proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # Python's start-up takes the first part of a run: most kill moments go to the part after it.
        delay = full * (rng.uniform(0.35, 1.1) if rng.random() < 0.75 else rng.uniform(0.0, 0.35))
        try:
            proc.wait(timeout=delay)
            outcomes["finished"] += 1
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            outcomes["killed"] += 1
        profiles.recover(paths)  # what the daemon does at start
        if rng.random() < 0.5:
            profiles.confirm(paths)  # ... and, half the time, it reached READY
        now = _check_invariant(paths, known | {before})
        outcomes["old" if now == before else "new"] += 1
        known.add(now)
    print(f"seed={seed} one run={full:.2f}s outcomes={outcomes}")
    assert outcomes["killed"] + outcomes["finished"] == KILLS
