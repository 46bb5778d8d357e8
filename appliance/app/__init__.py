"""The kiosk app: the one place that puts the kiosk together (conversation, face, screen, sticks).

``avatar-kiosk run`` (the systemd service), ``avatar-kiosk demo`` and the tests all build the same
:class:`~appliance.app.kiosk.KioskApp`; they differ only in the devices they hand it (a sound card
or a WAV-file visitor, a speaker or a recording) — see :mod:`appliance.app.run`.
"""
