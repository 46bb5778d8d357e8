"""Face rig, animator, bad photos and the face bench, on the public-domain astronaut portrait."""

from __future__ import annotations

import argparse
import json
import struct
import zlib

import cv2
import numpy as np
import pytest
from skimage import data

from appliance.bench import face as bench
from appliance.face.animator import FaceParams, MeshWarpAnimator
from appliance.face.errors import (
    FaceError,
    FaceTooSmallError,
    ImageTooLargeError,
    ImageUnreadableError,
    NoFaceError,
    TwoFacesError,
)
from appliance.face.rig import (
    EYE_Y,
    IOD,
    MAX_FILE_BYTES,
    FaceManager,
    FaceRig,
    build_rig,
    load_image,
    load_or_build_rig,
    rig_cache_path,
)
from appliance.messages import MouthPose


@pytest.fixture(scope="module")
def rig() -> FaceRig:
    return build_rig(data.astronaut(), size=512)


@pytest.fixture
def animator(rig) -> MeshWarpAnimator:
    return MeshWarpAnimator(rig, size=512, seed=0)


def _changed(a: np.ndarray, b: np.ndarray, thresh: int = 2) -> np.ndarray:
    return np.abs(a.astype(int) - b.astype(int)).max(axis=2) > thresh


def _inside(mask: np.ndarray, box: tuple[int, int, int, int], grow: int = 0) -> np.ndarray:
    x0, y0, x1, y1 = box
    out = np.zeros_like(mask)
    out[max(0, y0 - grow):y1 + grow, max(0, x0 - grow):x1 + grow] = True
    return out


# --------------------------------------------------------------------------- rig


def test_rig_finds_landmarks_mouth_and_eyes(rig):
    s = rig.size
    assert rig.landmarks.shape == (478, 2)
    m = rig.margin
    assert (rig.landmarks >= 0).all() and (rig.landmarks < s + 2 * m).all()
    # aligned: pupils level, at the fixed height and distance
    right, left = rig.landmarks[468] - m, rig.landmarks[473] - m
    assert abs(right[1] - left[1]) < 1.5
    assert abs((right[1] + left[1]) / 2 - EYE_Y * s) < 2
    assert abs(abs(left[0] - right[0]) - IOD * s) < 2
    eye_r, eye_l, mouth = rig.region("eye_r"), rig.region("eye_l"), rig.region("mouth")
    assert eye_r[2] <= eye_l[0] + 5                       # two separate eyes, left to right
    assert mouth[1] > max(eye_r[3], eye_l[3])             # the mouth is below the eyes
    mouth_cx = (mouth[0] + mouth[2]) / 2
    assert abs(mouth_cx - s / 2) < 0.1 * s                # and under the middle of the face
    # the lips are found where they are: lip tissue is redder than the cheeks
    img = rig.portrait().astype(float)
    lm = rig.landmarks - m

    def redness(p):
        x, y = int(round(p[0])), int(round(p[1]))
        patch = img[y - 1:y + 2, x - 1:x + 2]
        return (patch[..., 0] - patch[..., 1]).mean()

    lower_lip = redness((lm[17] + lm[14]) / 2)
    upper_lip = redness((lm[0] + lm[13]) / 2)
    cheeks = max(redness(lm[205]), redness(lm[425]))
    assert lower_lip > cheeks + 5 and upper_lip > cheeks + 5
    assert len(rig.triangles) > 800 and rig.triangles.max() < len(rig.mesh_points)


def test_no_face(tmp_path):
    with pytest.raises(NoFaceError, match="No face"):
        build_rig(data.coffee())
    with pytest.raises(NoFaceError):
        build_rig(np.full((400, 300, 3), 128, np.uint8))


def test_two_faces():
    img = data.astronaut()
    with pytest.raises(TwoFacesError) as e:
        build_rig(np.concatenate([img, img], axis=1))
    assert "two faces" in str(e.value) and "one person" in str(e.value)
    assert e.value.code == "two_faces"


def test_face_too_small():
    small = cv2.resize(data.astronaut(), (200, 200), interpolation=cv2.INTER_AREA)
    with pytest.raises(FaceTooSmallError, match="too small"):
        build_rig(small)


