"""The persona LLM on a shared server (llm.engine = "openai-server") against a real llama.cpp server
(llama-cpp-python's, serving SmolLM2-135M on 127.0.0.1), killed and frozen with signals; the local
model answers whenever the server does not, and the journal says so."""

from __future__ import annotations

import dataclasses
import logging
import signal
import threading
import time

import numpy as np
import pytest
from kiosk_converse import converse
from kiosk_helpers import MANIFEST, demo_persona, llm, real_engines, silence, speech, wer
from llm_server import LlmServer, free_port

from appliance import config as config_mod
from appliance import logs
from appliance import models as models_mod
from appliance.conversation import prompt
from appliance.engines import EngineError, factory
from appliance.engines.llm_remote import ServerPersonaLLM, read_api_key
from appliance.engines.openai_stream import Endpoint
from appliance.messages import ChatMessage, TurnDone

KEY = "kiosk-fleet-test-key"
QUESTION = "Hello! What is your name?"


def _model(models_dir):
    m = models_mod.load_manifest(MANIFEST).get("smollm2-135m")
    return m.path(models_dir, m.files[0].name)


@pytest.fixture
def server(models_dir, tmp_path):
    """A fresh server per test: the tests kill and freeze it."""
    srv = LlmServer(_model(models_dir), free_port(), tmp_path / "server.log", api_key=KEY).start()
    yield srv
    srv.stop()


@pytest.fixture
def key_file(tmp_path):
    p = tmp_path / "llm.key"
    p.write_text(KEY + "\n")
    p.chmod(0o600)
    return p


def server_settings(settings, server, key_file, **llm):
    cfg = config_mod.replace(settings.config, "llm", model="smollm2-135m", languages=["en"], max_reply_tokens=60,
                             engine="openai-server", server_url=server.url, server_api_key_file=str(key_file),
                             **llm)
    return dataclasses.replace(settings, config=cfg)


def engine(server, models_dir, **kw) -> ServerPersonaLLM:
    """The engine over the shared, already loaded local SmolLM2 (what from_settings would build),
    both sides warm as in a running kiosk: the local persona prefix evaluated, and the server has
    seen the persona prompt once (its cold prompt takes longer than the first-token timeout here)."""
    warm_server(server, models_dir)
    kw = {"first_token_s": 1.5, "stall_s": 2.0, "retry_s": 0.5, "max_tokens": 60, **kw}
    eng = ServerPersonaLLM(Endpoint(server.url, api_key=KEY), llm(models_dir), **kw)
    eng.warm(prompt.prefix(demo_persona()))
    return eng


def warm_server(server, models_dir) -> None:
    patient = ServerPersonaLLM(Endpoint(server.url, api_key=KEY), llm(models_dir), first_token_s=30, stall_s=30)
    assert "".join(patient.generate(messages("Hi!"), threading.Event()))
    assert patient.server_turns == 1, patient.fallbacks


def messages(question: str) -> list[ChatMessage]:
    return [*prompt.prefix(demo_persona()), ChatMessage("user", question)]


def fallbacks(caplog) -> list[str]:
    return [r.code for r in caplog.records if getattr(r, "message_id", None) == logs.ENGINE_FALLBACK]


def timed(gen) -> tuple[str, float]:
    """The whole reply and the seconds to its first piece."""
    t0, first, pieces = time.monotonic(), None, []
    for p in gen:
        first = time.monotonic() - t0 if first is None else first
        pieces.append(p)
    return "".join(pieces), first if first is not None else float("inf")


