"""The appliance side of the kiosk: the systemd-facing daemon, its control socket and the doctor.

* :mod:`.notify`  — sd_notify (READY, STATUS, WATCHDOG, MAINPID) over ``$NOTIFY_SOCKET``.
* :mod:`.apps`    — the :class:`~.apps.KioskApp` protocol the daemon runs, and ``MaintenanceApp`` for a
  box that cannot start its real app.
* :mod:`.service` — the daemon: one asyncio loop on the main thread around the app its caller
  builds (``avatar-kiosk run``: :mod:`appliance.app.run`).
* :mod:`.control` — the technician's control socket (JSON lines) and ``status`` / ``logs``.
* :mod:`.doctor`  — ``avatar-kiosk doctor``: one line per check, with the fix.
"""
