"""The model manifest, verification, assembly from packages, and `models fetch` over real HTTP."""

from __future__ import annotations

import hashlib
import http.server
import os
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from appliance import models as m


def test_manifest_covers_every_role_in_both_tiers(manifest):
    assert set(manifest.roles) == set(m.ROLES)
    for role, choice in manifest.roles.items():
        for tier in ("embedded", "production"):
            model = manifest.get(choice[tier])
            assert model.role == role
            assert model.licence
    for model in manifest.models:
        for f in model.files:
            assert bool(f.parts) + bool(f.in_package) + bool(f.url) == 1, f"{model.id}/{f.name}: one source"
        if model.tier == "production":
            assert model.vram_mb > 0
            assert all(f.url.startswith("https://") for f in model.files)


def test_every_embedded_default_verifies(manifest, models_dir):
    results = m.verify(manifest.for_tier("embedded"), models_dir)
    assert results and all(r.ok for r in results), [r.describe() for r in results if not r.ok]


def test_whisper_base_was_assembled_from_two_packages(manifest, models_dir):
    model = manifest.get("whisper-base")
    f = next(f for f in model.files if f.name == "model.bin")
    assert len(f.parts) == 2
    assert (models_dir / "whisper-base" / "model.bin").stat().st_size == 145_217_532
    # and it loads offline with the real library
    from faster_whisper import WhisperModel
    WhisperModel(str(model.path(models_dir)), device="cpu", compute_type="int8")


def test_verify_names_the_file_and_expected_hash(manifest, tmp_path):
    model = manifest.get("voicefilter-embedder")
    good = model.path(tmp_path, "embedder.int8.onnx")
    m.install_from_packages(model, tmp_path)
    assert all(r.ok for r in m.verify([model], tmp_path))
    data = bytearray(good.read_bytes())
    data[1000] ^= 0xFF  # same size, one byte flipped
    good.write_bytes(bytes(data))
    [r] = m.verify([model], tmp_path)
    assert r.state == "sha256"
    assert "voicefilter-embedder/embedder.int8.onnx" in r.describe()
    assert model.files[0].sha256 in r.describe()
    # install repairs it: the bad file is replaced by a verified copy
    m.install_from_packages(model, tmp_path)
    assert m.verify([model], tmp_path)[0].ok
    good.unlink()
    assert m.verify([model], tmp_path)[0].state == "missing"


