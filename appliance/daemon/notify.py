"""sd_notify(3) in a few lines: READY=1, STATUS=…, WATCHDOG=1, MAINPID=, STOPPING=1.

systemd passes ``$NOTIFY_SOCKET`` (a path, or ``@name`` for the abstract namespace) to a
``Type=notify`` service; each message is one datagram of ``KEY=value`` lines. Outside systemd the
variable is absent and every call is a cheap no-op, so the daemon runs the same code in a checkout.

``$WATCHDOG_USEC`` is the unit's ``WatchdogSec=``; we ping at half of it. systemd also sets
``$WATCHDOG_PID`` to the unit's first process. On the box that process is the kiosk compositor
launcher (cage), whose child we are; the daemon then claims ``MAINPID=`` for itself, so the
watchdog, ``systemctl reload`` (SIGHUP) and the stop signal all address the daemon.
"""

from __future__ import annotations

import os
import socket


class Notifier:
    def __init__(self, env: dict[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        addr = env.get("NOTIFY_SOCKET", "")
        self.address: str | bytes | None = None
        if addr.startswith("@"):
            self.address = "\0" + addr[1:]  # abstract namespace
        elif addr.startswith("/"):
            self.address = addr
        self.watchdog_usec = 0
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        if usec.isdigit() and int(usec) > 0 and (not pid.isdigit() or int(pid) in (os.getpid(), os.getppid())):
            self.watchdog_usec = int(usec)
        self._sock: socket.socket | None = None

    @property
    def enabled(self) -> bool:
        return self.address is not None

    @property
    def watchdog_interval(self) -> float | None:
        """Seconds between WATCHDOG=1 pings (half of WatchdogSec=), or None when there is no watchdog."""
        return self.watchdog_usec / 2e6 if self.watchdog_usec else None

    def send(self, *lines: str) -> bool:
        """Send one datagram of ``KEY=value`` lines; False (never an exception) when it cannot."""
        if self.address is None:
            return False
        try:
            if self._sock is None:
                # Non-blocking: a notify socket nobody reads (a hung manager, a test's fake) fills up,
                # and a blocking send would then freeze the main loop — the face and the control
                # socket with it. A message that does not fit is dropped; the next one says the same.
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK)
            self._sock.sendto("\n".join(lines).encode("utf-8", "replace"), self.address)
            return True
        except OSError:
            return False

    def ready(self, status: str = "") -> bool:
        return self.send("READY=1", *([f"STATUS={status}"] if status else []))

    def status(self, text: str) -> bool:
        return self.send(f"STATUS={text.splitlines()[0] if text else ''}")

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def mainpid(self, pid: int | None = None) -> bool:
        return self.send(f"MAINPID={pid or os.getpid()}")

    def reloading(self) -> bool:
        return self.send("RELOADING=1")

    def stopping(self, status: str = "") -> bool:
        return self.send("STOPPING=1", *([f"STATUS={status}"] if status else []))

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