def test_corrupt_files(tmp_path, settings):
    junk = tmp_path / "photo.jpg"
    junk.write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 20)
    with pytest.raises(ImageUnreadableError, match="cannot be read"):
        load_image(junk)
    ok, png = cv2.imencode(".png", data.astronaut())
    truncated = tmp_path / "half.png"
    truncated.write_bytes(png.tobytes()[: len(png) // 2])
    with pytest.raises(ImageUnreadableError):
        load_or_build_rig(truncated, settings.paths.cache_dir)
    with pytest.raises(ImageUnreadableError, match="missing"):
        load_image(tmp_path / "nope.jpg")


def _png_header_only(path, width: int, height: int) -> None:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))


def test_huge_files(tmp_path, settings):
    big = tmp_path / "big.jpg"
    with open(big, "wb") as fh:  # sparse: large on paper, nothing on disk
        fh.truncate(MAX_FILE_BYTES + 1)
    with pytest.raises(ImageTooLargeError, match="too big"):
        load_or_build_rig(big, settings.paths.cache_dir)
    bomb = tmp_path / "bomb.png"
    _png_header_only(bomb, 30000, 30000)  # 900 megapixels, a few bytes long
    assert bomb.stat().st_size < 1000
    with pytest.raises(ImageTooLargeError, match="too big"):
        load_image(bomb)
    wide = tmp_path / "wide.png"
    _png_header_only(wide, 12000, 6000)   # 72 megapixels: over our limit, under PIL's
    with pytest.raises(ImageTooLargeError, match="12000×6000"):
        load_image(wide)


def test_errors_are_plain_language():
    for cls in (NoFaceError, TwoFacesError, FaceTooSmallError, ImageTooLargeError, ImageUnreadableError):
        assert issubclass(cls, FaceError)
        assert cls.code != FaceError.code


def test_cache_and_manager_keep_last_good_face(tmp_path, rig):
    photo = tmp_path / "photo.png"
    cv2.imwrite(str(photo), data.astronaut()[:, :, ::-1])
    cache = tmp_path / "cache"
    rig.save(rig_cache_path(photo, cache))  # what a first build would have written
    loaded = load_or_build_rig(photo, cache)
    np.testing.assert_array_equal(loaded.landmarks, rig.landmarks)
    np.testing.assert_array_equal(loaded.fields["jaw_low"], rig.fields["jaw_low"])
    assert loaded.mouth_roi == rig.mouth_roi
    mgr = FaceManager(cache)
    assert mgr.load(photo) is mgr.rig
    good = mgr.rig
    bad = tmp_path / "coffee.png"
    cv2.imwrite(str(bad), data.coffee()[:, :, ::-1])
    with pytest.raises(NoFaceError):
        mgr.load(bad)
    assert mgr.rig is good and mgr.photo == photo
    assert isinstance(mgr.last_error, NoFaceError)


# --------------------------------------------------------------------------- animator


def test_mouth_changes_only_the_lower_face(animator, rig):
    rest = animator.render(FaceParams())
    np.testing.assert_array_equal(rest, rig.portrait())
    opened = animator.render(FaceParams(open=0.8))
    changed = _changed(rest, opened)
    lower = _inside(changed, rig.region("lower_face"))
    assert changed[lower].sum() > 1500            # the mouth really opened
    assert not changed[~lower].any()              # nothing else moved
    assert not changed[: rig.region("mouth")[1] - 30].any()  # eyes and nose untouched
    wide = animator.render(FaceParams(width=1.0))
    assert _changed(rest, wide)[lower].sum() > 200 and not _changed(rest, wide)[~lower].any()


