"""A bundle from an https URL: the very folder a stick carries, served as plain files by any web
server (nginx, a CDN, `python -m http.server` behind TLS), so a fleet tool — Ansible, Mender, a cron
job — pushes a persona with ``avatar-kiosk provision https://…`` the way an installer plugs a stick.

This is only the pipeline's first step, in place of the copy off the stick: the files land in the
job's staging folder and everything after (verify, validate, derive, self-test, the atomic switch,
the report, the rollback) is the same code. What differs is trust. A stick is in the installer's
hand; a URL is anyone's, so:

* only https, verified against the system's CAs or ``provisioning.ca_file`` / ``--ca-file`` (a
  fleet's own CA) — never without verification, and no redirects (a redirect could leave https);
* the bundle must be signed with a key the kiosk trusts, and the signature is checked on the
  manifest *before* any other file is fetched, so an unsigned or foreign bundle costs two small
  requests, not gigabytes;
* every file is fetched by the name and size its signed manifest gives, and refused the moment it
  runs longer or its sha256 differs.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import ssl
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote, urlsplit

from . import bundle
from .errors import ProvisionError
from .staging import check_room
from .verify import MAX_MANIFEST_BYTES, check_path, layout_ok

TIMEOUT_S = 30.0
CHUNK = 1 << 20


def is_url(source: str | os.PathLike) -> bool:
    return isinstance(source, str) and source.lower().startswith(("https://", "http://"))


def _bad(code: str, msg: str) -> ProvisionError:
    return ProvisionError(code, msg, step="download")


class _Site:
    """GETs below one https base URL over one verified TLS connection at a time."""

    def __init__(self, url: str, ca_file: str) -> None:
        u = urlsplit(url)
        if u.scheme.lower() != "https":
            raise _bad("url-not-https", f"{url} is not an https address — bundles are only fetched over https "
                       "(a plain http download could be changed on the way)")
        if not u.hostname:
            raise _bad("url-bad", f"{url} names no server")
        if ca_file and not Path(ca_file).is_file():
            raise _bad("ca-missing", f"The CA file {ca_file} does not exist")
        self.host, self.port = u.hostname, u.port
        path = u.path
        if path.endswith("/" + bundle.MANIFEST):
            path = path[: -len(bundle.MANIFEST)]
        self.base = path.rstrip("/") + "/"
        self.shown = f"https://{u.netloc}{self.base}"
        try:
            self.ctx = ssl.create_default_context(cafile=ca_file or None)
        except (OSError, ssl.SSLError) as e:
            raise _bad("ca-bad", f"The CA file {ca_file} cannot be used: {e}") from None

    def get(self, rel: str, limit: int, sink: Callable[[bytes], None]) -> int:
        """Stream ``rel`` into ``sink``; refuse more than ``limit`` bytes. Returns the byte count."""
        conn = http.client.HTTPSConnection(self.host, self.port, timeout=TIMEOUT_S, context=self.ctx)
        try:
            conn.request("GET", self.base + quote(rel), headers={"User-Agent": "avatar-kiosk"})
            resp = conn.getresponse()
            if resp.status == 404:
                raise _bad("download-missing", f"{self.shown}{rel} is not on the server (HTTP 404)")
            if resp.status != 200:
                where = f" to {resp.getheader('Location')}" if 300 <= resp.status < 400 else ""
                raise _bad("download-failed", f"The server answered HTTP {resp.status}{where} for {self.shown}{rel}"
                           + (" — give the bundle's final https address" if where else ""))
            n = 0
            while chunk := resp.read(CHUNK):
                n += len(chunk)
                if n > limit:
                    raise _bad("size-mismatch", f"{rel} on the server is larger than its manifest says — the "
                               "bundle on the server was changed or is damaged; publish it again")
                sink(chunk)
            return n
        except ssl.SSLCertVerificationError as e:
            raise _bad("tls-untrusted", f"The server's certificate is not trusted ({e.verify_message}) — give the "
                       "fleet's CA with --ca-file or provisioning.ca_file") from None
        except (OSError, http.client.HTTPException) as e:
            raise _bad("download-failed", f"Downloading {self.shown}{rel} failed: {e.__class__.__name__}: {e}") from None
        finally:
            conn.close()

    def small(self, rel: str, limit: int) -> bytes:
        parts: list[bytes] = []
        self.get(rel, limit, parts.append)
        return b"".join(parts)


def download(url: str, dest: Path, trusted_keys: list[str], *, ca_file: str = "", max_file_bytes: int,
             progress: Callable[[float], None] | None = None) -> list[bundle.Entry]:
    """Fetch the signed bundle at ``url`` into ``dest`` (a new folder). Raises ProvisionError."""
    site = _Site(url, ca_file)
    if not trusted_keys:
        raise _bad("signature-required", "A bundle from a URL must be signed, and this kiosk trusts no key — put the "
                   "site's public key in provisioning.trusted_keys (`avatar-kiosk bundle keygen` printed it)")
    manifest = site.small(bundle.MANIFEST, MAX_MANIFEST_BYTES)
    try:
        signature = site.small(bundle.SIGNATURE, 4096).decode("ascii")
    except ProvisionError as e:
        if e.code != "download-missing":
            raise
        raise _bad("signature-missing", f"The bundle at {site.shown} is not signed — a bundle from a URL must be: "
                   "build it with `avatar-kiosk bundle build SRC OUT --key <the site's key>`") from None
    except UnicodeDecodeError:
        signature = ""
    if not bundle.verify_signature(manifest, signature, trusted_keys):
        raise _bad("signature-bad", f"The signature of the bundle at {site.shown} does not match this kiosk's keys "
                   "(wrong key, or the bundle was changed after signing) — sign it with the site's key")
    try:
        entries = [e for e in bundle.parse_manifest(manifest) if e.path not in (bundle.MANIFEST, bundle.SIGNATURE)]
    except bundle.BundleError as e:
        raise _bad("manifest-bad", str(e)) from None
    for e in entries:  # the same rules a stick's manifest obeys, before a byte of the files
        check_path(e.path)
        if not layout_ok(e.path):
            raise _bad("unexpected-file", f"The bundle lists {e.path}, which the kiosk does not use")
        if e.size > max_file_bytes:
            raise _bad("too-large", f"{e.path} is {e.size / 2**20:.0f} MB — the largest file the kiosk accepts is "
                       f"{max_file_bytes / 2**20:.0f} MB")
    dest.mkdir(parents=True)
    total = sum(e.size for e in entries)
    check_room(dest, total, "download")
    (dest / bundle.MANIFEST).write_bytes(manifest)
    (dest / bundle.SIGNATURE).write_text(signature, encoding="ascii")
    done = 0
    for e in entries:
        target = dest / e.path
        target.parent.mkdir(parents=True, exist_ok=True)
        h = hashlib.sha256()
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o640)
        with os.fdopen(fd, "wb") as fh:
            def write(chunk: bytes, fh=fh, h=h) -> None:
                nonlocal done
                fh.write(chunk)
                h.update(chunk)
                done += len(chunk)
                if progress:
                    progress(done / (total or 1))

            n = site.get(e.path, e.size, write)
        if n != e.size or h.hexdigest() != e.sha256:
            raise _bad("hash-mismatch", f"{e.path} on the server does not match its checksum in the signed manifest — "
                       "the bundle on the server was changed or is damaged; publish it again")
    if progress:
        progress(1.0)
    return entries