def test_assembly_from_parts_refuses_a_wrong_hash(manifest, tmp_path):
    model = manifest.get("microwakeword")
    parts = ("pymicro_wakeword/models/alexa.json", "pymicro_wakeword/models/hey_jarvis.json")
    joined = b"".join(m.ModelFile("x", "", 0).package_path(p).read_bytes() for p in parts)
    f = m.ModelFile("joined.json", hashlib.sha256(joined).hexdigest(), len(joined), parts=parts)
    test_model = replace(model, id="joined", files=(f,))
    m.install_from_packages(test_model, tmp_path)
    assert (tmp_path / "joined" / "joined.json").read_bytes() == joined
    wrong = replace(test_model, id="wrong", files=(replace(f, sha256="0" * 64),))
    with pytest.raises(m.ModelError, match="expected 0000"):
        m.install_from_packages(wrong, tmp_path)
    assert not any((tmp_path / "wrong").iterdir())  # nothing half-written left behind


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves bytes with Range support; can cut a response short to simulate a broken download."""

    files: dict[str, bytes] = {}
    cut_after: dict[str, int] = {}
    requests: list[tuple[str, str]] = []

    def log_message(self, *a):
        pass

    def do_GET(self):
        body = self.files.get(self.path)
        rng = self.headers.get("Range", "")
        self.requests.append((self.path, rng))
        if body is None:
            self.send_error(404)
            return
        start = int(rng.split("=")[1].split("-")[0]) if rng else 0
        chunk = body[start:]
        self.send_response(206 if rng else 200)
        self.send_header("Content-Length", str(len(chunk)))
        self.end_headers()
        cut = self.cut_after.pop(self.path, None)
        if cut is not None:
            self.wfile.write(chunk[:cut])
            self.wfile.flush()
            self.connection.shutdown(2)  # the connection drops mid-body
            return
        self.wfile.write(chunk)


@pytest.fixture
def server():
    _Handler.files, _Handler.cut_after, _Handler.requests = {}, {}, []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield httpd, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _model(url_base: str, payload: bytes, sha: str | None = None) -> m.Model:
    f = m.ModelFile("weights.bin", sha or hashlib.sha256(payload).hexdigest(), len(payload),
                    url=f"{url_base}/weights.bin")
    return m.Model(id="prod-test", role="llm", tier="production", engine="llama-cpp", licence="test",
                   vram_mb=1, files=(f,))


def test_fetch_downloads_and_verifies(server, tmp_path):
    _, base = server
    payload = os.urandom(3 * m.CHUNK + 123)
    _Handler.files["/weights.bin"] = payload
    seen = []
    m.fetch(_model(base, payload), tmp_path, progress=lambda n, got, total: seen.append((got, total)))
    assert (tmp_path / "prod-test" / "weights.bin").read_bytes() == payload
    assert seen[-1] == (len(payload), len(payload))
    assert not list((tmp_path / "prod-test").glob(".*"))  # no temp files left
    assert m.fetch(_model(base, payload), tmp_path) == ["present  prod-test/weights.bin"]


def test_truncated_download_resumes_with_a_range_request(server, tmp_path):
    _, base = server
    payload = os.urandom(2 * m.CHUNK + 777)
    _Handler.files["/weights.bin"] = payload
    _Handler.cut_after["/weights.bin"] = m.CHUNK + 5
    model = _model(base, payload)
    with pytest.raises(m.ModelError, match="run the fetch again to resume"):
        m.fetch(model, tmp_path)
    final = tmp_path / "prod-test" / "weights.bin"
    assert not final.exists()  # nothing under the final name until verified
    part = tmp_path / "prod-test" / ".weights.bin.part"
    have = part.stat().st_size
    assert 0 < have < len(payload)
    m.fetch(model, tmp_path)
    assert final.read_bytes() == payload
    assert _Handler.requests[-1] == ("/weights.bin", f"bytes={have}-")


def test_wrong_checksum_leaves_nothing(server, tmp_path):
    _, base = server
    payload = b"not the weights you are looking for" * 1000
    _Handler.files["/weights.bin"] = payload
    with pytest.raises(m.ModelError, match="expected " + "ab" * 32 + "; it was deleted"):
        m.fetch(_model(base, payload, sha="ab" * 32), tmp_path)
    assert list((tmp_path / "prod-test").iterdir()) == []


def test_fetch_reports_http_errors(server, tmp_path):
    _, base = server
    with pytest.raises(m.ModelError, match="HTTP 404"):
        m.fetch(_model(base, b"x" * 10), tmp_path)


def test_fetch_refuses_a_file_without_a_known_hash(manifest, tmp_path):
    with pytest.raises(m.ModelError, match="no sha256"):
        m.fetch(manifest.get("lipsync-wav2lip-onnx"), tmp_path)


def test_cli_verify_and_list(models_dir, kiosk_home):
    kiosk_home.mkdir(parents=True)
    (kiosk_home / "config.toml").write_text(f'[paths]\nmodels_dir = "{models_dir}"\n')
    env = {**os.environ, "AVATAR_KIOSK_HOME": str(kiosk_home)}
    r = subprocess.run([sys.executable, "-m", "appliance", "models", "verify", "--tier", "embedded"],
                       env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "files verified" in r.stdout and "BAD" not in r.stdout
    r = subprocess.run([sys.executable, "-m", "appliance", "models", "list"], env=env, capture_output=True, text=True)
    assert "whisper-base" in r.stdout and "not installed" in r.stdout  # production weights aren't here


def test_no_loader_reaches_a_model_hub():
    """Line by line: a hub call is allowed only with local_files_only=True on that very call."""
    root = Path(__file__).resolve().parent.parent
    hub_calls = ("hf_hub_download", "snapshot_download", "from_pretrained(", "torch.hub.load", "download_models(")
    for py in list((root / "appliance").rglob("*.py")) + list((root / "provisioning").rglob("*.py")):
        for n, line in enumerate(py.read_text(encoding="utf-8").splitlines(), 1):
            for call in hub_calls:
                assert call not in line or "local_files_only=True" in line, f"{py}:{n}: {call}"


def test_every_embedded_engine_loads_and_runs_with_the_network_cut(settings, tmp_path):
    """Behaviour, not text: the smoke check's child (every configured engine loaded and run once)
    in a Python whose sockets refuse any internet address. A loader that reaches for a hub fails."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import socket\n"
        "_connect = socket.socket.connect\n"
        "def _refuse(self, address):\n"
        "    if self.family in (socket.AF_INET, socket.AF_INET6):\n"
        "        raise OSError(f'network cut by the test: {address!r}')\n"
        "    return _connect(self, address)\n"
        "socket.socket.connect = _refuse\n"
        "socket.socket.connect_ex = _refuse\n")
    env = {**os.environ, "PYTHONPATH": str(site), "AVATAR_KIOSK_CONFIG": str(settings.paths.config_file)}
    r = subprocess.run([sys.executable, "-m", "appliance", "smoke", "--child"], env=env, capture_output=True,
                       text=True, timeout=300, cwd=Path(__file__).resolve().parent.parent)
    assert r.returncode == 0, r.stdout + r.stderr[-2000:]
    done = [ln for ln in r.stdout.splitlines() if '"phase": "ok"' in ln]
    assert len(done) >= 5, r.stdout  # vad, tts, stt, llm, face


def test_the_embedded_tier_installs_every_embedded_model(manifest):
    """The roles' choices and the alternatives filed under the tier: the set-up installs SmolLM2 (the
    English-only model the turn tests run) though Qwen is the role's default — a fresh clone's CI
    once found it missing."""
    ids = {m.id for m in manifest.for_tier("embedded")}
    assert {"qwen2.5-coder-1.5b-q4km", "smollm2-135m", "whisper-base", "piper-joe"} <= ids
    assert all(manifest.get(i).tier == "embedded" or i in {r["embedded"] for r in manifest.roles.values()}
               for i in ids)
