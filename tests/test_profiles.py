"""Profiles on disk: atomic publish, trial, confirm, automatic and manual rollback, start-up recovery."""

from __future__ import annotations

import json
import logging
import os

import pytest
from support import bundles as T

from provisioning import durable, profiles


def make_profile(paths, name: str, *, confirm: bool = True) -> str:
    """Build a small profile in staging and publish it (what the pipeline's switch step does)."""
    paths.staging_dir.mkdir(parents=True, exist_ok=True)
    built = paths.staging_dir / f"job-{name}" / "profile"
    (built / "voice").mkdir(parents=True)
    (built / "persona.toml").write_text(f'name = "{name}"\n')
    (built / "voice" / "a.wav").write_bytes(os.urandom(2048))
    pid = profiles.new_id(name, os.urandom(8).hex())
    pid = f"{pid}-{name}"
    profiles.write_profile_json(built, pid, name, profiles.last_good(paths), "test")
    profiles.publish(paths, built, pid)
    (paths.staging_dir / f"job-{name}").rmdir()
    if confirm:
        assert profiles.confirm(paths) == pid
    return pid


def test_publish_makes_a_complete_profile_current_on_trial(settings):
    paths = settings.paths
    a = make_profile(paths, "a", confirm=False)
    assert os.readlink(paths.current_profile) == a  # relative link, swapped atomically
    assert profiles.active(paths) == paths.profiles_dir / a
    assert profiles.is_complete(paths.profiles_dir / a, full=True)
    assert profiles.info(paths, a).trying and profiles.info(paths, a).starts == 0
    assert profiles.confirm(paths) == a
    assert profiles.confirm(paths) is None  # nothing on trial any more


def test_is_complete_notices_a_missing_or_changed_file(settings):
    paths = settings.paths
    a = make_profile(paths, "a")
    d = paths.profiles_dir / a
    (d / "voice" / "a.wav").write_bytes(b"x" * 2048)
    assert profiles.is_complete(d) and not profiles.is_complete(d, full=True)
    (d / "voice" / "a.wav").unlink()
    assert not profiles.is_complete(d)


def test_trial_rolls_back_by_itself_after_failed_starts(settings, caplog):
    paths = settings.paths
    a = make_profile(paths, "a")
    b = make_profile(paths, "b", confirm=False)
    for start in range(1, profiles.MAX_TRIAL_STARTS + 1):
        rep = profiles.recover(paths)  # the daemon starts ... and dies before READY
        assert not rep.rolled_back and profiles.active_id(paths) == b
        assert profiles.trial_starts(paths.profiles_dir / b) == start
    with caplog.at_level(logging.WARNING):
        rep = profiles.recover(paths)
    assert rep.rolled_back and rep.active == a
    assert profiles.active_id(paths) == a
    assert profiles.info(paths, b).failed and not profiles.info(paths, b).trying
    assert any(getattr(r, "message_id", None) == profiles.PROFILE_ROLLED_BACK for r in caplog.records)
    assert profiles.recover(paths).actions == []  # stable afterwards


def test_confirmed_trial_stays(settings):
    paths = settings.paths
    make_profile(paths, "a")
    b = make_profile(paths, "b", confirm=False)
    profiles.recover(paths)
    assert profiles.confirm(paths) == b
    for _ in range(profiles.MAX_TRIAL_STARTS + 2):
        profiles.recover(paths)
    assert profiles.active_id(paths) == b


def test_the_only_profile_keeps_being_tried(settings):
    paths = settings.paths
    a = make_profile(paths, "a", confirm=False)
    for _ in range(profiles.MAX_TRIAL_STARTS + 2):
        profiles.recover(paths)
    assert profiles.active_id(paths) == a


def test_recover_cleans_leftovers(settings):
    paths = settings.paths
    a = make_profile(paths, "a")
    (paths.staging_dir / "job-dead" / "bundle").mkdir(parents=True)
    (paths.staging_dir / "job-dead" / "bundle" / "x").write_bytes(b"x")
    os.symlink("nowhere", paths.profiles_dir / ".current.tmp")
    (paths.profiles_dir / ".profile.json.tmp").write_text("{}")
    # a profile renamed into place by a run killed before the symlink swap
    orphan = make_profile(paths, "orphan", confirm=False)
    profiles._point_current(paths, a)
    rep = profiles.recover(paths)
    assert list(paths.staging_dir.iterdir()) == []
    assert not (paths.profiles_dir / ".current.tmp").exists() and not (paths.profiles_dir / ".current.tmp").is_symlink()
    assert not (paths.profiles_dir / orphan).exists()
    assert profiles.active_id(paths) == a and len(rep.actions) >= 3


def test_recover_leaves_staging_alone_while_a_provisioning_runs(settings):
    paths = settings.paths
    make_profile(paths, "a")
    job = paths.staging_dir / "job-running"
    job.mkdir(parents=True)
    with durable.provision_lock(paths):
        rep = profiles.recover(paths)
    assert job.is_dir() and any("running" in a for a in rep.actions)