def wait_until(cond, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return False


class KillsServerAfterFirstPiece:
    """The engine as the turn sees it, except that the server gets SIGKILL the moment the first
    piece of the reply has arrived from it: a server dying mid-reply, at a known point."""

    def __init__(self, eng, server):
        self.eng, self.server, self.first = eng, server, None

    def warm(self, prefix):
        self.eng.warm(prefix)

    def generate(self, messages, cancel):
        for piece in self.eng.generate(messages, cancel):
            if self.first is None:
                self.first = piece
                self.server.kill()
            yield piece


# ---------------------------------------------------------------------------------------- spoken turns
def test_a_spoken_turn_is_answered_through_the_server(settings, server, key_file, models_dir, caplog):
    s = server_settings(settings, server, key_file, server_first_token_s=30.0)  # the server's first prompt: cold
    eng = factory.make("llm", s)  # from config, as the kiosk builds it
    assert isinstance(eng, ServerPersonaLLM) and eng.endpoint.api_key == KEY
    engines = dataclasses.replace(real_engines(models_dir), llm=eng)
    with caplog.at_level(logging.INFO):
        out = converse(s, engines, np.concatenate([speech(models_dir, QUESTION), silence(1.0)]))
    assert wer(QUESTION, out.transcripts[0]) <= 0.2, out.transcripts
    assert out.replies() and out.replies()[0].strip(), out.replies()
    assert out.of(TurnDone)[0].outcome == "replied"
    assert server.chat_requests() >= 1            # the server wrote it (its own access log) ...
    assert eng.server_turns >= 1 and not eng.fallbacks and fallbacks(caplog) == []  # ... not the local model


def test_server_killed_mid_reply_the_local_model_finishes_the_spoken_turn(settings, server, key_file, models_dir,
                                                                          caplog):
    s = server_settings(settings, server, key_file, server_first_token_s=30.0)
    eng = KillsServerAfterFirstPiece(factory.make("llm", s), server)
    engines = dataclasses.replace(real_engines(models_dir), llm=eng)
    with caplog.at_level(logging.INFO):
        out = converse(s, engines, np.concatenate([speech(models_dir, QUESTION), silence(1.0)]))
    assert server.proc.returncode == -signal.SIGKILL and eng.first
    reply = out.replies()[0]
    # The visitor got a whole answer: the server's first words and the local model's continuation.
    assert len(reply) > len(eng.first) + 10, reply
    assert out.of(TurnDone)[0].outcome == "replied"
    assert fallbacks(caplog) == ["lost_mid_reply"]  # the journal line (MESSAGE_ID=ENGINE_FALLBACK, CODE=…)
    assert eng.eng.fallbacks["lost_mid_reply"] == 1 and not eng.eng.server_up


# ---------------------------------------------------------------------------------------- the engine
def test_dead_server_falls_back_at_once_and_comes_back(server, models_dir, caplog):
    caplog.set_level(logging.INFO)
    eng = engine(server, models_dir)
    server.kill()
    with caplog.at_level(logging.INFO):
        reply, first_s = timed(eng.generate(messages("Where is the Moon?"), threading.Event()))
    assert reply and fallbacks(caplog) == ["unreachable"]
    assert first_s < 1.5 + 3.0, first_s  # refused at once: the local model's own first-token time, not a wait
    # While it is down the next turn does not even try it.
    caplog.clear()
    with caplog.at_level(logging.INFO):
        assert "".join(eng.generate(messages("Hello!"), threading.Event()))
    assert fallbacks(caplog) == ["server_down"]
    # The server comes back on the same address: the probe notices and turns go to it again.
    server.start()
    assert wait_until(lambda: eng.server_up, 20), "the engine did not notice the server back"
    assert any(getattr(r, "message_id", None) == logs.ENGINE_BACK for r in caplog.records)
    before = server.chat_requests()
    eng.first_token_s = 30  # the restarted server's prompt is cold again
    assert "".join(eng.generate(messages("What is your name?"), threading.Event()))
    assert eng.server_turns == 1 and server.chat_requests() == before + 1


def test_frozen_server_costs_the_visitor_only_the_first_token_timeout(server, models_dir, caplog):
    caplog.set_level(logging.INFO)
    eng = engine(server, models_dir)
    server.signal(signal.SIGSTOP)  # accepts connections (the kernel does), answers nothing
    with caplog.at_level(logging.INFO):
        reply, first_s = timed(eng.generate(messages("Where is the Moon?"), threading.Event()))
    assert reply and fallbacks(caplog) == ["first_token_timeout"]
    assert 1.5 <= first_s < 1.5 + 3.0, first_s  # waited the configured 1.5 s, then the local model answered
    assert not wait_until(lambda: eng.server_up, 1.5)  # the frozen server does not pass the probe
    server.signal(signal.SIGCONT)
    assert wait_until(lambda: eng.server_up, 20)


def test_server_stalling_mid_reply_is_finished_locally(server, models_dir, caplog):
    eng = engine(server, models_dir, max_tokens=60)
    pieces = []
    with caplog.at_level(logging.INFO):
        for p in eng.generate(messages("Tell me a long story about the Moon."), threading.Event()):
            if not pieces:
                server.signal(signal.SIGSTOP)
            pieces.append(p)
    assert fallbacks(caplog) == ["stalled"]
    assert len(pieces) > 3, pieces  # what the server had sent, then the local model's continuation


def test_cancel_stops_the_server_reply_mid_way(server, models_dir):
    eng = engine(server, models_dir, max_tokens=200)
    cancel, pieces = threading.Event(), []
    t0 = time.monotonic()
    for p in eng.generate(messages("Tell me a long story about the Moon."), cancel):
        pieces.append(p)
        if len(pieces) == 3:
            cancel.set()
    assert len(pieces) == 3 and time.monotonic() - t0 < 30
    assert not eng.fallbacks and eng.server_up  # a cancel is the visitor's doing, not the server's fault


def test_wrong_api_key_is_a_fallback_that_names_the_status(server, models_dir, caplog):
    eng = ServerPersonaLLM(Endpoint(server.url, api_key="wrong"), llm(models_dir), first_token_s=10, retry_s=60)
    with caplog.at_level(logging.INFO):
        assert "".join(eng.generate(messages("Hi!"), threading.Event()))
    assert fallbacks(caplog) == ["http_401"]


# ---------------------------------------------------------------------------------------- configuration
def test_api_key_file_readable_by_others_is_refused(tmp_path):
    p = tmp_path / "llm.key"
    p.write_text(KEY)
    p.chmod(0o644)
    with pytest.raises(EngineError, match=r"open to other users \(mode 0644\).*chmod 600"):
        read_api_key(p)
    p.chmod(0o600)
    assert read_api_key(p) == KEY
    assert p.read_text() == KEY  # checked, never changed
    with pytest.raises(EngineError, match="cannot be read"):
        read_api_key(tmp_path / "missing.key")


def test_server_engine_needs_an_address():
    with pytest.raises(config_mod.ConfigError, match="llm.server_url = '' is not accepted"):
        config_mod.from_dict({"llm": {"engine": "openai-server"}})
    with pytest.raises(config_mod.ConfigError, match="llm.server_api_key_file = 'key' is not accepted"):
        config_mod.from_dict({"llm": {"engine": "openai-server", "server_url": "http://10.0.0.5:8000/v1",
                                      "server_api_key_file": "key"}})
    cfg = config_mod.from_dict({"llm": {"engine": "openai-server", "server_url": "https://llm.museum.lan/v1"}})
    assert cfg.llm.server_first_token_s == 1.5


def test_key_never_shows_in_a_repr():
    assert KEY not in repr(Endpoint("http://x/v1", api_key=KEY))




# ---------------------------------------------------------------------------------------- the daemon
@pytest.mark.slow
def test_the_kiosk_daemon_answers_through_the_server_and_on_its_own_once_it_is_killed(models_dir, tmp_path,
                                                                                       server, key_file):
    """`avatar-kiosk run` (the real daemon and app) configured for the server: the visitor's first
    question is answered by the server; the server is killed; the second is answered by the local
    model, and the daemon's log says why."""
    import shutil

    from kiosk_helpers import REPO
    from test_daemon_support import FakeSystemd, control, start_daemon, stop

    from appliance.audio.wav import write_wav

    demo = REPO / ".kiosk" / "state" / "demo-bundle"
    if not (demo / "manifest.toml").is_file():
        pytest.fail("the demo bundle is missing: the set-up (./bootstrap.sh test) assembles it")
    home = tmp_path / "k"
    (home / "state").mkdir(parents=True)
    shutil.copytree(demo, home / "state" / "demo-bundle")
    (home / "config.toml").write_text(
        f'[paths]\nmodels_dir = "{models_dir}"\n[llm]\nmodel = "smollm2-135m"\nlanguages = ["en"]\n'
        f'engine = "openai-server"\nserver_url = "{server.url}"\nserver_api_key_file = "{key_file}"\n'
        'server_first_token_s = 30.0\n[session]\nlanguages = ["en"]\n', encoding="utf-8")
    visitor = tmp_path / "visitor.wav"
    write_wav(visitor, np.concatenate([silence(7.0), speech(models_dir, QUESTION), silence(33.0),
                                       speech(models_dir, "Where is the Moon?"), silence(600.0)]), 16000)
    systemd = FakeSystemd(tmp_path / "notify.sock")
    proc = start_daemon(home, "real", systemd.path, args=("--visitor", str(visitor)))
    sock = home / "run" / "control.sock"

    def outcomes() -> list[str]:
        try:
            return control(sock, {"cmd": "status"}, timeout=10)["info"].get("outcomes", [])
        except Exception:  # busy for a moment: the deadline decides
            return []

    try:
        systemd.wait_for("READY", "1", timeout=240)
        assert wait_until(lambda: outcomes().count("replied") >= 1, 120), outcomes()
        assert server.chat_requests() >= 1  # the first answer came from the server
        assert control(sock, {"cmd": "status"}, timeout=10)["info"]["llm_server"]["up"] is True
        server.kill()
        assert wait_until(lambda: outcomes().count("replied") >= 2, 120), outcomes()
        from appliance.daemon.control import format_status

        shown = format_status(control(sock, {"cmd": "status"}, timeout=10))  # what `avatar-kiosk status` prints
        assert f"llm       {server.url}: NOT answering — the local model answers meanwhile; 1 turn(s)" in shown, shown
    finally:
        _, _, out = stop(proc)
        systemd.close()
    assert "the local model answers this turn  [stage=llm code=unreachable]" in out, out[-3000:]


def test_doctor_checks_the_server_and_its_key_file(settings, server, key_file):
    from appliance.daemon import doctor

    def check(**llm):
        s = server_settings(settings, server, key_file, **llm)
        return next(c for c in doctor.run_checks(s, quick=True) if c[0] == "llm server")

    assert check() == ("llm server", True, f"{server.url} answers", "")
    key_file.chmod(0o640)
    name, ok, detail, fix = check()
    assert ok is False and "open to other users (mode 0640)" in detail and fix
    key_file.chmod(0o600)
    server.kill()
    name, ok, detail, _ = check()
    assert ok is None and "does not answer" in detail and "the local model answers" in detail