def test_open_mouth_interior_is_believable(animator, rig):
    a = 0.8
    img = animator.render(FaceParams(open=a)).astype(float)
    m = rig.margin
    x0 = rig.mouth_roi[0] - m
    col = int(np.argmax(rig.gap_bottom))          # the middle of the mouth
    top = rig.mouth_roi[1] - m + rig.seam[col] + a * rig.gap_top[col]
    bot = rig.mouth_roi[1] - m + rig.seam[col] + a * rig.gap_bottom[col]
    assert bot - top > 15                         # a real opening, in pixels
    inner = img[int(top) + 3:int(bot) - 2, x0 + col - 3:x0 + col + 4]
    r, g, b = inner[..., 0].mean(), inner[..., 1].mean(), inner[..., 2].mean()
    assert r > g + 15 and r > b + 10              # dark red, not grey smear
    assert inner.mean(axis=2).min() > 8           # not a black hole
    assert inner.mean() < img.mean()              # darker than the face


def test_closed_lips_cover_a_smiles_teeth_and_rounding_narrows_the_mouth(animator, rig):
    # The astronaut smiles with her teeth showing (the judge reads a 6.7 % gap at rest): for м/п/б
    # the lips must meet over them; for у the corners come in. Read by mediapipe's face mesh.
    from appliance.bench.lipsync import Judge

    judge = Judge()
    try:
        rest_gap, rest_width = judge.measure(animator.render(FaceParams()))
        closed_gap, closed_width = judge.measure(animator.render(FaceParams(close=1.0)))
        _, round_width = judge.measure(animator.render(FaceParams(open=0.6, width=-1.0)))
        _, spread_width = judge.measure(animator.render(FaceParams(open=0.3, width=1.0)))
    finally:
        judge.close()
    assert rest_gap > 0.05 and closed_gap <= 0.02, (rest_gap, closed_gap)
    assert abs(closed_width - rest_width) < 0.02            # pressed together, not pursed
    assert round_width < 0.8 * rest_width < spread_width
    changed = _changed(animator.render(FaceParams()), animator.render(FaceParams(close=1.0)))
    assert not changed[~_inside(changed, rig.region("lower_face"))].any()  # only the lower face moves


def test_blink_changes_only_the_eyes(animator, rig):
    rest = animator.render(FaceParams())
    closed = animator.render(FaceParams(blink_l=1.0, blink_r=1.0))
    changed = _changed(rest, closed)
    eyes = _inside(changed, rig.region("eyes"))
    assert not changed[~eyes].any()
    counts = []
    for name in ("eye_l", "eye_r"):
        x0, y0, x1, y1 = rig.region(name)
        counts.append(changed[y0:y1, x0:x1].sum())
        assert counts[-1] > 150, name
    assert 0.6 < counts[0] / counts[1] < 1.6         # both eyes close alike
    one = _changed(rest, animator.render(FaceParams(blink_l=1.0)))
    xl0, _, xl1, _ = rig.region("eye_l")
    xr0, _, xr1, _ = rig.region("eye_r")
    assert one[:, xl0:xl1].sum() > 150 and one[:, xr0:xr1].sum() == 0  # one eye alone can wink


def test_no_seams_at_the_warped_regions_border(animator, rig):
    rest = animator.render(FaceParams())
    frame = animator.render(FaceParams(open=1.0, width=1.0, blink_l=1, blink_r=1, gaze_x=1, gaze_y=-1))
    diff = np.abs(frame.astype(int) - rest.astype(int)).max(axis=2)
    m = rig.margin
    for x0, y0, x1, y1 in (rig.mouth_roi, rig.eye_roi):
        x0, y0, x1, y1 = x0 - m, y0 - m, min(x1 - m, rig.size), min(y1 - m, rig.size)
        ring = np.zeros_like(diff, bool)
        ring[max(0, y0):y1, max(0, x0):x1] = True
        ring[max(0, y0) + 4:y1 - 4, max(0, x0) + 4:x1 - 4] = False
        assert diff[ring].max() <= 3  # the border of each warped region stays put


def test_silence_keeps_the_mouth_closed(animator, rig):
    from appliance.face.mouth import MouthTracker

    tr = MouthTracker(22050, 25)
    tr.add(np.zeros(22050 * 2, np.float32), 0)
    poses = [tr.pose_at(k / 25) for k in range(50)]
    assert all(p.open == 0 and p.width == 0 for p in poses)
    for k in (0, 13, 40):
        params = animator.params_at(k / 25, poses[k])
        assert params.open == 0 and params.width == 0
        still = animator.render(FaceParams(blink_l=params.blink_l, blink_r=params.blink_r,
                                           gaze_x=params.gaze_x, gaze_y=params.gaze_y))
        x0, y0, x1, y1 = rig.region("lower_face")
        np.testing.assert_array_equal(still[y0:y1, x0:x1], rig.portrait()[y0:y1, x0:x1])


