"""``avatar-kiosk config``: check the config file, or print the schema with its defaults."""

from __future__ import annotations

from . import config as config_mod


def main(settings, args) -> int:
    if args.defaults:
        print(config_mod.defaults_toml())
        return 0
    # Loading already validated the file (a bad one never gets this far).
    where = settings.paths.config_file
    state = "found" if where.exists() else "absent: all defaults"
    print(f"config {where} ({state}) is valid; mode={settings.paths.mode}")
    for name in ("state_dir", "cache_dir", "models_dir", "runtime_dir"):
        print(f"  {name:12} {getattr(settings.paths, name)}")
    return 0
