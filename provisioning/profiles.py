"""Profiles on disk: publishing a new one atomically, trying it, confirming it, rolling back.

Layout (``Paths.profiles_dir``)::

    profiles/<id>/            one complete profile (never modified after it is published)
        profile.json          id, name, created, previous profile, every file's size and sha256
        TRYING                present while the profile is on trial: {"starts": N}
        FAILED                present once a trial failed and the kiosk rolled back from it
        REPLACED              present when a newer profile replaced it before its trial ended
        provision-report.txt  what the installer saw
    profiles/current -> <id>  relative symlink, swapped with a temp symlink + os.replace

A profile is built entirely inside ``staging/`` and moved into ``profiles/`` with one
``rename`` (same file system), so a directory under ``profiles/`` is always complete. The switch
is: write + fsync every file, rename the folder, fsync ``profiles/``, point a temp symlink at the
new folder, ``os.replace`` it over ``current``, fsync ``profiles/`` again. A kill at any instant
leaves ``current`` on the complete old profile or the complete new one.

Trial: the new profile carries ``TRYING``. The daemon calls :func:`recover` at every start (it
counts the start in the marker, and rolls back once a trial has used up its starts) and
:func:`confirm` after READY (the marker goes; the profile is the kiosk's from then on).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from appliance import logs
from appliance.models import sha256_file
from appliance.paths import Paths
from appliance.profile import PROFILE_JSON, REPORT  # noqa: F401 - the pipeline and tests name them here

from .durable import LOCK, fsync_dir, fsync_tree, provision_lock, write_atomic

log = logging.getLogger("avatar-kiosk.profiles")

TRYING = "TRYING"
FAILED = "FAILED"
REPLACED = "REPLACED"
MAX_TRIAL_STARTS = 3  # starts a trying profile gets before the kiosk rolls back by itself
KEEP_PROFILES = 4     # profiles kept on disk (the active one and its rollback target always among them)

# Fixed journal ids for the trial outcomes (PROVISION_OK / PROVISION_FAILED live in appliance.logs).
PROFILE_CONFIRMED = logs.PROFILE_CONFIRMED
PROFILE_ROLLED_BACK = logs.PROFILE_ROLLED_BACK


class ProfileError(RuntimeError):
    """A profile operation that cannot be done (e.g. nothing to roll back to)."""


# ----------------------------------------------------------------------------- reading profiles

@dataclass(frozen=True)
class ProfileInfo:
    id: str
    path: Path
    name: str = ""
    created: str = ""
    previous: str = ""
    trying: bool = False
    starts: int = 0
    failed: bool = False
    replaced: bool = False
    active: bool = False
    files: dict[str, dict] = field(default_factory=dict)

    @property
    def state(self) -> str:
        if self.failed:
            return "failed"
        if self.replaced:
            return "replaced before it was confirmed"
        if self.trying:
            return f"trying ({self.starts} start{'s' if self.starts != 1 else ''})"
        return "confirmed"


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def trial_starts(profile_dir: Path) -> int | None:
    """The starts counted in the TRYING marker, or None when the profile is not on trial."""
    marker = profile_dir / TRYING
    if not marker.exists():
        return None
    try:
        return int(_read_json(marker).get("starts", 0))
    except (TypeError, ValueError):
        return 0


def info(paths: Paths, profile_id: str) -> ProfileInfo:
    d = paths.profiles_dir / profile_id
    meta = _read_json(d / PROFILE_JSON)
    starts = trial_starts(d)
    return ProfileInfo(
        id=profile_id, path=d, name=str(meta.get("name", "")), created=str(meta.get("created", "")),
        previous=str(meta.get("previous", "")), trying=starts is not None, starts=starts or 0,
        failed=(d / FAILED).exists(), replaced=(d / REPLACED).exists(), active=active_id(paths) == profile_id,
        files=meta.get("files", {}) if isinstance(meta.get("files"), dict) else {},
    )


def is_complete(profile_dir: Path, *, full: bool = False) -> bool:
    """Every file ``profile.json`` lists is there with its size (and sha256 when ``full``)."""
    meta = _read_json(profile_dir / PROFILE_JSON)
    files = meta.get("files")
    if not meta.get("id") or not isinstance(files, dict) or not files:
        return False
    for rel, f in files.items():
        p = profile_dir / rel
        try:
            st = p.lstat()
        except OSError:
            return False
        if not p.is_file() or p.is_symlink() or st.st_size != f.get("size"):
            return False
        if full and sha256_file(p) != f.get("sha256"):
            return False
    return True


def active_id(paths: Paths) -> str | None:
    """The id ``current`` points at (whether or not that folder exists), or None."""
    try:
        target = os.readlink(paths.current_profile)
    except OSError:
        return None
    name = Path(target).name
    return name or None


def active(paths: Paths) -> Path | None:
    """The active profile's folder, or None when there is no complete one."""
    pid = active_id(paths)
    if pid is None:
        return None
    d = paths.profiles_dir / pid
    return d if d.is_dir() and is_complete(d) else None


