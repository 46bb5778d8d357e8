"""USB stick detection: a pyudev monitor for block devices; each stick is mounted read-only and provisioned.

Events come from ``pyudev.Monitor.from_netlink(context)`` filtered to ``subsystem="block"``. A device
is a candidate when it sits on the USB bus and carries a file system itself — a partition
(``DEVTYPE=partition``) or a partitionless stick (``DEVTYPE=disk`` with ``ID_FS_TYPE``); a whole disk
that only holds a partition table is skipped (its partitions arrive as their own events).

The stick is mounted with ``ro,nosuid,nodev,noexec`` (plus ``nosymfollow`` where the kernel has it),
with the file-system type udev reported (never probed by mount). Nothing on it is executed, and the
pipeline's copy step follows no link and opens nothing but plain files. The stick is unmounted as soon
as the copy is done (``on_copied``), before the bundle is even verified.

Mounting needs CAP_SYS_ADMIN: on the box this runs as root (a small service next to the kiosk, or the
daemon before it drops privileges); tests replace the mounter and the monitor.
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

from appliance.paths import Settings

from .staging import NO_BUNDLE, find_bundle

log = logging.getLogger("avatar-kiosk.usb")

FS_TYPES = {"vfat", "exfat", "ntfs", "ntfs3", "ext2", "ext3", "ext4", "iso9660", "udf", "btrfs", "xfs", "f2fs"}
FS_OPTIONS = {  # owner/permissions for file systems without them; ext*: no journal replay on a ro mount
    "vfat": "uid=0,gid=0,fmask=0133,dmask=0022,shortname=mixed,utf8",
    "exfat": "uid=0,gid=0,fmask=0133,dmask=0022",
    "ntfs3": "uid=0,gid=0,fmask=0133,dmask=0022",
    "ext3": "noload",
    "ext4": "noload",
}
BASE_OPTIONS = "ro,nosuid,nodev,noexec"



class Mounter(Protocol):
    def mount(self, device_node: str, fs_type: str, name: str) -> Path: ...
    def unmount(self, mountpoint: Path) -> None: ...


class SystemMounter:
    """Real mounts under ``<runtime_dir>/usb/<kernel name>``."""

    def __init__(self, base: Path) -> None:
        self.base = base

    def mount(self, device_node: str, fs_type: str, name: str) -> Path:
        mp = self.base / name
        mp.mkdir(parents=True, exist_ok=True)
        opts = BASE_OPTIONS + ("," + FS_OPTIONS[fs_type] if fs_type in FS_OPTIONS else "")
        cmd = ["mount", "-t", fs_type, "-o", opts + ",nosymfollow", device_node, str(mp)]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if r.returncode != 0:  # kernels before 5.10 have no nosymfollow; the copy step follows no links anyway
            cmd[4] = opts
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise OSError(f"mount {device_node} failed: {r.stderr.strip()}")
        return mp

    def unmount(self, mountpoint: Path) -> None:
        r = subprocess.run(["umount", str(mountpoint)], capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            subprocess.run(["umount", "-l", str(mountpoint)], capture_output=True, text=True, timeout=60)
        with contextlib.suppress(OSError):
            mountpoint.rmdir()


def prop(device: Any, key: str) -> str:
    """A udev property of a pyudev.Device (or of a recorded properties dict)."""
    if isinstance(device, dict):
        return str(device.get(key, ""))
    try:
        return str(device.properties.get(key, "") or "")
    except AttributeError:
        return str(device.get(key, "") or "")


def is_stick(device: Any) -> bool:
    if prop(device, "SUBSYSTEM") != "block":
        return False
    if prop(device, "ID_BUS") != "usb" and not prop(device, "ID_USB_DRIVER"):
        return False
    devtype = prop(device, "DEVTYPE")
    if devtype not in ("partition", "disk"):
        return False
    fs = prop(device, "ID_FS_TYPE")
    usage = prop(device, "ID_FS_USAGE")
    return bool(fs) and fs in FS_TYPES and usage in ("", "filesystem")


class UsbWatcher:
    """Turns udev block events into provisioning runs. ``handle`` processes one event (tests call it)."""

    def __init__(self, settings: Settings, *, mounter: Mounter | None = None,
                 provision_fn: Callable[..., Any] | None = None,
                 on_progress: Callable[[str, float], None] | None = None,
                 on_result: Callable[[Any], None] | None = None) -> None:
        self.settings = settings
        self.mounter = mounter or SystemMounter(settings.paths.runtime_dir / "usb")
        if provision_fn is None:
            from .pipeline import provision as provision_fn
        self.provision_fn = provision_fn
        self.on_progress = on_progress
        self.on_result = on_result
        self.mounted: dict[str, Path] = {}  # device node -> mountpoint
        self.results: list[Any] = []

    def handle(self, device: Any, action: str | None = None) -> Any:
        action = action or getattr(device, "action", None) or prop(device, "ACTION")
        node = getattr(device, "device_node", None) or prop(device, "DEVNAME")
        if action == "remove":
            mp = self.mounted.pop(node, None)
            if mp is not None:
                log.warning("USB stick %s removed while mounted", node, extra={"device": node})
                self.mounter.unmount(mp)
            return None
        if action not in ("add", "change") or not is_stick(device) or node in self.mounted:
            return None
        name = Path(node).name
        fs = prop(device, "ID_FS_TYPE")
        label = prop(device, "ID_FS_LABEL") or name
        log.info("USB stick %s (%s, %s) plugged in", node, label, fs, extra={"device": node})
        try:
            mp = self.mounter.mount(node, fs, name)
        except OSError as e:
            log.warning("cannot mount %s: %s", node, e, extra={"device": node})
            return self._done(_failed("mount", "The USB stick could not be read — check it on a laptop, "
                                      "or format it as FAT32/exFAT and copy the bundle again"))
        self.mounted[node] = mp

        def release() -> None:
            m = self.mounted.pop(node, None)
            if m is not None:
                self.mounter.unmount(m)

        try:
            folder = find_bundle(mp)
            if folder is None:
                return self._done(_failed("no-bundle", NO_BUNDLE))
            result = self.provision_fn(self.settings, folder, self.on_progress, on_copied=release)
            return self._done(result)
        finally:
            release()

    def _done(self, result: Any) -> Any:
        self.results.append(result)
        if self.on_result:
            self.on_result(result)
        return result

    def run(self, events: Iterable[Any] | None = None, stop: threading.Event | None = None) -> None:
        """Handle events until ``stop`` is set: from ``events`` (tests), or a live pyudev monitor."""
        if events is None:
            events = monitor_events(stop)
        for dev in events:
            if stop is not None and stop.is_set():
                break
            try:
                self.handle(dev)
            except Exception:
                log.exception("USB event handling failed")


def monitor_events(stop: threading.Event | None = None, poll_s: float = 1.0) -> Iterable[Any]:
    import pyudev

    context = pyudev.Context()
    monitor = pyudev.Monitor.from_netlink(context)
    monitor.filter_by(subsystem="block")
    monitor.start()
    # Sticks already plugged in when the kiosk starts count as plugged in now.
    for dev in context.list_devices(subsystem="block"):
        if is_stick(dev):
            yield _Replay(dev, "add")
    while stop is None or not stop.is_set():
        dev = monitor.poll(timeout=poll_s)
        if dev is not None:
            yield dev


class _Replay:
    """A device from enumeration, presented as an event with ``action``."""

    def __init__(self, dev: Any, action: str) -> None:
        self._dev, self.action = dev, action
        self.device_node = dev.device_node
        self.properties = dev.properties


def _failed(code: str, message: str):
    from .pipeline import ProvisionResult

    return ProvisionResult(False, message, code=code, step="copy")


def main(argv: list[str] | None = None) -> int:
    """``python -m provisioning.udev``: watch for sticks and provision from each (runs as root on the box,
    for the mount; the systemd unit and the daemon's own watcher are the alternatives)."""
    import sys

    from appliance import logs, paths

    logs.setup("INFO")
    settings = paths.load_settings()

    def show(step: str, frac: float) -> None:
        print(f"\r{step:<48} {frac:4.0%}", end="", file=sys.stderr, flush=True)

    def done(result: Any) -> None:
        print(f"\n{result.message}", file=sys.stderr)

    stop = threading.Event()
    try:
        UsbWatcher(settings, on_progress=show, on_result=done).run(stop=stop)
    except KeyboardInterrupt:
        stop.set()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
