"""``avatar-kiosk bench --lipsync``: does the rendered mouth follow the voice? An independent judge.

The kiosk's own voice says replies (English and Russian), sustained vowels (и, а, о, у) and
bilabial syllables (мама, папа, baby); its mouth track and face engine render every frame as on
the screen; then mediapipe's face mesh — a model that had no part in making the frames — reads the
mouth off each *rendered* frame: the inner-lip gap and the mouth's width, as shares of the face's
height (forehead to chin). Reported:

- the correlation between the measured opening and the audio's loudness envelope, and the lag (ms)
  where it is best (positive: the mouth is late);
- the width / height ratio of the mouth per sustained vowel (и/i should be widest, у/u roundest);
- on bilabials, whether the lips close (gap ≤ 2 % of the face's height) within 2 frames of each dip
  in the loudness between syllables (where the lips meet for м/п/б/m/p/b);
- the share of silent frames whose mouth is back at the photo's rest pose.

Targets (issue 13): correlation ≥ 0.8 at a lag within ±40 ms; и > а > о > у; lips closed on ≥ 80 %
of bilabials; ≥ 95 % of silent frames at rest. Measuring only: exit 0 when it ran.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

CLIPS = (
    ("reply-en", "en", "The museum is open every day from ten in the morning to six in the evening."),
    ("reply-ru", "ru", "Музей открыт каждый день с десяти утра до шести вечера."),
    ("vowel-и", "ru", "Иииии."),
    ("vowel-а", "ru", "Ааааа."),
    ("vowel-о", "ru", "Ооо."),
    ("vowel-у", "ru", "Ууууу."),
    ("мама-папа", "ru", "Мама, папа, мама, папа."),
    ("baby", "en", "Baby, bob, mama, papa."),
)
VOWEL_ORDER = ("vowel-и", "vowel-а", "vowel-о", "vowel-у")  # widest to roundest
SILENCE_S = 0.6          # before and after each clip: the mouth must rest there
FPS = 25
CLOSED = 0.02            # inner-lip gap as a share of the face's height: lips together
AT_REST = 0.01           # ...within this of the photo's own rest gap: "back at rest"
TARGETS = {"correlation": 0.8, "lag_ms": 40, "bilabial_closed": 0.8, "silent_at_rest": 0.95}
# face-mesh landmarks: inner lips (upper, lower), inner mouth corners, forehead and chin
UPPER, LOWER, LEFT, RIGHT, TOP, CHIN = 13, 14, 78, 308, 10, 152


@dataclass
class Clip:
    name: str
    audio: np.ndarray              # float32 mono at ``rate``, silence around the speech
    rate: int
    envelope: np.ndarray = field(default_factory=lambda: np.zeros(0))  # RMS per video frame
    opening: np.ndarray = field(default_factory=lambda: np.zeros(0))   # inner-lip gap / face height
    width: np.ndarray = field(default_factory=lambda: np.zeros(0))     # corner to corner / face height


def synthesize(tts, text: str, language: str) -> tuple[np.ndarray, int]:
    speech = np.concatenate([np.asarray(c, np.float32) for c in tts.synthesize(text, language)])
    pad = np.zeros(int(SILENCE_S * tts.sample_rate), np.float32)
    return np.concatenate([pad, speech, pad]), tts.sample_rate


def envelope(audio: np.ndarray, rate: int, fps: int = FPS) -> np.ndarray:
    """RMS of each video frame's stretch of audio."""
    n = len(audio) * fps // rate
    edges = [k * rate // fps for k in range(n + 1)]
    return np.array([np.sqrt(np.mean(audio[a:b] ** 2)) if b > a else 0.0
                     for a, b in zip(edges, edges[1:], strict=False)])


def render(animator, audio: np.ndarray, rate: int, fps: int = FPS, text: str = "") -> list[np.ndarray]:
    """The frames the screen would show for ``audio`` saying ``text`` (the kiosk's mouth track,
    which is told each sentence's text as the kiosk tells it, and its face engine)."""
    from ..face.mouth import MouthTracker

    tracker = MouthTracker(rate, fps)
    tracker.add(audio, 0, text)
    if hasattr(animator, "add_audio"):  # a neural lip-sync paints the mouth from the audio itself
        animator.add_audio(audio, rate, 0.0)
    n = len(audio) * fps // rate
    return [animator.frame(k / fps, tracker.pose_at_frame(k)) for k in range(n)]


class Judge:
    """mediapipe's face mesh over rendered frames (video mode: it tracks from frame to frame)."""

    def __init__(self) -> None:
        import mediapipe as mp

        self._mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=False, max_num_faces=1,
                                                     refine_landmarks=True, min_detection_confidence=0.5)

    def measure(self, frame: np.ndarray) -> tuple[float, float]:
        """(inner-lip gap, mouth width), each a share of the face's height; NaN when no face is read."""
        res = self._mesh.process(np.ascontiguousarray(frame))
        if not res.multi_face_landmarks:
            return float("nan"), float("nan")
        p = res.multi_face_landmarks[0].landmark
        h, w = frame.shape[:2]
        xy = {i: np.array([p[i].x * w, p[i].y * h]) for i in (UPPER, LOWER, LEFT, RIGHT, TOP, CHIN)}
        face_h = float(np.linalg.norm(xy[CHIN] - xy[TOP])) or 1.0
        return (float(np.linalg.norm(xy[LOWER] - xy[UPPER])) / face_h,
                float(np.linalg.norm(xy[RIGHT] - xy[LEFT])) / face_h)

    def close(self) -> None:
        self._mesh.close()