def test_life_is_deterministic_and_blinks_at_random_intervals(rig):
    a, b = MeshWarpAnimator(rig, seed=3), MeshWarpAnimator(rig, seed=3)
    ts = [0.5, 7.3, 2.2, 60.0, 7.3]
    for t in ts:
        assert a.params_at(t, MouthPose()) == b.params_at(t, MouthPose())
    np.testing.assert_array_equal(a.frame(7.3, MouthPose(0.3, 0.2)), b.frame(7.3, MouthPose(0.3, 0.2)))
    fresh = MeshWarpAnimator(rig, seed=3)
    assert fresh.params_at(60.0, MouthPose()) == a.params_at(60.0, MouthPose())  # query order does not matter
    blinks = np.array([a.params_at(k / 25, MouthPose()).blink_l for k in range(25 * 120)])
    onsets = np.flatnonzero((blinks[1:] > 0.5) & (blinks[:-1] <= 0.5))
    assert 12 <= len(onsets) <= 60                 # a blink every 2–10 s
    gaps = np.diff(onsets)
    assert gaps.std() > 10                          # not a metronome
    gaze = np.array([a.params_at(k / 25, MouthPose()).gaze_x for k in range(25 * 120)])
    assert np.abs(gaze).max() > 0.3 and np.abs(gaze).max() <= 1.0
    other = MeshWarpAnimator(rig, seed=4)
    assert [other.params_at(k / 5, MouthPose()).blink_l for k in range(300)] != list(blinks[::5])


def test_frame_size_and_motion(rig):
    small = MeshWarpAnimator(rig, size=256)
    img = small.frame(3.3, MouthPose(0.5, 0.5))
    assert img.shape == (256, 256, 3) and img.dtype == np.uint8
    anim = MeshWarpAnimator(rig)
    f1, f2 = anim.frame(1.0, MouthPose()), anim.frame(3.0, MouthPose())
    assert np.abs(f1.astype(int) - f2.astype(int)).mean() > 0.5   # breathing / sway keep it alive
    # the canvas margin hides the photo's edge: no replicated smear at the frame border
    assert np.abs(f1[:, 0].astype(int) - rig.portrait()[:, 0].astype(int)).mean() < 40


def test_face_bench(settings, rig, capsys, tmp_path):
    photo = bench._photo(settings)
    rig.save(rig_cache_path(photo, settings.paths.cache_dir))
    out = tmp_path / "face.json"
    rc = bench.run(settings, argparse.Namespace(frames=30, json=out))
    text = capsys.readouterr().out
    assert "p50" in text and "p99" in text and "FPS" in text
    figures = json.loads(out.read_text())["face"]
    assert figures["frames"] == 30 and figures["p50_ms"] > 0 and figures["p99_ms"] >= figures["p50_ms"]
    assert rc == (0 if figures["fps"] >= settings.config.face.fps else 1)


def test_tilted_and_big_photos_are_aligned():
    img = data.astronaut()
    h, w = img.shape[:2]
    tilt = cv2.warpAffine(img, cv2.getRotationMatrix2D((w / 2, h / 2), 18, 1.0), (w, h),
                          borderMode=cv2.BORDER_REFLECT)
    big = cv2.resize(img, (2600, 2600), interpolation=cv2.INTER_CUBIC)
    for photo in (tilt, big):
        rig = build_rig(photo, size=384)
        right, left = rig.landmarks[468] - rig.margin, rig.landmarks[473] - rig.margin
        assert abs(right[1] - left[1]) < 2                      # eyes level again
        assert abs(abs(left[0] - right[0]) - IOD * 384) < 2
        assert rig.portrait().shape == (384, 384, 3)
        assert MeshWarpAnimator(rig, size=384).frame(1.0, MouthPose(0.6, 0.2)).shape == (384, 384, 3)
