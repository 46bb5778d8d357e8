"""avatar-kiosk: the daemon package (the conversation loop, the face, the screen, the service)."""

__version__ = "0.1.0"
