"""The one error type provisioning raises: a code for the journal and a sentence for the installer."""

from __future__ import annotations


class ProvisionError(Exception):
    """A provisioning failure.

    ``code`` is a short stable token (journal field ``CODE``, tests); ``message`` is the plain-language
    sentence shown on the kiosk's screen and written to ``provision-report.txt`` — it says what is
    wrong and how to fix it, never a traceback.
    """

    def __init__(self, code: str, message: str, *, step: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.step = step

    def __str__(self) -> str:
        return self.message
