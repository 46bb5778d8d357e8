"""Copy a bundle from the (mounted, read-only) stick into local staging — the only step that reads it.

The walk never follows anything: every entry is ``lstat``-ed and only plain folders and plain files
are accepted; files are opened with ``O_NOFOLLOW`` and their size is re-checked on the open file.
Names are handled as bytes, so a name that is not valid UTF-8 is reported instead of crashing.
Everything is refused before a byte is copied when the stick's layout is unsafe (links, device
nodes, oversized files, odd names), and the free space is checked up front; a stick pulled
mid-copy or a disk that fills up stops the copy with its own message.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import ProvisionError

CHUNK = 1 << 20
MAX_FILES = 5000
MAX_DEPTH = 8
RESERVE_BYTES = 64 << 20  # keep this much free on the kiosk's disk after staging

IGNORED_TOP = {"System Volume Information", "$RECYCLE.BIN", "lost+found", "LOST.DIR", "FOUND.000"}
NO_BUNDLE = ("No bundle was found on the USB stick — it must hold the bundle folder (made with `avatar-kiosk "
             "bundle build`, with manifest.toml inside) at its top level, or as its only folder")
STICK_GONE = ("The USB stick was removed (or stopped answering) while the kiosk was copying it — "
              "plug it in again and wait until the screen says you can remove it")


@dataclass(frozen=True)
class SourceFile:
    rel: str        # posix path relative to the bundle root, valid UTF-8
    raw: bytes      # the same path as bytes, for opening
    size: int


def _describe_kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a link"
    if stat.S_ISBLK(mode) or stat.S_ISCHR(mode):
        return "a device file"
    if stat.S_ISFIFO(mode):
        return "a pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a normal file"


def _stick_error(e: OSError, what: str) -> ProvisionError:
    if e.errno == errno.ENOSPC or e.errno == errno.EDQUOT:
        return ProvisionError("disk-full", "The kiosk's disk is full, so the bundle could not be copied — "
                              "ask a technician to free space (old profiles can be removed)", step="copy")
    if e.errno in (errno.EACCES, errno.EPERM):
        return ProvisionError("unreadable", f"The kiosk is not allowed to read {what} on the stick — copy the bundle "
                              "onto the stick again (as plain files)", step="copy")
    return ProvisionError("stick-removed", STICK_GONE + f" ({what}: {e.strerror or e})", step="copy")


def scan_source(root: Path, max_file_bytes: int) -> list[SourceFile]:
    """List the bundle's files, refusing anything unsafe. Reads only metadata."""
    root_b = os.fsencode(root)
    try:
        st = os.lstat(root_b)
    except OSError as e:
        raise ProvisionError("no-bundle", f"No bundle found at {root} — the stick must hold a folder with "
                             "persona.toml, a photo, voice/ and manifest.toml", step="copy") from e
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise ProvisionError("no-bundle", f"{root} is not a bundle folder", step="copy")
    out: list[SourceFile] = []

    def walk(rel_b: bytes, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise ProvisionError("too-deep", "The bundle has folders nested too deeply — use the layout "
                                 "from the installers' guide", step="copy")
        here = os.path.join(root_b, rel_b) if rel_b else root_b
        try:
            entries = sorted(os.scandir(here), key=lambda e: e.name)
        except OSError as e:
            raise _stick_error(e, "listing the bundle") from e
        for entry in entries:
            name_b = entry.name
            rel_child = os.path.join(rel_b, name_b) if rel_b else name_b
            try:
                shown = os.fsdecode(rel_child)
                rel_child.decode("utf-8")
            except UnicodeDecodeError:
                raise ProvisionError(
                    "bad-name", f"A file on the stick has a name the kiosk cannot read ({shown!r}): "
                    "rename it using plain letters and digits, then rebuild the bundle", step="copy") from None
            if name_b.startswith(b".") or (depth == 0 and os.fsdecode(name_b) in IGNORED_TOP):
                continue  # hidden files (.DS_Store, ._photo.png, .Trashes) and system folders: never in a bundle
            try:
                est = entry.stat(follow_symlinks=False)
            except OSError as e:
                raise _stick_error(e, shown) from e
            mode = est.st_mode
            if stat.S_ISDIR(mode):
                walk(rel_child, depth + 1)
            elif stat.S_ISREG(mode):
                if est.st_size > max_file_bytes:
                    raise ProvisionError(
                        "too-large", f"{shown} is {est.st_size / 2**20:.0f} MB — the largest file the kiosk "
                        f"accepts is {max_file_bytes / 2**20:.0f} MB (shorten or re-encode it)", step="copy")
                out.append(SourceFile(shown, rel_child, est.st_size))
                if len(out) > MAX_FILES:
                    raise ProvisionError("too-many-files", f"The bundle has more than {MAX_FILES} files — "
                                         "use the layout from the installers' guide", step="copy")
            else:
                raise ProvisionError(
                    "unsafe-file", f"{shown} on the stick is {_describe_kind(mode)}, which bundles may not "
                    "contain — rebuild the bundle with `avatar-kiosk bundle build`", step="copy")

    walk(b"", 0)
    return out


def find_bundle(root: Path) -> Path | None:
    """The bundle folder on a mounted stick: its top level, or the only folder holding a manifest.
    Looks at metadata only and follows no links."""
    def has_manifest(d: Path) -> bool:
        try:
            return stat.S_ISREG(os.lstat(d / "manifest.toml").st_mode)
        except OSError:
            return False

    if has_manifest(root):
        return root
    found = []
    try:
        entries = list(os.scandir(root))
    except OSError:
        return None
    for e in entries:
        if e.name.startswith(".") or e.name in IGNORED_TOP:
            continue
        try:
            if e.is_dir(follow_symlinks=False) and has_manifest(Path(e.path)):
                found.append(Path(e.path))
        except OSError:
            continue
    return found[0] if len(found) == 1 else None


def locate(path: Path) -> Path:
    """The bundle folder to copy for ``path`` (a bundle folder or a stick's mount point), or a clear refusal
    — before anything is copied, so a stick full of other files is never copied whole."""
    folder = find_bundle(path)
    if folder is not None:
        return folder
    try:
        if stat.S_ISREG(os.lstat(path / "persona.toml").st_mode):
            raise ProvisionError("manifest-missing", "The bundle has no manifest.toml — build it with "
                                 "`avatar-kiosk bundle build` on the installer's laptop", step="copy")
    except OSError:
        pass
    raise ProvisionError("no-bundle", NO_BUNDLE, step="copy")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def check_room(dest: Path, total: int, step: str) -> None:
    """Raise ProvisionError("disk-full") unless ``total`` bytes fit on ``dest``'s disk with the reserve."""
    free = shutil.disk_usage(dest).free
    if total + RESERVE_BYTES > free:
        raise ProvisionError(
            "disk-full", f"The kiosk's disk has {free / 2**20:.0f} MB free, the bundle needs "
            f"{total / 2**20:.0f} MB — ask a technician to free space (old profiles can be removed)", step=step)


def copy_to_staging(root: Path, dest: Path, max_file_bytes: int,
                    progress: Callable[[float], None] | None = None) -> list[SourceFile]:
    """Copy every file of the bundle at ``root`` into the new folder ``dest``; return what was copied."""
    files = scan_source(root, max_file_bytes)
    total = sum(f.size for f in files)
    dest.mkdir(parents=True)
    check_room(dest, total, "copy")
    root_b = os.fsencode(root)
    done = 0
    for f in files:
        target = dest / f.rel
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            src_fd = os.open(os.path.join(root_b, f.raw), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError as e:
            raise _stick_error(e, f.rel) from e
        try:
            st = os.fstat(src_fd)
            if not stat.S_ISREG(st.st_mode):
                raise ProvisionError("unsafe-file", f"{f.rel} on the stick is {_describe_kind(st.st_mode)}, "
                                     "which bundles may not contain", step="copy")
            if st.st_size > max_file_bytes:
                raise ProvisionError("too-large", f"{f.rel} grew beyond the size limit while copying", step="copy")
            dst_fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                copied = 0
                while True:
                    try:
                        chunk = os.read(src_fd, CHUNK)
                    except OSError as e:
                        raise _stick_error(e, f.rel) from e
                    if not chunk:
                        break
                    try:
                        _write_all(dst_fd, chunk)
                    except OSError as e:
                        raise _stick_error(e, f.rel) from e
                    copied += len(chunk)
                    done += len(chunk)
                    if copied > max_file_bytes:
                        raise ProvisionError("too-large", f"{f.rel} is larger than the size limit", step="copy")
                    if progress and total:
                        progress(done / total)
                if copied != f.size:
                    raise ProvisionError("stick-removed", STICK_GONE + f" ({f.rel} was cut short)", step="copy")
                try:
                    os.fsync(dst_fd)
                except OSError as e:
                    raise _stick_error(e, f.rel) from e
            finally:
                os.close(dst_fd)
        finally:
            os.close(src_fd)
    if progress:
        progress(1.0)
    return files
