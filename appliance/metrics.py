"""The kiosk's figures in Prometheus' text format, for a fleet's monitoring.

Written with ``prometheus_client`` (the maintained client library) into node_exporter's **textfile
collector** directory: every box of a fleet already runs node_exporter for its disks and
temperatures, so Prometheus scrapes the kiosk's figures with the machine's, at the address it
already scrapes (:9100), and the kiosk opens no port of its own. The file is replaced atomically
(a temporary file, then a rename), so a scrape never reads half of it.
A localhost-only HTTP endpoint (``metrics.http_port``) serves the same registry for an agent on the
box itself (Grafana Alloy, vmagent) — bound to 127.0.0.1 only: a kiosk stands in a public place and
its network is not trusted.

Two files, because two kinds of process write them:

* ``avatar-kiosk.prom`` — the running kiosk: per-stage latency histograms, turns by outcome and
  language, barge-ins, engine fallbacks, the face's frame times, model load state, VRAM.
* ``avatar-kiosk-provision.prom`` — whoever provisions (the kiosk taking a stick, or `avatar-kiosk
  provision` over SSH or from a fleet tool): the last result and when, one path for both.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from pathlib import Path

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from . import logs
from .messages import TurnMetrics

log = logging.getLogger(__name__)

# No "<name>_created" series beside every counter and histogram: they double the file and say only
# when the kiosk started, which avatar_kiosk_metrics_updated and node_exporter already tell.
prometheus_client.disable_created_metrics()

KIOSK_FILE = "avatar-kiosk.prom"
PROVISION_FILE = "avatar-kiosk-provision.prom"
BOX_TEXTFILE_DIR = Path("/var/lib/prometheus/node-exporter")  # Debian/Ubuntu's prometheus-node-exporter

# The turn's stages as TurnMetrics names them; a visitor feels 0.5–3 s, a dead engine 10 s+.
STAGES = ("eos", "stt", "llm_first_token", "llm_first_sentence", "tts_first_chunk", "ttfa")
STAGE_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
# Frame intervals: 40 ms is 25 fps; 80 ms and more is a visible hitch.
FRAME_BUCKETS = (0.02, 0.03, 0.04, 0.05, 0.06, 0.08, 0.1, 0.15, 0.25, 0.5, 1.0)


def textfile_dir(settings) -> Path:
    """Where the .prom files go: ``metrics.textfile_dir``, else node_exporter's directory on the box
    and ``<state_dir>/metrics`` in a dev checkout."""
    configured = settings.config.metrics.textfile_dir
    if configured:
        return Path(configured)
    return BOX_TEXTFILE_DIR if settings.paths.mode == "box" else settings.paths.state_dir / "metrics"


def write_atomically(registry: CollectorRegistry, path: Path) -> bool:
    """Replace ``path`` with the registry's text (temp file + rename, so a scrape never reads half a
    file); False, logged, if it cannot. Not ``write_to_textfile``: its file would get the service's
    umask (0027 in the unit), and node_exporter, another user, could not read it. Nothing in it is
    private (figures, no words a visitor said)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # a dot: the collector reads *.prom only
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.fchmod(fd, 0o644)  # whatever the umask
            os.write(fd, generate_latest(registry))
        finally:
            os.close(fd)
        os.replace(tmp, path)
        return True
    except OSError as e:  # no node_exporter, a read-only folder: the kiosk talks on regardless
        log.warning("metrics: cannot write %s: %s", path, e)
        with contextlib.suppress(OSError):
            tmp.unlink()
        return False


