"""The appliance side of the kiosk: the systemd-facing daemon, its control socket and the doctor.

* :mod:`.notify`  — sd_notify (READY, STATUS, WATCHDOG, MAINPID) over ``$NOTIFY_SOCKET``.
* :mod:`.apps`    — the :class:`~.apps.KioskApp` protocol the daemon runs, plus the built-in apps
  (``NullApp`` for tests, ``MaintenanceApp`` for a box that cannot start its real app).
* :mod:`.service` — ``avatar-kiosk run``: one asyncio loop on the main thread.
* :mod:`.control` — the technician's control socket (JSON lines) and ``status`` / ``logs``.
* :mod:`.doctor`  — ``avatar-kiosk doctor``: one line per check, with the fix.
"""
