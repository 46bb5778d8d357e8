"""`avatar-kiosk provision https://…`: a signed bundle from a real https server (its own process, a
certificate from a CA made here) goes through the same pipeline as a stick; an unsigned, a foreign
or a changed one is refused with its reason, before its files are fetched where it can be, and
nothing on the kiosk changes."""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from llm_server import free_port
from prometheus_client.parser import text_string_to_metric_families
from support import bundles as T

from appliance import config as config_mod
from appliance.metrics import PROVISION_FILE, textfile_dir
from appliance.paths import Settings
from provisioning import bundle, derive, pipeline, profiles

REPO = Path(__file__).resolve().parent.parent
STUB = derive.STUB_ENV  # the light derive step, as the stick tests use it: the download is what is tested


def _certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A CA, and a certificate for 127.0.0.1 signed by it: (ca.pem, server.pem, server.key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Museum fleet test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bundles.museum.test")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


class Site:
    """The fleet's web server: a folder of bundles served over https by its own process."""

    def __init__(self, root: Path, tmp: Path):
        self.root = root
        self.ca, cert, key = _certificates(tmp)
        self.port = free_port()
        self.log = tmp / "https.log"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen([sys.executable, str(REPO / "tests" / "support" / "https_static.py"),
                                          str(root), str(self.port), str(cert), str(key)],
                                         stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while "serving" not in self.log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)

    def url(self, name: str) -> str:
        return f"https://127.0.0.1:{self.port}/{name}/"

    def fetched(self) -> list[str]:
        return [ln.split()[1] for ln in self.log.read_text().splitlines() if ln.startswith("GET ")]

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


@pytest.fixture(scope="module")
def good_src(tmp_path_factory) -> Path:
    return T.make_source(tmp_path_factory.mktemp("src") / "good")


@pytest.fixture
def site(tmp_path, good_src):
    root = tmp_path / "www"
    root.mkdir()
    key, pub = bundle.keygen(tmp_path / "site")
    bundle.build(good_src, root / "anna", key=key)
    bundle.build(good_src, root / "unsigned")
    other_key, _ = bundle.keygen(tmp_path / "other")
    bundle.build(good_src, root / "foreign", key=other_key)
    s = Site(root, tmp_path)
    s.pub = pub
    yield s
    s.stop()


def kiosk_settings(settings: Settings, **prov) -> Settings:
    return Settings(config_mod.replace(settings.config, "provisioning", **prov), settings.paths)


def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess:
    """`avatar-kiosk provision …` as a technician (or Ansible) runs it: its own process."""
    env = {**os.environ, "AVATAR_KIOSK_HOME": str(settings.paths.config_file.parent), STUB: "1"}
    env.pop("AVATAR_KIOSK_CONFIG", None)
    return subprocess.run([sys.executable, "-m", "appliance", "provision", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


def write_config(settings: Settings, pub: str) -> None:
    cfg = settings.paths.config_file
    cfg.write_text(cfg.read_text() + f'\n[provisioning]\ntrusted_keys = ["{pub}"]\n')


def provision_metrics(settings: Settings) -> dict:
    text = (textfile_dir(settings) / PROVISION_FILE).read_text()
    return {(s.name, s.labels.get("code")): s.value for f in text_string_to_metric_families(text) for s in f.samples}


def test_signed_bundle_from_https_is_provisioned_through_the_cli(settings, site):
    write_config(settings, site.pub)
    r = cli(settings, site.url("anna"), "--ca-file", str(site.ca))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Downloading the bundle" in r.stderr and "Done — Anna is ready.\n" in r.stdout
    assert "signature valid" in r.stdout and f"bundle: {site.url('anna')}" in r.stdout
    assert profiles.active_id(settings.paths) is not None
    assert (settings.paths.current_profile / "persona.toml").read_text() == (site.root / "anna" / "persona.toml").read_text()
    assert list(settings.paths.staging_dir.iterdir()) == []  # the download went with the job
    assert provision_metrics(settings)[("avatar_kiosk_provision_last_ok", "")] == 1


def test_unsigned_bundle_from_https_is_refused_before_its_files_are_fetched(settings, site):
    write_config(settings, site.pub)
    before = T.tree_digest(settings.paths.profiles_dir)
    r = cli(settings, site.url("unsigned"), "--ca-file", str(site.ca))
    assert r.returncode == 1
    assert "is not signed — a bundle from a URL must be" in r.stdout, r.stdout
    assert site.fetched() == ["/unsigned/manifest.toml", "/unsigned/manifest.toml.sig"]  # no photo, no voice
    assert T.tree_digest(settings.paths.profiles_dir) == before
    assert provision_metrics(settings)[("avatar_kiosk_provision_last_ok", "signature-missing")] == 0


@pytest.fixture
def stubbed(monkeypatch):
    monkeypatch.setenv(STUB, "1")


@pytest.mark.parametrize("name, code, words", [
    ("foreign", "signature-bad", "does not match this kiosk's keys"),
    ("missing", "download-missing", "HTTP 404"),
])
def test_bundles_the_kiosk_does_not_trust_are_refused(settings, site, stubbed, name, code, words):
    before = T.tree_digest(settings.paths.profiles_dir)
    r = pipeline.provision(kiosk_settings(settings, trusted_keys=[site.pub], ca_file=str(site.ca)), site.url(name))
    assert (r.ok, r.code) == (False, code) and words in r.message, r.message
    assert T.tree_digest(settings.paths.profiles_dir) == before
    assert list(settings.paths.staging_dir.iterdir()) == []


def test_a_file_changed_on_the_server_after_signing_is_refused(settings, site, stubbed):
    voice = sorted((site.root / "anna" / "voice").iterdir())[0]
    data = bytearray(voice.read_bytes())
    data[-100] ^= 0xFF  # same size, other bytes
    voice.write_bytes(bytes(data))
    r = pipeline.provision(kiosk_settings(settings, trusted_keys=[site.pub], ca_file=str(site.ca)), site.url("anna"))
    assert (r.ok, r.code) == (False, "hash-mismatch"), r.message
    assert profiles.active_id(settings.paths) is None and list(settings.paths.staging_dir.iterdir()) == []


def test_the_servers_certificate_is_verified(settings, site, stubbed):
    # Without the fleet's CA the test server's certificate is a stranger's: refused, never "trusted anyway".
    r = pipeline.provision(kiosk_settings(settings, trusted_keys=[site.pub]), site.url("anna"))
    assert (r.ok, r.code) == (False, "tls-untrusted") and "--ca-file" in r.message, r.message
    assert site.fetched() == []


def test_plain_http_and_an_untrusting_kiosk_are_refused(settings, site, stubbed):
    r = pipeline.provision(kiosk_settings(settings, trusted_keys=[site.pub]), f"http://127.0.0.1:{site.port}/anna/")
    assert (r.ok, r.code) == (False, "url-not-https"), r.message
    r = pipeline.provision(kiosk_settings(settings, ca_file=str(site.ca)), site.url("anna"))  # no trusted key
    assert (r.ok, r.code) == (False, "signature-required") and "provisioning.trusted_keys" in r.message
    assert site.fetched() == []
    assert "RESULT: FAILED" in (settings.paths.state_dir / profiles.REPORT).read_text()


def test_the_stick_path_is_unchanged_by_the_url_path(settings, site, stubbed, tmp_path):
    """A folder is still a folder (even one named like a host): the copy step, not the download."""
    local = tmp_path / "https:" / "anna"
    shutil.copytree(site.root / "anna", local)
    r = pipeline.provision(kiosk_settings(settings, trusted_keys=[site.pub]), local)
    assert r.ok, r.message
    assert "copied" in r.report and "downloaded" not in r.report
