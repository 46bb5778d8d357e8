"""What ``avatar-kiosk status`` reports besides the app's own figures: recent warnings, latency
percentiles, the process's GPU memory."""

from __future__ import annotations

import collections
import contextlib
import logging
import math
import shutil
import subprocess


class RecentErrors(logging.Handler):
    """The last warnings and errors of any component, for ``avatar-kiosk status``."""

    def __init__(self, size: int = 20) -> None:
        super().__init__(logging.WARNING)
        self.items: collections.deque = collections.deque(maxlen=size)

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):
            self.items.append({"t": record.created, "level": record.levelname,
                               "msg": record.getMessage().splitlines()[0][:300]})


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0…100) of a non-empty list."""
    s = sorted(values)
    k = max(0, min(len(s) - 1, math.ceil(q / 100 * len(s)) - 1))
    return float(s[k])


def gpu_mem_of(pid: int) -> int | None:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=3).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    used = [int(b) for a, b in (ln.split(",")[:2] for ln in out.splitlines() if "," in ln)
            if a.strip() == str(pid) and b.strip().isdigit()]
    return sum(used) if used else 0
