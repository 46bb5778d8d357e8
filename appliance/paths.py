"""Every filesystem location the kiosk uses, resolved in one place for the box and for a dev checkout.

Box (installed by systemd/install.sh): config in /etc/avatar-kiosk, state in /var/lib/avatar-kiosk,
cache in /var/cache/avatar-kiosk, the control socket in /run/avatar-kiosk. systemd passes the
directories it created through $STATE_DIRECTORY, $CACHE_DIRECTORY, $RUNTIME_DIRECTORY and
$CONFIGURATION_DIRECTORY, which win when present.

Dev checkout: everything under ``<checkout>/.kiosk/`` (git-ignored), so a developer or CI never
needs root and never touches the real box paths. ``AVATAR_KIOSK_HOME`` moves that root (tests
point it at a temporary folder); ``AVATAR_KIOSK_MODE=box|dev`` forces the choice.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from . import config as config_mod

REPO_ROOT = Path(__file__).resolve().parent.parent
BOX_CONFIG = Path("/etc/avatar-kiosk/config.toml")


@dataclass(frozen=True)
class Paths:
    mode: str  # "box" or "dev"
    config_file: Path
    state_dir: Path
    cache_dir: Path
    models_dir: Path
    runtime_dir: Path

    @property
    def profiles_dir(self) -> Path:
        return self.state_dir / "profiles"

    @property
    def current_profile(self) -> Path:
        """The symlink to the active profile (swapped atomically by provisioning)."""
        return self.profiles_dir / "current"

    @property
    def staging_dir(self) -> Path:
        return self.state_dir / "staging"

    @property
    def db_path(self) -> Path:
        return self.state_dir / "kiosk.sqlite3"

    @property
    def control_socket(self) -> Path:
        return self.runtime_dir / "control.sock"

    @property
    def phrase_cache(self) -> Path:
        return self.cache_dir / "phrases"

    @property
    def demo_bundle(self) -> Path:
        """The demo persona, assembled at set-up time in the installers' bundle format."""
        return self.state_dir / "demo-bundle"

    @property
    def manifest(self) -> Path:
        return REPO_ROOT / "models" / "manifest.toml"

    def ensure(self) -> None:
        for d in (self.state_dir, self.cache_dir, self.models_dir, self.profiles_dir, self.runtime_dir):
            d.mkdir(parents=True, exist_ok=True)


def detect_mode(env: dict[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    forced = env.get("AVATAR_KIOSK_MODE", "")
    if forced in ("box", "dev"):
        return forced
    if env.get("AVATAR_KIOSK_HOME"):
        return "dev"
    if env.get("STATE_DIRECTORY") or BOX_CONFIG.exists():
        return "box"
    return "dev"


def config_path(env: dict[str, str] | None = None) -> Path:
    """Which config file this process reads (``--config`` on the command line overrides it)."""
    env = os.environ if env is None else env
    if env.get("AVATAR_KIOSK_CONFIG"):
        return Path(env["AVATAR_KIOSK_CONFIG"])
    if detect_mode(env) == "box":
        conf_dir = env.get("CONFIGURATION_DIRECTORY", "").split(":")[0]
        return Path(conf_dir) / "config.toml" if conf_dir else BOX_CONFIG
    return _dev_root(env) / "config.toml"


def _dev_root(env: dict[str, str]) -> Path:
    return Path(env.get("AVATAR_KIOSK_HOME") or REPO_ROOT / ".kiosk")


def resolve(cfg: config_mod.PathsConfig, config_file: Path, env: dict[str, str] | None = None) -> Paths:
    """Paths for this process: explicit config values first, then systemd's, then the defaults."""
    env = os.environ if env is None else env
    mode = detect_mode(env)
    if mode == "box":
        state = env.get("STATE_DIRECTORY", "/var/lib/avatar-kiosk").split(":")[0]
        cache = env.get("CACHE_DIRECTORY", "/var/cache/avatar-kiosk").split(":")[0]
        runtime = env.get("RUNTIME_DIRECTORY", "/run/avatar-kiosk").split(":")[0]
    else:
        root = _dev_root(env)
        state, cache, runtime = str(root / "state"), str(root / "cache"), str(root / "run")
    state_dir = Path(cfg.state_dir or state)
    return Paths(
        mode=mode,
        config_file=config_file,
        state_dir=state_dir,
        cache_dir=Path(cfg.cache_dir or cache),
        models_dir=Path(cfg.models_dir or state_dir / "models"),
        runtime_dir=Path(cfg.runtime_dir or runtime),
    )


@dataclass(frozen=True)
class Settings:
    """The loaded config and the resolved paths: what every command starts from."""

    config: config_mod.Config
    paths: Paths


def default_settings(config_file: Path | None = None, env: dict[str, str] | None = None) -> Settings:
    """The defaults, with the folders the same config path and environment give: what the daemon
    runs its maintenance screen on when config.toml itself is broken."""
    path = config_file or config_path(env)
    cfg = config_mod.Config()
    return Settings(cfg, resolve(cfg.paths, path, env))


def load_settings(config_file: Path | None = None, env: dict[str, str] | None = None) -> Settings:
    path = config_file or config_path(env)
    cfg = config_mod.load(path)
    return Settings(cfg, resolve(cfg.paths, path, env))
