"""Real PortAudio devices through ALSA plugins (no sound card here): playback into a file, capture
from ``null``. Each case runs in a subprocess, because ALSA reads its configuration once per process."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
ASOUNDRC = """
pcm.!default { type asym  playback.pcm "fileout"  capture.pcm "nullin" }
pcm.fileout { type file  slave.pcm "null"  file "{out}"  format "raw" }
pcm.nullin { type null }
"""


def run_with_alsa(tmp_path, code: str) -> str:
    pytest.importorskip("pyaudio")
    home = tmp_path / "home"
    home.mkdir()
    (home / ".asoundrc").write_text(ASOUNDRC.replace("{out}", str(tmp_path / "out.raw")))
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin"}
    code = f"REPO = {str(REPO)!r}\n" + textwrap.dedent(code)
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=60, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_pyaudio_speaker_plays_and_its_clock_runs(tmp_path):
    out = run_with_alsa(tmp_path, """
        import sys, time
        sys.path.insert(0, REPO)
        import numpy as np
        from appliance.audio.speaker import PyAudioSpeaker
        sp = PyAudioSpeaker(22050, device_name="fileout")
        sp.start()
        t = np.arange(11025) / 22050
        before = sp.played_seconds  # the clock runs from start() on, silence included
        start = sp.write((0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 22050)
        sp.wait_drained(10)
        time.sleep(0.2)
        # the sound starts right where the clock was (within the device's buffering)
        print(0.0 <= start - before < 0.5, sp.played_seconds >= start + 0.5, sp.busy)
        sp.stop()
    """)
    assert out.split() == ["True", "True", "False"]
    raw = (tmp_path / "out.raw").read_bytes()
    assert len(raw) > 22050  # half a second of float32 went to the device


def test_pyaudio_mic_captures_16k_frames_and_reports_a_missing_device(tmp_path):
    out = run_with_alsa(tmp_path, """
        import sys, asyncio, logging
        sys.path.insert(0, REPO)
        from appliance.audio.mic import PyAudioMic
        logging.basicConfig(level=logging.INFO)

        async def grab(name, n):
            mic = PyAudioMic(name, frame_ms=20, reconnect_s=0.2, stall_s=1.0)
            got = []
            async def collect():
                async for c in mic.frames():
                    got.append(c)
                    if len(got) >= n:
                        mic.stop()
            try:
                await asyncio.wait_for(collect(), 3)
            except asyncio.TimeoutError:
                mic.stop()
            return mic, got

        mic, frames = asyncio.run(grab("nullin", 10))
        print(len(frames), {len(f.samples) for f in frames}, mic.lost)
        mic, frames = asyncio.run(grab("no-such-microphone", 1))
        print(len(frames), mic.lost)
    """)
    lines = out.strip().splitlines()
    assert lines[0] == "10 {320} False"
    assert lines[1] == "0 True"