def list_profiles(paths: Paths) -> list[ProfileInfo]:
    """Every published profile, oldest first."""
    if not paths.profiles_dir.is_dir():
        return []
    out = []
    for d in paths.profiles_dir.iterdir():
        if d.name.startswith(".") or d.is_symlink() or not d.is_dir():
            continue
        out.append(info(paths, d.name))
    return sorted(out, key=lambda p: (p.created, p.id))


# ----------------------------------------------------------------------------- switching

def _point_current(paths: Paths, profile_id: str) -> None:
    """Swap ``current`` to ``profile_id`` atomically (temp symlink + os.replace + fsync)."""
    tmp = paths.profiles_dir / ".current.tmp"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    os.symlink(profile_id, tmp)
    os.replace(tmp, paths.current_profile)
    fsync_dir(paths.profiles_dir)


def publish(paths: Paths, built: Path, profile_id: str) -> Path:
    """Move a fully built profile folder from staging into ``profiles/`` and make it current, on trial.

    ``built`` must already hold ``profile.json``; the TRYING marker is added here. Crash-safe at
    every instant (see the module docstring)."""
    paths.profiles_dir.mkdir(parents=True, exist_ok=True)
    final = paths.profiles_dir / profile_id
    if final.exists():
        raise ProfileError(f"a profile named {profile_id} already exists")
    (built / TRYING).write_text(json.dumps({"starts": 0}) + "\n")
    fsync_tree(built)
    replaced = active_id(paths)
    os.rename(built, final)
    fsync_dir(paths.profiles_dir)
    fsync_dir(built.parent)
    _point_current(paths, profile_id)
    if replaced and replaced != profile_id and trial_starts(paths.profiles_dir / replaced) is not None:
        # The one replaced never finished its trial: it must not become a rollback target.
        old = paths.profiles_dir / replaced
        write_atomic(old / REPLACED, f"replaced by {profile_id} before the kiosk confirmed it\n".encode())
        (old / TRYING).unlink()
        fsync_dir(old)
    return final


def confirm(paths: Paths) -> str | None:
    """Called by the daemon once it is READY: the active profile's trial succeeded.

    Returns the id confirmed, or None when nothing was on trial."""
    d = active(paths)
    if d is None or not (d / TRYING).exists():
        return None
    (d / TRYING).unlink()
    fsync_dir(d)
    log.info("profile %s confirmed: the kiosk is running with it", d.name,
             extra=logs.fields(PROFILE_CONFIRMED, profile_id=d.name))
    return d.name


def _rollback_target(paths: Paths, current: str | None) -> str | None:
    """The profile to go back to: the current one's recorded predecessor, else the newest other
    complete, confirmed profile."""
    candidates = [p for p in list_profiles(paths) if p.id != current and not p.failed and not p.trying
                  and not p.replaced and is_complete(p.path)]
    if current:
        prev = info(paths, current).previous
        for p in candidates:
            if p.id == prev:
                return p.id
    return candidates[-1].id if candidates else None


def last_good(paths: Paths) -> str | None:
    """The profile a new one should fall back to: the active one when it is confirmed, else (it is
    still on trial itself) the one that one would fall back to."""
    cur = active_id(paths)
    if cur is None or active(paths) is None:
        return _rollback_target(paths, cur)
    return cur if trial_starts(paths.profiles_dir / cur) is None else _rollback_target(paths, cur)


def rollback(paths: Paths, *, reason: str = "rollback requested") -> str:
    """Make the previous profile current again. The one left is marked FAILED when it was on trial.

    Returns the id now active; raises :class:`ProfileError` when there is nothing to go back to."""
    current = active_id(paths)
    target = _rollback_target(paths, current)
    if target is None:
        raise ProfileError("there is no earlier complete profile to roll back to")
    _point_current(paths, target)
    if current and (paths.profiles_dir / current).is_dir():
        cur = paths.profiles_dir / current
        if (cur / TRYING).exists():
            write_atomic(cur / FAILED, (reason + "\n").encode())
            (cur / TRYING).unlink()
            fsync_dir(cur)
    log.warning("rolled back from profile %s to %s: %s", current, target, reason,
                extra=logs.fields(PROFILE_ROLLED_BACK, profile_id=target, code="rollback"))
    return target


@dataclass
class RecoverReport:
    actions: list[str] = field(default_factory=list)
    active: str | None = None
    rolled_back: bool = False


