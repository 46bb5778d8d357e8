"""Config: defaults, the documented schema, and one clear line for every kind of bad input."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib

import pytest

from appliance import config, paths


def test_empty_file_is_all_defaults(tmp_path):
    f = tmp_path / "config.toml"
    f.write_text("")
    assert config.load(f) == config.Config()
    assert config.load(tmp_path / "absent.toml") == config.Config()


def test_values_are_read_and_ints_widen_to_floats(tmp_path):
    f = tmp_path / "config.toml"
    f.write_text('[vad]\nend_silence_ms = 800\nmax_utterance_s = 20\n[wake]\nmode = "name"\n'
                 '[session]\nlanguages = ["ru"]\n')
    cfg = config.load(f)
    assert cfg.vad.end_silence_ms == 800
    assert cfg.vad.max_utterance_s == 20.0 and isinstance(cfg.vad.max_utterance_s, float)
    assert cfg.wake.mode == "name"
    assert cfg.session.languages == ["ru"]
    assert cfg.stt == config.SttConfig()


@pytest.mark.parametrize("text, expected", [
    ('[vad]\nsilence = 3\n', "unknown key 'vad.silence' (= 3): known keys here are aggressiveness"),
    ('[sound]\nx = 1\n', "unknown key 'sound'"),
    ('[vad]\nend_silence_ms = "long"\n', "vad.end_silence_ms = 'long' is not accepted: expected an integer"),
    ('[vad]\nend_silence_ms = true\n', "vad.end_silence_ms = True is not accepted: expected an integer"),
    ('[privacy]\nstore_text = 1\n', "privacy.store_text = 1 is not accepted: expected true/false"),
    ('[vad]\naggressiveness = 7\n', "vad.aggressiveness = 7 is out of range: accepted 0 … 3"),
    ('[wake]\nmode = "always"\n', "wake.mode = 'always' is not accepted: one of 'open', 'wake', 'name'"),
    ('[audio]\nframe_ms = 25\n', "audio.frame_ms = 25 is not accepted: one of 10, 20, 30"),
    ('vad = 3\n', "vad = 3 is not accepted: expected a [vad] table"),
    ('[session]\nlanguages = ["de"]\n', "session.languages = ['de'] is not accepted"),
    ('[vad\n', "is not valid TOML"),
    ('[llm]\ntemperature = nan\n', "llm.temperature = nan is not accepted: expected a finite number"),
    ('[llm]\nlanguages = ["xx"]\n', "llm.languages = ['xx'] is not accepted: a non-empty list of 'en' and/or 'ru'"),
    ('[stt]\nmodel = "../../../etc/passwd"\n', "stt.model = '../../../etc/passwd' is not accepted: a model id"),
    ('[provisioning]\ntrusted_keys = ["nothex"]\n', "trusted_keys has 'nothex', which is not a public key"),
    ('[paths]\nstate_dir = "state"\n', "paths.state_dir = 'state' is not accepted: an absolute path"),
])
def test_bad_input_names_key_value_and_what_is_accepted(tmp_path, text, expected):
    f = tmp_path / "config.toml"
    f.write_text(text)
    with pytest.raises(config.ConfigError) as e:
        config.load(f)
    msg = str(e.value)
    assert expected in msg
    assert "\n" not in msg  # one line, for the journal and the terminal


def test_a_byte_order_mark_is_not_an_error(tmp_path):
    f = tmp_path / "config.toml"
    f.write_bytes("\ufeff[llm]\ntemperature = 0.4\n".encode("utf-8"))  # as Windows Notepad saves it
    assert config.load(f).llm.temperature == 0.4


def test_unreadable_file(tmp_path):
    f = tmp_path / "config.toml"
    f.write_bytes(b"\xff\xfe not utf-8")
    with pytest.raises(config.ConfigError, match="cannot read"):
        config.load(f)
    d = tmp_path / "dir.toml"
    d.mkdir()
    with pytest.raises(config.ConfigError, match="cannot read"):
        config.load(d)


def test_defaults_toml_documents_every_field_and_parses_back():
    text = config.defaults_toml()
    # Uncommenting every key gives a valid config equal to the defaults.
    key_line = re.compile(r"^# [a-z_]+ = ")
    uncommented = "\n".join(line[2:] if key_line.match(line) else line for line in text.splitlines())
    assert config.from_dict(tomllib.loads(uncommented)) == config.Config()
    import dataclasses
    for section in dataclasses.fields(config.Config):
        for f in dataclasses.fields(section.default_factory):
            assert f.metadata["doc"], f"{section.name}.{f.name} has no doc line"
            assert f"# {f.name} = " in text


def test_paths_dev_and_box(tmp_path):
    dev = paths.resolve(config.PathsConfig(), tmp_path / "c.toml", {"AVATAR_KIOSK_HOME": str(tmp_path)})
    assert dev.mode == "dev" and dev.state_dir == tmp_path / "state"
    assert dev.models_dir == tmp_path / "state" / "models"
    assert dev.current_profile == tmp_path / "state" / "profiles" / "current"
    box_env = {"STATE_DIRECTORY": "/var/lib/avatar-kiosk", "CACHE_DIRECTORY": "/var/cache/avatar-kiosk",
               "RUNTIME_DIRECTORY": "/run/avatar-kiosk", "CONFIGURATION_DIRECTORY": "/etc/avatar-kiosk"}
    box = paths.resolve(config.PathsConfig(models_dir="/srv/models"), paths.config_path(box_env), box_env)
    assert box.mode == "box"
    assert box.config_file.as_posix() == "/etc/avatar-kiosk/config.toml"
    assert box.cache_dir.as_posix() == "/var/cache/avatar-kiosk"
    assert box.models_dir.as_posix() == "/srv/models"  # an explicit value wins
    assert box.control_socket.as_posix() == "/run/avatar-kiosk/control.sock"


def test_cli_stops_with_one_clear_line(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text('[llm]\ntemperature = 9\n')
    env = {**os.environ, "AVATAR_KIOSK_HOME": str(home)}
    r = subprocess.run([sys.executable, "-m", "appliance", "config"], env=env, capture_output=True, text=True)
    assert r.returncode == 2
    assert "config: llm.temperature = 9.0 is out of range: accepted 0.0 … 2.0" in r.stderr
    assert r.stderr.count("llm.temperature") == 1  # once, not once per handler
    assert "Traceback" not in r.stderr


def test_cli_help_lists_the_commands():
    r = subprocess.run([sys.executable, "-m", "appliance", "--help"], capture_output=True, text=True)
    assert r.returncode == 0
    for command in ("run", "demo", "ask", "say", "listen", "bench", "models", "status", "doctor", "logs",
                    "provision", "profile", "bundle", "config"):
        assert command in r.stdout
