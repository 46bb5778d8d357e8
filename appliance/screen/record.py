"""Write what a person would have seen and heard to a video file (ffmpeg).

Public API::

    Recorder(path: Path, size: tuple[int, int], fps: int)   # size = (width, height)
        .add_frame(rgb: np.ndarray, index: int | None = None) -> None
              # (height, width, 3) uint8 RGB; index = the frame's number on the audio clock
              # (gaps are filled with the previous frame, so sound and picture stay in step)
        .finish(audio_wav_path: Path | None = None) -> Path   # mux the kiosk's audio; returns path
        .abort() -> None                         # stop and delete everything
        .frames -> int                           # frames written so far
    RecordError                                  # ffmpeg missing or failed (message says which)

Raw RGB frames are piped into ffmpeg's stdin at ``fps`` and encoded to H.264 (yuv420p, so any
player opens it) in a temporary file beside ``path``; ``finish`` muxes the WAV as AAC and
renames atomically. Frame k shows time k / fps, so pictures and sound line up as long as the
caller adds one frame per frame of audio clock.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np


class RecordError(RuntimeError):
    """The recording could not be written (the message includes ffmpeg's own words)."""


def _ffmpeg() -> str:
    exe = shutil.which("ffmpeg")
    if exe is None:
        raise RecordError("ffmpeg is not installed (apt-get install ffmpeg); cannot record video")
    return exe


class Recorder:
    def __init__(self, path: Path, size: tuple[int, int], fps: int, *, crf: int = 23,
                 preset: str = "veryfast") -> None:
        self.path = Path(path)
        self.size = (int(size[0]), int(size[1]))
        self.fps = int(fps)
        self.frames = 0
        self._last: bytes | None = None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._video = self.path.with_name(f".{self.path.stem}.video.mp4")
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the recorder
        w, h = self.size
        cmd = [_ffmpeg(), "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
               "-s", f"{w}x{h}", "-r", str(self.fps), "-i", "-",
               "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-c:v", "libx264", "-preset", preset,
               "-crf", str(crf), "-pix_fmt", "yuv420p", "-threads", "1", str(self._video)]
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._log)

    def _stderr(self) -> str:
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace").strip()[-800:]

    def add_frame(self, rgb: np.ndarray, index: int | None = None) -> None:
        """Append one frame. With ``index`` (the audio-clock frame it shows), frames the caller
        skipped are filled with the previous picture and late ones dropped, so the video stays in
        step with the audio even when rendering fell behind."""
        w, h = self.size
        if rgb.shape != (h, w, 3) or rgb.dtype != np.uint8:
            raise ValueError(f"frame is {rgb.shape} {rgb.dtype}, expected ({h}, {w}, 3) uint8")
        data = np.ascontiguousarray(rgb).tobytes()
        if index is not None:
            if index < self.frames:
                return
            while self.frames < index and self._last is not None:
                self._write(self._last)
        self._write(data)
        self._last = data

    def _write(self, data: bytes) -> None:
        try:
            self._proc.stdin.write(data)
        except (BrokenPipeError, OSError) as e:
            raise RecordError(f"ffmpeg stopped taking frames: {self._stderr() or e}") from e
        self.frames += 1

    def finish(self, audio_wav_path: Path | None = None) -> Path:
        try:
            self._proc.stdin.close()
        except OSError:
            pass
        if self._proc.wait() != 0:
            err = self._stderr()
            self._cleanup()
            raise RecordError(f"ffmpeg could not encode the video: {err}")
        tmp = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix}")
        if audio_wav_path is not None:
            cmd = [_ffmpeg(), "-y", "-loglevel", "error", "-i", str(self._video), "-i", str(audio_wav_path),
                   "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy", "-c:a", "aac", "-b:a", "128k",
                   "-movflags", "+faststart", str(tmp)]
            res = subprocess.run(cmd, capture_output=True, text=True)
            if res.returncode != 0:
                self._cleanup()
                tmp.unlink(missing_ok=True)
                raise RecordError(f"ffmpeg could not add the audio {audio_wav_path}: {res.stderr.strip()[-800:]}")
            os.replace(tmp, self.path)
        else:
            os.replace(self._video, self.path)
        self._cleanup()
        return self.path

    def abort(self) -> None:
        try:
            self._proc.stdin.close()
        except OSError:
            pass
        self._proc.kill()
        self._proc.wait()
        self._cleanup()

    def _cleanup(self) -> None:
        self._video.unlink(missing_ok=True)
        self._log.close()

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, exc_type, *_exc) -> None:
        if exc_type is not None and self._proc.poll() is None:
            self.abort()