def recover(paths: Paths, *, max_starts: int = MAX_TRIAL_STARTS) -> RecoverReport:
    """Run by the daemon at every start, before it loads the profile.

    * removes staging leftovers of a provisioning that died (unless one is running now);
    * removes half-made things in ``profiles/`` (temp symlink, temp files, folders never made current);
    * counts this start in the active profile's TRYING marker, and rolls back to the previous profile
      once the trial has already had ``max_starts`` starts without reaching READY;
    * if ``current`` is missing or broken, points it at the newest complete confirmed profile.
    """
    rep = RecoverReport()
    paths.profiles_dir.mkdir(parents=True, exist_ok=True)
    with provision_lock(paths, blocking=False) as held:
        if held:
            if paths.staging_dir.exists():
                for child in paths.staging_dir.iterdir():
                    _remove(child)
                    rep.actions.append(f"removed staging leftover {child.name}")
        else:
            rep.actions.append("a provisioning is running now: staging left alone")
        for child in list(paths.profiles_dir.iterdir()):
            if child.name.startswith(".") and child.name != LOCK:
                _remove(child)
                rep.actions.append(f"removed leftover {child.name}")
        for stray in [*paths.state_dir.glob(f".{REPORT}.tmp"),
                      *(paths.profiles_dir.glob("*/.*.tmp"))]:  # killed inside write_atomic()
            _remove(stray)
            rep.actions.append(f"removed leftover {stray.relative_to(paths.state_dir)}")
        cur = active_id(paths)
        if held:
            # A folder published but never made current (killed between rename and symlink swap).
            for p in list_profiles(paths):
                if p.id != cur and p.trying:
                    _remove(p.path)
                    rep.actions.append(f"removed profile {p.id}: it was on trial but is not the active one "
                                       "(never switched to, or replaced before it was confirmed)")
        cur_dir = paths.profiles_dir / cur if cur else None
        if cur_dir is None or not cur_dir.is_dir() or not is_complete(cur_dir):
            target = _rollback_target(paths, cur)
            if target is not None:
                _point_current(paths, target)
                rep.actions.append(f"current profile {cur!r} is missing or incomplete: switched to {target}")
                rep.rolled_back = cur is not None
            elif cur is not None:
                rep.actions.append(f"current profile {cur!r} is missing or incomplete and there is no other")
        else:
            starts = trial_starts(cur_dir)
            if starts is not None:
                if starts >= max_starts:
                    try:
                        target = rollback(paths, reason=f"the kiosk did not start with it in {starts} tries")
                        rep.actions.append(f"profile {cur} failed {starts} starts: rolled back to {target}")
                        rep.rolled_back = True
                    except ProfileError:
                        # Nothing to go back to: keep trying the only profile there is.
                        write_atomic(cur_dir / TRYING, json.dumps({"starts": starts + 1}).encode() + b"\n")
                        rep.actions.append(f"profile {cur} failed {starts} starts, but there is no other profile")
                else:
                    write_atomic(cur_dir / TRYING, json.dumps({"starts": starts + 1}).encode() + b"\n")
                    rep.actions.append(f"profile {cur} on trial: start {starts + 1} of {max_starts}")
    rep.active = active_id(paths) if active(paths) else None
    for a in rep.actions:
        log.info("recover: %s", a)
    return rep


def prune(paths: Paths, keep: int = KEEP_PROFILES) -> list[str]:
    """Delete the oldest profiles beyond ``keep``; never the active one or its rollback target.

    Each goes by an atomic rename into staging first (recover() sweeps staging), so a kill mid-way
    never leaves a half-deleted folder under ``profiles/``."""
    cur = active_id(paths)
    protected = {cur, _rollback_target(paths, cur)}
    items = list_profiles(paths)
    removed = []
    excess = len(items) - keep
    for p in items:
        if excess <= 0:
            break
        if p.id in protected:
            continue
        paths.staging_dir.mkdir(parents=True, exist_ok=True)
        trash = paths.staging_dir / f"trash-{p.id}"
        os.rename(p.path, trash)
        fsync_dir(paths.profiles_dir)
        shutil.rmtree(trash, ignore_errors=True)
        removed.append(p.id)
        excess -= 1
    return removed


def _remove(p: Path) -> None:
    if p.is_symlink() or not p.is_dir():
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
    else:
        shutil.rmtree(p, ignore_errors=True)


# ----------------------------------------------------------------------------- building

def new_id(name: str, digest: str, now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    slug = "".join(c if c.isascii() and c.isalnum() else "-" for c in name.lower()).strip("-")[:24] or "persona"
    while "--" in slug:
        slug = slug.replace("--", "-")
    return f"{slug}-{now.strftime('%Y%m%dT%H%M%S')}-{digest[:8]}"


def write_profile_json(profile_dir: Path, profile_id: str, name: str, previous: str | None,
                       source: str, extra: dict | None = None) -> dict:
    """Record every file in the folder (size + sha256) in ``profile.json``."""
    files = {}
    for dirpath, _dirs, names in os.walk(profile_dir):
        for n in names:
            p = Path(dirpath) / n
            rel = p.relative_to(profile_dir).as_posix()
            if rel in (PROFILE_JSON, TRYING, FAILED, REPLACED):
                continue
            files[rel] = {"size": p.stat().st_size, "sha256": sha256_file(p)}
    meta = {
        "id": profile_id, "name": name, "previous": previous or "", "source": source,
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "files": dict(sorted(files.items())), **(extra or {}),
    }
    (profile_dir / PROFILE_JSON).write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return meta
