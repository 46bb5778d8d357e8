"""The command line: ask, say, listen and bench, end to end through ``appliance.cli.main``."""

from __future__ import annotations

import json

import numpy as np
import pytest
from kiosk_helpers import silence, speech, stt, wer

from appliance import bench, cli
from appliance.audio.wav import read_mono_16k, write_wav


@pytest.fixture
def home(settings):
    return settings  # the fixture wrote AVATAR_KIOSK_HOME/config.toml, which the CLI reads


def test_say_writes_intelligible_audio(home, tmp_path, models_dir):
    out = tmp_path / "say.wav"
    assert cli.main(["say", "The rocket is ready.", "--out", str(out)]) == 0
    heard = stt(models_dir).transcribe(read_mono_16k(out), ["en"], None)[0]
    assert wer("The rocket is ready.", heard) <= 0.25, heard


def test_ask_prints_the_reply_and_writes_it(home, tmp_path, capsys):
    out = tmp_path / "reply.wav"
    assert cli.main(["ask", "What is your name?", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Anna" in printed
    assert len(read_mono_16k(out)) > 16000


def test_listen_runs_the_whole_loop_on_a_recording(home, tmp_path, capsys, models_dir):
    wav = tmp_path / "visitor.wav"
    write_wav(wav, np.concatenate([speech(models_dir, "What is your name?"), silence(1.0)]), 16000)
    out = tmp_path / "kiosk.wav"
    assert cli.main(["listen", "--wav", str(wav), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "visitor [en]: What is your name?" in printed and "  Anna: " in printed
    said = read_mono_16k(out)
    assert np.abs(said).max() > 3000


def test_bench_reports_every_stage(home, tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert cli.main(["bench", "--turns", "2", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["turns"] == 2
    for f in bench.FIELDS:  # an English question and a recorded Russian visitor: every stage took time
        assert res[f]["n"] == 2 and res[f]["p50"] > 0, (f, res[f])
    assert {lang: v["turns"] for lang, v in res["by_language"].items()} == {"en": 1, "ru": 1}
    assert res["ttfa_s"]["p50"] > res["eos_s"]["p50"] + res["stt_s"]["p50"]
    assert res["overhead_ratio"]["p50"] >= 0.99
    text = capsys.readouterr().out
    assert "time to first audio" in text and "overhead ratio" in text

