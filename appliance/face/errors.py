"""Face-photo problems, each phrased for an installer standing at the kiosk.

Every error is a :class:`FaceError`; ``str(err)`` is one plain-language sentence saying what is
wrong with the photo and what to do, and ``err.code`` is a short stable name for logs and the
provisioning report (``no_face``, ``two_faces``, ``face_too_small``, ``image_too_large``,
``image_unreadable``).
"""

from __future__ import annotations


class FaceError(ValueError):
    """A photo that cannot become a face rig. ``code`` names the problem; the message says the fix."""

    code = "face_error"


class NoFaceError(FaceError):
    code = "no_face"


class TwoFacesError(FaceError):
    code = "two_faces"


class FaceTooSmallError(FaceError):
    code = "face_too_small"


class ImageTooLargeError(FaceError):
    code = "image_too_large"


class ImageUnreadableError(FaceError):
    code = "image_unreadable"