def best_lag(opening: np.ndarray, env: np.ndarray, max_frames: int = 5) -> tuple[float, int]:
    """(Pearson r, lag in frames) where the mouth best follows the loudness; positive lag: late."""
    best = (-1.0, 0)
    for lag in range(-max_frames, max_frames + 1):
        a = opening[lag:] if lag >= 0 else opening[:lag]
        b = env[:len(env) - lag] if lag >= 0 else env[-lag:]
        ok = ~np.isnan(a) & ~np.isnan(b)
        if ok.sum() > 10 and a[ok].std() > 0 and b[ok].std() > 0:
            r = float(np.corrcoef(a[ok], b[ok])[0, 1])
            if r > best[0]:
                best = (r, lag)
    return best


def bilabial_closures(clip: Clip) -> tuple[int, int]:
    """(dips, dips where the lips closed): a dip is a frame inside the speech quieter than a third
    of the loudest frames on either side of it — the pause a closed mouth makes between syllables.
    Where the quiet lasts (a comma before "папа", "bob"), the dip is its last frame before speech
    resumes: a stop's lips close for its last ~100 ms, not for the whole pause before it."""
    env, gap = clip.envelope, clip.opening
    loud = env > 0.25 * env.max()
    inside = np.where(loud)[0]
    if len(inside) < 3:
        return 0, 0
    dips = closed = 0
    k = inside[0] + 1
    while k < inside[-1]:
        left, right = env[max(0, k - 4):k].max(), env[k + 1:k + 5].max()
        if env[k] < min(left, right) / 3 and env[k] <= env[k - 1] and env[k] <= env[k + 1]:
            while k + 1 < inside[-1] and env[k + 1] < right / 3:  # still quiet: on to the pause's end
                k += 1
            dips += 1
            near = gap[max(0, k - 2):k + 3]
            if np.nanmin(near) <= CLOSED:  # closed means closed, also on a photo smiling with its teeth
                closed += 1
            k += 3
        k += 1
    return dips, closed