class KioskMetrics:
    """The running kiosk's metrics, in a registry of their own (not the process-global one, so two
    kiosks in one test process, or a reload, never collide)."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.stage = Histogram("avatar_kiosk_stage_seconds", "Latency of each stage of a turn (ttfa: the visitor "
                               "stopped speaking -> the first reply audio)", ["stage", "language"],
                               buckets=STAGE_BUCKETS, registry=r)
        self.turns = Counter("avatar_kiosk_turns", "Turns by outcome (replied, no_reply, barge_in, error) and "
                             "language", ["outcome", "language"], registry=r)
        self.barge_ins = Counter("avatar_kiosk_barge_ins", "Times a visitor interrupted the kiosk", registry=r)
        self.fallbacks = Counter("avatar_kiosk_engine_fallbacks", "Engine fallbacks (journal ENGINE_FALLBACK): "
                                 "a production engine replaced at start, or a turn the local LLM answered for the "
                                 "shared server", ["engine", "reason"], registry=r)
        self.frames = Histogram("avatar_kiosk_frame_interval_seconds", "Wall time between face frames shown",
                                buckets=FRAME_BUCKETS, registry=r)
        self.frames_skipped = Counter("avatar_kiosk_frames_skipped", "Face frames skipped (drawn late)", registry=r)
        self.model_loaded = Gauge("avatar_kiosk_model_loaded", "1 when the role's engine is loaded and serving",
                                  ["role", "engine", "model"], registry=r)
        # Only where they mean something (a gauge that is there says 0): see watch_llm_server, set_vram.
        self.llm_server_up: Gauge | None = None
        self.vram: Gauge | None = None
        self.visitors: Counter | None = None
        self.updated = Gauge("avatar_kiosk_metrics_updated_timestamp_seconds", "When these figures were written "
                             "(a stale value: the kiosk is hung or down)", registry=r)
        self._skipped_seen = 0

    def turn(self, m: TurnMetrics) -> None:
        language = m.language or "unknown"
        self.turns.labels(m.outcome, language).inc()
        if m.outcome != "replied":
            return  # a turn cut short has no meaningful latencies
        for stage in STAGES:
            value = getattr(m, f"{stage}_s")
            if value > 0:
                self.stage.labels(stage, language).observe(value)

    def barge_in(self) -> None:
        self.barge_ins.inc()

    # Presence (a camera): counts and durations only — nothing about who.
    def visitor_arrived(self) -> None:
        self._visits().inc()

    def visitor_left(self, stayed_s: float) -> None:
        self._visits()
        self.visit_seconds.observe(stayed_s)

    def camera(self, up: bool) -> None:
        self._visits()
        self.camera_up.set(1 if up else 0)

    def _visits(self) -> Counter:
        if self.visitors is None:  # only on a kiosk with a camera
            r = self.registry
            self.visitors = Counter("avatar_kiosk_visitors", "Visitors the camera saw arrive", registry=r)
            self.visit_seconds = Histogram("avatar_kiosk_visit_seconds", "How long visitors stayed (camera)",
                                           buckets=(5, 15, 30, 60, 120, 300, 600, 1800), registry=r)
            self.camera_up = Gauge("avatar_kiosk_camera_up", "1 while the presence camera gives frames",
                                   registry=r)
            self.camera_up.set(1)
        return self.visitors

    def frame(self, interval_s: float) -> None:
        self.frames.observe(interval_s)

    def frames_skipped_total(self, skipped: int) -> None:
        """The renderer's running count of skipped frames (counted there; a counter only goes up)."""
        if skipped > self._skipped_seen:
            self.frames_skipped.inc(skipped - self._skipped_seen)
            self._skipped_seen = skipped

    def engines_loaded(self, config) -> None:
        self.model_loaded.clear()
        self.model_loaded.labels("stt", config.stt.engine, config.stt.model).set(1)
        self.model_loaded.labels("llm", config.llm.engine, config.llm.model).set(1)
        tts_model = config.tts.model if config.tts.engine == "xtts" else config.tts.english_voice
        self.model_loaded.labels("tts", config.tts.engine, tts_model).set(1)

    def engines_unloaded(self) -> None:
        for sample in list(self.model_loaded.collect()[0].samples):
            self.model_loaded.labels(*(sample.labels[k] for k in ("role", "engine", "model"))).set(0)

    def watch_llm_server(self, is_up) -> None:
        """The LLM engine is a shared server's: ``is_up()`` is read at each write."""
        if self.llm_server_up is None:
            self.llm_server_up = Gauge("avatar_kiosk_llm_server_up", "1 while the shared LLM server answers turns, "
                                       "0 while the local model stands in", registry=self.registry)
        self.llm_server_up.set_function(lambda: float(is_up()))

    def set_vram(self, used_bytes: int) -> None:
        if self.vram is None:
            self.vram = Gauge("avatar_kiosk_vram_bytes", "GPU memory used by the kiosk process",
                              registry=self.registry)
        self.vram.set(used_bytes)

    def text(self) -> bytes:
        return generate_latest(self.registry)

    def write(self, directory: Path) -> bool:
        self.updated.set(time.time())
        return write_atomically(self.registry, directory / KIOSK_FILE)


class FallbackCounter(logging.Handler):
    """Counts the journal's ENGINE_FALLBACK lines into the metrics: fallbacks are decided deep in the
    engines (at load, or per turn by the shared-server engine), which know nothing of metrics; the
    journal line is their one, already structured, report (STAGE = the engine's role, CODE = why)."""

    def __init__(self, metrics: KioskMetrics) -> None:
        super().__init__(logging.INFO)
        self.metrics = metrics

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "message_id", None) == logs.ENGINE_FALLBACK:
            with contextlib.suppress(Exception):
                self.metrics.fallbacks.labels(getattr(record, "stage", "") or "unknown",
                                              getattr(record, "code", "") or "unusable").inc()


def provision_result(settings, ok: bool, code: str = "") -> None:
    """Record the outcome of one provisioning attempt in ``avatar-kiosk-provision.prom``: the last
    result (1 ok / 0 failed, with the failure's code) and the time of the last success and failure.
    Read back from the file so the other outcome's time survives (a CLI run is a new process)."""
    path = textfile_dir(settings) / PROVISION_FILE
    last = _read_gauges(path)
    r = CollectorRegistry()
    now = time.time()
    ok_at = Gauge("avatar_kiosk_provision_last_success_timestamp_seconds", "When a bundle was last provisioned",
                  registry=r)
    failed_at = Gauge("avatar_kiosk_provision_last_failure_timestamp_seconds", "When provisioning last failed",
                      registry=r)
    result = Gauge("avatar_kiosk_provision_last_ok", "1: the last provisioning attempt succeeded; 0: it failed "
                   "(code: the journal's CODE)", ["code"], registry=r)
    ok_at.set(now if ok else last.get("avatar_kiosk_provision_last_success_timestamp_seconds", 0))
    failed_at.set(last.get("avatar_kiosk_provision_last_failure_timestamp_seconds", 0) if ok else now)
    result.labels("" if ok else (code or "failed")).set(1 if ok else 0)
    write_atomically(r, path)


def _read_gauges(path: Path) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    try:
        text = path.read_text(encoding="utf-8")
        return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}
    except (OSError, ValueError):
        return {}

