"""Notices USB sticks that the root helper mounted, and hands them to the app.

``avatar-kiosk-usb@<dev>.service`` (udev -> SYSTEMD_WANTS) mounts a stick read-only at
``<runtime_dir>/usb/<dev>`` (box: ``/run/avatar-kiosk/usb/sdb1``). The unprivileged daemon only
looks: a cheap scan of that folder once a second, on the loop — no pyudev, no privileges. On the box
only real mount points count; in a dev checkout any folder there does (make one to "plug in" a
stick).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


class UsbWatcher:
    def __init__(self, root: Path, *, require_mount: bool = True,
                 is_mount: Callable[[str], bool] = os.path.ismount) -> None:
        self.root = Path(root)
        self.require_mount = require_mount
        self.is_mount = is_mount
        self.present: set[Path] = set()

    def scan(self) -> tuple[list[Path], list[Path]]:
        """(sticks that appeared, sticks that went) since the last scan."""
        now = set()
        try:
            entries = list(os.scandir(self.root))
        except OSError:
            entries = []
        for e in entries:
            if e.is_dir(follow_symlinks=False) and (not self.require_mount or self.is_mount(e.path)):
                now.add(Path(e.path))
        new, gone = sorted(now - self.present), sorted(self.present - now)
        self.present = now
        return new, gone