def summarize(clips: list[Clip], rest: float) -> dict:
    speech = [c for c in clips if not c.name.startswith("vowel")]
    opening = np.concatenate([c.opening for c in speech])
    env = np.concatenate([c.envelope / (c.envelope.max() or 1.0) for c in speech])
    r, lag = best_lag(opening, env)
    ratios = {}
    for c in clips:
        if c.name.startswith("vowel"):
            voiced = c.envelope > 0.3 * c.envelope.max()
            ratio = c.width[voiced] / np.maximum(c.opening[voiced], 1e-3)
            ratios[c.name] = round(float(np.nanmedian(ratio)), 2)
    order = [ratios.get(n, float("nan")) for n in VOWEL_ORDER]
    dips = closed = 0
    for c in clips:
        if c.name in ("мама-папа", "baby"):
            d, k = bilabial_closures(c)
            dips, closed = dips + d, closed + k
    silent = np.concatenate([c.opening[c.envelope < 0.02 * c.envelope.max()] for c in clips])
    silent = silent[~np.isnan(silent)]
    res = {
        "correlation": round(r, 3), "lag_ms": lag * 1000 // FPS, "vowel_width_height": ratios,
        "vowel_order_ok": bool(all(a > b for a, b in zip(order, order[1:], strict=False))),
        "bilabial_dips": dips, "bilabial_closed": round(closed / dips, 3) if dips else 0.0,
        "silent_frames": int(len(silent)),
        "silent_at_rest": round(float(np.mean(np.abs(silent - rest) <= AT_REST)), 3) if len(silent) else 0.0,
        "rest_gap": round(rest, 4),
        "unread_frames": int(sum(np.isnan(c.opening).sum() for c in clips)),
    }
    res["met"] = {
        "timing": res["correlation"] >= TARGETS["correlation"] and abs(res["lag_ms"]) <= TARGETS["lag_ms"],
        "vowels": res["vowel_order_ok"],
        "bilabials": res["bilabial_closed"] >= TARGETS["bilabial_closed"],
        "silence": res["silent_at_rest"] >= TARGETS["silent_at_rest"],
    }
    return res


def measure(tts, animator, clips=CLIPS) -> dict:
    """Say, render and judge ``clips`` (name, language, text); the summary (see the module's docstring)."""
    from ..messages import MouthPose

    judge = Judge()
    try:
        rest = judge.measure(animator.frame(0.0, MouthPose()))[0]
        out = []
        for name, language, text in clips:
            audio, rate = synthesize(tts, text, language)
            clip = Clip(name, audio, rate, envelope=envelope(audio, rate))
            read = np.array([judge.measure(f) for f in render(animator, audio, rate, text=text)])
            clip.opening, clip.width = read[:, 0], read[:, 1]
            n = min(len(clip.opening), len(clip.envelope))
            clip.opening, clip.width, clip.envelope = clip.opening[:n], clip.width[:n], clip.envelope[:n]
            out.append(clip)
    finally:
        judge.close()
    return summarize(out, rest)


def run(settings, args) -> int:
    from ..engines import factory
    from .face import _photo

    engines = factory.load(settings, stt=False, llm=False)
    animator = factory.face(settings, _photo(settings))
    res = measure(engines.tts, animator)
    met = res["met"]
    print("lip-sync, judged by mediapipe's face mesh on the rendered frames")
    print(f"  opening vs loudness: r = {res['correlation']:.2f} at {res['lag_ms']:+d} ms "
          f"({'met' if met['timing'] else 'NOT met'}: r >= {TARGETS['correlation']} within ±{TARGETS['lag_ms']} ms)")
    print(f"  width/height per vowel: {res['vowel_width_height']} "
          f"({'met' if met['vowels'] else 'NOT met'}: и > а > о > у)")
    print(f"  lips closed on bilabials: {res['bilabial_closed']:.0%} of {res['bilabial_dips']} "
          f"({'met' if met['bilabials'] else 'NOT met'}: >= {TARGETS['bilabial_closed']:.0%})")
    print(f"  silent frames at rest: {res['silent_at_rest']:.0%} of {res['silent_frames']} "
          f"({'met' if met['silence'] else 'NOT met'}: >= {TARGETS['silent_at_rest']:.0%}); "
          f"frames the judge could not read: {res['unread_frames']}")
    out = getattr(args, "json", None)
    if out:
        Path(out).write_text(json.dumps({"lipsync": res}, indent=2, ensure_ascii=False), encoding="utf-8")
        print(f"figures: {out}", file=sys.stderr)
    return 0