def test_recover_repairs_a_dangling_current(settings):
    import shutil

    paths = settings.paths
    a = make_profile(paths, "a")
    b = make_profile(paths, "b")
    shutil.rmtree(paths.profiles_dir / b)  # someone deleted the active profile by hand
    rep = profiles.recover(paths)
    assert rep.active == a and profiles.active_id(paths) == a


class Crash(BaseException):
    """Stands in for SIGKILL: aborts the publish at an exact file-system operation, running no cleanup."""


@pytest.mark.parametrize("a_confirmed", [True, False], ids=["over-confirmed", "over-trying"])
@pytest.mark.parametrize("crash_at", range(18))
def test_a_crash_at_every_step_of_the_switch(settings, monkeypatch, crash_at, a_confirmed):
    paths = settings.paths
    a = make_profile(paths, "a", confirm=a_confirmed)
    before = T.tree_digest(paths.profiles_dir / a)
    counter = {"n": 0}

    def hook(real):
        def wrapped(*args, **kw):
            if counter["n"] == crash_at:
                raise Crash()
            counter["n"] += 1
            return real(*args, **kw)
        return wrapped

    for name in ("rename", "replace", "symlink", "fsync"):
        monkeypatch.setattr(profiles.os, name, hook(getattr(os, name)))
    try:
        make_profile(paths, "b", confirm=False)
        crashed = False
    except Crash:
        crashed = True
    monkeypatch.undo()
    profiles.recover(paths)
    cur = profiles.active(paths)
    assert cur is not None and profiles.is_complete(cur, full=True)
    if cur.name == a:
        assert crashed  # only a crash leaves the old profile current
        if a_confirmed:  # (a profile on trial gets its start counted by recover())
            assert T.tree_digest(cur) == before
    else:
        assert json.loads((cur / profiles.PROFILE_JSON).read_text())["name"] == "b"
    if crashed:
        assert list(paths.staging_dir.iterdir()) == []  # recover() took the half-built profile away
    else:
        assert crash_at >= counter["n"] and cur.name != a  # past the last operation: b went live


def test_the_crash_points_cover_every_operation_of_the_switch(settings, monkeypatch):
    """The test above crashes at operations 0…17: a switch must not have more, or its tail goes untested."""
    paths = settings.paths
    make_profile(paths, "a", confirm=True)
    counter = {"n": 0}

    def count(real):
        def wrapped(*args, **kw):
            counter["n"] += 1
            return real(*args, **kw)
        return wrapped

    for name in ("rename", "replace", "symlink", "fsync"):
        monkeypatch.setattr(profiles.os, name, count(getattr(os, name)))
    make_profile(paths, "b", confirm=False)
    assert 0 < counter["n"] < 18, counter


def test_manual_rollback_and_nothing_to_roll_back_to(settings):
    paths = settings.paths
    a = make_profile(paths, "a")
    with pytest.raises(profiles.ProfileError):
        profiles.rollback(paths)
    b = make_profile(paths, "b")
    assert profiles.rollback(paths) == a
    assert not profiles.info(paths, b).failed  # a confirmed profile is not marked failed by a manual rollback


def test_prune_keeps_the_active_and_its_rollback_target(settings):
    paths = settings.paths
    ids = [make_profile(paths, n) for n in "abcdef"]
    profiles._point_current(paths, ids[1])  # technician rolled far back
    removed = profiles.prune(paths, keep=2)
    left = {p.id for p in profiles.list_profiles(paths)}
    assert ids[1] in left and len(left) == 2 and set(removed) == set(ids) - left


def test_cli_profile_list_and_rollback(settings, capsys):
    from appliance import cli

    paths = settings.paths
    cfg = ["--config", str(paths.config_file)]
    assert cli.main([*cfg, "profile", "list"]) == 0
    assert "no profiles yet" in capsys.readouterr().out
    a = make_profile(paths, "a")
    b = make_profile(paths, "b", confirm=False)
    assert cli.main([*cfg, "profile", "list"]) == 0
    out = capsys.readouterr().out
    assert f"* {b}" in out and "trying" in out and a in out and "confirmed" in out
    assert cli.main([*cfg, "profile", "rollback"]) == 0
    assert a in capsys.readouterr().out
    assert profiles.active_id(paths) == a and profiles.info(paths, b).failed
    assert cli.main([*cfg, "profile", "rollback"]) == 1


def test_a_profile_replaced_while_on_trial_falls_back_to_the_last_confirmed(settings):
    paths = settings.paths
    a = make_profile(paths, "a")
    make_profile(paths, "b", confirm=False)   # b on trial ...
    assert profiles.last_good(paths) == a     # ... so a new profile must fall back to a, not to b
    c = make_profile(paths, "c", confirm=False)
    b_info = [p for p in profiles.list_profiles(paths) if p.name == "b"][0]
    assert b_info.replaced and not b_info.trying and "replaced" in b_info.state
    for _ in range(profiles.MAX_TRIAL_STARTS + 1):
        profiles.recover(paths)
    assert profiles.active_id(paths) == a and profiles.info(paths, c).failed
