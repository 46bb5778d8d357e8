"""Prometheus metrics: written by prometheus_client, read back with its own parser, moved by a real
spoken turn, a real LLM fallback and a real provisioning attempt."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import shutil
import threading
import urllib.request

import numpy as np
import pytest
from kiosk_converse import converse
from kiosk_helpers import demo_persona, llm, real_engines, silence, speech
from llm_server import free_port
from prometheus_client.parser import text_string_to_metric_families

from appliance import config as config_mod
from appliance.app.telemetry import Telemetry
from appliance.conversation import prompt
from appliance.engines.llm_remote import ServerPersonaLLM
from appliance.engines.openai_stream import Endpoint
from appliance.messages import ChatMessage
from appliance.metrics import KIOSK_FILE, PROVISION_FILE, KioskMetrics, textfile_dir
from provisioning.pipeline import provision


def samples(text: str) -> dict[tuple, float]:
    """{(sample name, sorted labels): value}, parsed by prometheus_client's own parser."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def value(parsed: dict, name: str, **labels) -> float | None:
    return parsed.get((name, tuple(sorted(labels.items()))))


@pytest.fixture
def settings(settings):
    cfg = config_mod.replace(settings.config, "llm", model="smollm2-135m", languages=["en"])
    return dataclasses.replace(settings, config=cfg)


@pytest.fixture
def service_umask():
    old = os.umask(0o027)  # the unit's UMask=
    yield
    os.umask(old)


def test_metrics_file_parses_and_moves_after_a_spoken_turn(settings, models_dir, service_umask):
    engines = dataclasses.replace(real_engines(models_dir), config=settings.config)
    tel = Telemetry(settings)
    path = textfile_dir(settings) / KIOSK_FILE
    assert path == settings.paths.state_dir / "metrics" / KIOSK_FILE  # a checkout: under its state folder

    async def loaded():
        tel.engines_loaded(engines)  # what KioskApp.start does once factory.load returns
        await asyncio.sleep(0.2)     # the first periodic write
        tel._task.cancel()

    asyncio.run(loaded())
    before = samples(path.read_text())
    assert value(before, "avatar_kiosk_model_loaded", role="llm", engine="llama-cpp", model="smollm2-135m") == 1
    assert value(before, "avatar_kiosk_turns_total", outcome="replied", language="en") is None
    assert value(before, "avatar_kiosk_metrics_updated_timestamp_seconds") > 0
    names = {name for name, _ in before}
    assert "avatar_kiosk_llm_server_up" not in names  # no shared server here
    assert ("avatar_kiosk_vram_bytes" in names) == (shutil.which("nvidia-smi") is not None)

    out = converse(settings, engines, np.concatenate([speech(models_dir, "Hello! What is your name?"), silence(1.0)]),
                   on_event=tel.event)
    assert out.replies()
    after = samples(path.read_text())  # written after the turn by the turn's own event
    assert value(after, "avatar_kiosk_turns_total", outcome="replied", language="en") == 1
    assert value(after, "avatar_kiosk_stage_seconds_count", stage="ttfa", language="en") == 1
    assert value(after, "avatar_kiosk_stage_seconds_sum", stage="stt", language="en") > 0
    assert value(after, "avatar_kiosk_stage_seconds_bucket", stage="ttfa", language="en", le="+Inf") == 1
    assert value(after, "avatar_kiosk_barge_ins_total") == 0

    tel.frame(0.04, 0)
    tel.frame(0.12, 2)  # a hitch: two frames skipped
    tel.close()         # the kiosk stops: the file says its models no longer serve
    final = samples(path.read_text())
    assert value(final, "avatar_kiosk_frame_interval_seconds_count") == 2
    assert value(final, "avatar_kiosk_frame_interval_seconds_bucket", le="0.05") == 1
    assert value(final, "avatar_kiosk_frames_skipped_total") == 2
    assert value(final, "avatar_kiosk_model_loaded", role="llm", engine="llama-cpp", model="smollm2-135m") == 0
    assert [p.name for p in path.parent.iterdir()] == [KIOSK_FILE]  # no temporary file left behind
    assert path.stat().st_mode & 0o777 == 0o644  # node_exporter, another user, reads it
    assert "_created" not in path.read_text()


def test_a_turn_the_local_model_answers_for_a_dead_server_counts_as_a_fallback(models_dir, caplog):
    caplog.set_level(logging.INFO)  # as the daemon logs (logs.setup)
    metrics = KioskMetrics()
    from appliance.metrics import FallbackCounter

    counter = FallbackCounter(metrics)
    logging.getLogger().addHandler(counter)
    try:
        eng = ServerPersonaLLM(Endpoint(f"http://127.0.0.1:{free_port()}/v1"), llm(models_dir), retry_s=60)
        metrics.watch_llm_server(lambda: eng.server_up)
        msgs = [*prompt.prefix(demo_persona()), ChatMessage("user", "Hi!")]
        assert "".join(eng.generate(msgs, threading.Event()))   # nobody listens on that port
        assert "".join(eng.generate(msgs, threading.Event()))   # still down: straight to the local model
    finally:
        logging.getLogger().removeHandler(counter)
    parsed = samples(metrics.text().decode())
    assert value(parsed, "avatar_kiosk_engine_fallbacks_total", engine="llm", reason="unreachable") == 1
    assert value(parsed, "avatar_kiosk_engine_fallbacks_total", engine="llm", reason="server_down") == 1
    assert value(parsed, "avatar_kiosk_llm_server_up") == 0


def test_provisioning_result_is_written_for_the_fleet(settings, tmp_path):
    empty = tmp_path / "not-a-bundle"
    empty.mkdir()
    result = provision(settings, empty)
    assert not result.ok
    parsed = samples((textfile_dir(settings) / PROVISION_FILE).read_text())
    assert value(parsed, "avatar_kiosk_provision_last_ok", code=result.code) == 0
    assert value(parsed, "avatar_kiosk_provision_last_failure_timestamp_seconds") > 0
    assert value(parsed, "avatar_kiosk_provision_last_success_timestamp_seconds") == 0


def test_localhost_http_endpoint_serves_the_same_registry(settings):
    port = free_port()
    s = dataclasses.replace(settings, config=config_mod.replace(settings.config, "metrics", http_port=port))
    tel = Telemetry(s)
    tel.attach()
    try:
        assert tel._http.server_address[0] == "127.0.0.1"  # never on the public network
        tel.metrics.barge_in()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            parsed = samples(r.read().decode())
        assert value(parsed, "avatar_kiosk_barge_ins_total") == 1
    finally:
        tel.close()


def test_metrics_config_is_checked():
    with pytest.raises(config_mod.ConfigError, match="metrics.textfile_dir = 'prom' is not accepted"):
        config_mod.from_dict({"metrics": {"textfile_dir": "prom"}})
    with pytest.raises(config_mod.ConfigError, match="metrics.http_port = 70000 is out of range"):
        config_mod.from_dict({"metrics": {"http_port": 70000}})
