"""From a photo file to its 478 face landmarks: loading it safely, counting faces, the face mesh.

Landmarks come from mediapipe 0.10.21's face mesh (model id ``mediapipe-face-mesh``; 478 points with
``refine_landmarks=True``), proven offline here (its tflite files ship inside the wheel). Counting
faces uses mediapipe's full-range face detector from the same wheel, because the face mesh alone
misses small faces in wide pictures (two people side by side come back as *zero* faces).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .errors import (
    FaceError,
    FaceTooSmallError,
    ImageTooLargeError,
    ImageUnreadableError,
    NoFaceError,
    TwoFacesError,
)

MAX_FILE_BYTES = 40 * 1024 * 1024
MAX_PIXELS = 50_000_000
MIN_FACE_PX = 64          # face width in the photo's own pixels


def load_image(path: Path) -> np.ndarray:
    """Read a photo file as HxWx3 uint8 RGB (EXIF rotation applied), refusing huge or broken files."""
    from PIL import Image, ImageOps

    path = Path(path)
    if not path.is_file():
        raise ImageUnreadableError(f"The photo file {path.name} is missing — put the portrait photo in the bundle.")
    nbytes = path.stat().st_size
    if nbytes > MAX_FILE_BYTES:
        raise ImageTooLargeError(
            f"The photo file {path.name} is {nbytes / 1e6:.0f} MB — too big. Use a JPEG or PNG under "
            f"{MAX_FILE_BYTES // (1024 * 1024)} MB (about 2000×2000 pixels is plenty).")
    try:
        with Image.open(path) as im:
            w, h = im.size
            if w * h > MAX_PIXELS:
                raise ImageTooLargeError(
                    f"The photo {path.name} is {w}×{h} pixels — too big. Use a photo under "
                    f"{MAX_PIXELS // 1_000_000} megapixels (about 2000×2000 pixels is plenty).")
            im = ImageOps.exif_transpose(im)
            rgb = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except FaceError:
        raise
    except Image.DecompressionBombError as e:
        raise ImageTooLargeError(f"The photo {path.name} is far too big (hundreds of megapixels) — use a "
                                 f"photo under {MAX_PIXELS // 1_000_000} megapixels (about 2000×2000 "
                                 "pixels is plenty).") from e
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageUnreadableError(
            f"The photo file {path.name} cannot be read as a picture (damaged or not an image: {e}). "
            "Save the portrait again as a JPEG or PNG.") from e
    return np.ascontiguousarray(rgb)


def as_rgb(image: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.ndim not in (2, 3) or image.size == 0:
        raise ImageUnreadableError("The photo is not a picture (empty or of the wrong shape) — use a JPEG or PNG portrait.")
    if image.shape[0] * image.shape[1] > MAX_PIXELS:
        raise ImageTooLargeError(
            f"The photo is {image.shape[1]}×{image.shape[0]} pixels — too big. Use a photo under "
            f"{MAX_PIXELS // 1_000_000} megapixels.")
    if image.dtype != np.uint8:
        image = np.clip(image * (255.0 if image.dtype.kind == "f" and image.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    elif image.shape[2] == 4:
        image = image[:, :, :3]
    elif image.shape[2] != 3:
        raise ImageUnreadableError("The photo has an unusual colour format — save it as an ordinary RGB JPEG or PNG.")
    return np.ascontiguousarray(image)


# --------------------------------------------------------------------------- finding the face

def _downscaled(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    h, w = image.shape[:2]
    f = min(1.0, max_side / max(h, w))
    if f < 1.0:
        image = cv2.resize(image, (round(w * f), round(h * f)), interpolation=cv2.INTER_AREA)
    return image, f


def _count_faces(image: np.ndarray) -> list[tuple[float, float, float, float]]:
    """Face boxes (x, y, w, h in image pixels), biggest first; tiny background faces are ignored."""
    import mediapipe as mp

    small, f = _downscaled(image, 1280)
    boxes = []
    for selection in (1, 0):  # full range first (small faces in wide pictures), then short range
        with mp.solutions.face_detection.FaceDetection(model_selection=selection,
                                                       min_detection_confidence=0.6) as fd:
            res = fd.process(small)
        for d in res.detections or []:
            b = d.location_data.relative_bounding_box
            boxes.append((b.xmin * small.shape[1] / f, b.ymin * small.shape[0] / f,
                          b.width * small.shape[1] / f, b.height * small.shape[0] / f))
        if boxes:
            break
    boxes.sort(key=lambda b: -b[2])
    if not boxes:
        return []
    big = boxes[0][2]
    # a face counts when it is at least 40 % the width of the biggest (a poster far behind does not)
    return [b for b in boxes if b[2] >= 0.4 * big]


def find_landmarks(image: np.ndarray) -> np.ndarray:
    """The 478 face-mesh landmarks (x, y in image pixels) of the one face in the photo.

    Raises NoFaceError, TwoFacesError or FaceTooSmallError with a message for the installer.
    """
    import mediapipe as mp

    image = as_rgb(image)
    boxes = _count_faces(image)
    if not boxes:
        raise NoFaceError("No face was found in the photo — use a clear, front-facing portrait of one "
                          "person, with the face well lit and filling a good part of the picture.")
    if len(boxes) > 1:
        raise TwoFacesError(f"The photo shows {len(boxes) if len(boxes) > 2 else 'two'} faces — "
                            "use a photo with one person only.")
    x, y, w, h = boxes[0]
    if w < MIN_FACE_PX * 0.8:
        raise FaceTooSmallError(
            f"The face in the photo is too small ({w:.0f} pixels wide) — use a sharper photo where the "
            f"face is at least {MIN_FACE_PX * 2} pixels wide (a close-up portrait).")
    # face mesh on a square crop around the face: works for small faces in big pictures
    side = 2.4 * max(w, h)
    cx, cy = x + w / 2, y + h / 2
    x0, y0 = cx - side / 2, cy - side / 2
    scale = min(1.0, 640 / side)
    out = round(side * scale)
    m = np.array([[scale, 0, -x0 * scale], [0, scale, -y0 * scale]], np.float64)
    crop = cv2.warpAffine(image, m, (out, out), flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=2,
                                         refine_landmarks=True, min_detection_confidence=0.5) as fm:
        res = fm.process(crop)
    faces = res.multi_face_landmarks or []
    if not faces:
        raise NoFaceError("A face-like shape was found but its eyes, nose and mouth could not be "
                          "traced — use a sharper, front-facing portrait without sunglasses or masks.")
    pts = np.array([(p.x * out, p.y * out) for p in faces[0].landmark], np.float64)
    pts = (pts - m[:, 2]) / scale
    width = pts[:, 0].max() - pts[:, 0].min()
    if width < MIN_FACE_PX:
        raise FaceTooSmallError(
            f"The face in the photo is too small ({width:.0f} pixels wide) — use a sharper photo where "
            f"the face is at least {MIN_FACE_PX * 2} pixels wide (a close-up portrait).")
    return pts.astype(np.float32)
