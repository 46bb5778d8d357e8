"""The face: a rig built once from a photo, a mouth track from speech audio, and the animator.

Public API (details and exact behaviour in each module's docstring)::

    from appliance.face.rig import build_rig, load_or_build_rig, FaceManager, FaceRig
    build_rig(image_rgb: np.ndarray, size: int = 512) -> FaceRig          # raises FaceError
    load_or_build_rig(photo_path: Path, cache_dir: Path, size: int = 512) -> FaceRig
    FaceManager(cache_dir, size=512).load(photo_path) -> FaceRig           # keeps the last good rig

    from appliance.face.mouth import MouthTracker
    MouthTracker(sample_rate, fps=25).add(samples_f32, start_sample); .pose_at(t) -> MouthPose

    from appliance.face.animator import MeshWarpAnimator
    MeshWarpAnimator(rig, size=512, seed=0).frame(t, mouth) -> (size, size, 3) uint8 RGB

    from appliance.face.errors import FaceError (NoFaceError, TwoFacesError, FaceTooSmallError,
                                                 ImageTooLargeError, ImageUnreadableError)

Importing this package is cheap: mediapipe loads only when a rig is built.
"""

from .errors import (
    FaceError,
    FaceTooSmallError,
    ImageTooLargeError,
    ImageUnreadableError,
    NoFaceError,
    TwoFacesError,
)

__all__ = ["FaceError", "FaceTooSmallError", "ImageTooLargeError", "ImageUnreadableError",
           "NoFaceError", "TwoFacesError"]
