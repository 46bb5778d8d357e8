"""CLI handlers: ``avatar-kiosk provision PATH``, ``profile list|rollback``, ``bundle build|keygen``.

Each is ``fn(settings, args) -> exit code``. Output is for a technician over SSH or an installer at a
laptop: plain sentences, no tracebacks.
"""

from __future__ import annotations

import sys
from pathlib import Path

from appliance.paths import Settings

from . import bundle as bundle_fmt
from . import profiles


def _console_progress():
    last = {"step": None, "pct": -1}
    if not sys.stderr.isatty():  # a log or a pipe: one line per step, no bar redrawing
        def plain(step: str, frac: float) -> None:
            if step != last["step"]:
                last["step"] = step
                print(f"{step} ...", file=sys.stderr, flush=True)
        return plain

    def show(step: str, frac: float) -> None:
        pct = int(frac * 100)
        if step != last["step"]:
            if last["step"] is not None:
                print(file=sys.stderr)
            last["step"], last["pct"] = step, -1
        if pct // 10 != last["pct"] // 10 or pct == 100:
            bar = "#" * (pct // 5)
            print(f"\r{step:<48} [{bar:<20}] {pct:3d}%", end="", file=sys.stderr, flush=True)
            last["pct"] = pct

    return show


def provision(settings: Settings, args) -> int:
    from . import remote

    ca_file = getattr(args, "ca_file", None)
    if ca_file:
        from appliance.config import replace

        settings = Settings(replace(settings.config, "provisioning", ca_file=str(Path(ca_file).resolve())),
                            settings.paths)
    return provision_path(settings, args.path if remote.is_url(args.path) else Path(args.path))


def provision_path(settings: Settings, path: Path | str) -> int:
    """Provision from a folder (or an https URL) with console progress and the report printed; 0 on success."""
    from .pipeline import provision as run

    result = run(settings, path, _console_progress())
    print(file=sys.stderr)
    print(result.report, end="")
    print(result.message)
    if result.report_path:
        print(f"(report: {result.report_path})")
    return 0 if result.ok else 1


def profile(settings: Settings, args) -> int:
    paths = settings.paths
    if args.action == "list":
        items = profiles.list_profiles(paths)
        if not items:
            print("no profiles yet — provision one from a USB stick or `avatar-kiosk provision PATH`")
            return 0
        for p in items:
            mark = "*" if p.active else " "
            print(f"{mark} {p.id:<44} {p.name:<20} {p.created[:19]:<20} {p.state}")
        print("(* = active)")
        return 0
    try:
        target = profiles.rollback(paths, reason="rolled back by a technician")
    except profiles.ProfileError as e:
        print(f"cannot roll back: {e}", file=sys.stderr)
        return 1
    print(f"rolled back: the active profile is now {target}. Restart the kiosk to use it: "
          "systemctl restart avatar-kiosk")
    return 0


def bundle(settings: Settings, args) -> int:
    if args.action == "keygen":
        if not args.src and not args.out:
            print("usage: avatar-kiosk bundle keygen OUT_PREFIX", file=sys.stderr)
            return 2
        prefix = Path(args.out or args.src)
        try:
            key_file, pub = bundle_fmt.keygen(prefix)
        except bundle_fmt.BundleError as e:
            print(f"problem: {e}", file=sys.stderr)
            return 1
        print(f"private key: {key_file} (keep it on this laptop; never copy it to a stick)")
        print(f"public key:  {pub}")
        print("put the public key in each kiosk's /etc/avatar-kiosk/config.toml:")
        print(f'[provisioning]\ntrusted_keys = ["{pub}"]')
        return 0
    if not args.src or not args.out:
        print("usage: avatar-kiosk bundle build SRC_FOLDER OUT_FOLDER [--key KEY_FILE]", file=sys.stderr)
        return 2
    src, out = Path(args.src), Path(args.out)
    problems = check_source(src)
    if out.exists() and out.resolve() != src.resolve():
        foreign = bundle_fmt.foreign_files(out) if out.is_dir() else [out.name]
        if foreign:
            problems.append(f"{out} already holds files that are not part of a bundle ({', '.join(foreign[:5])}"
                            f"{' …' if len(foreign) > 5 else ''}) — choose a new or empty folder, e.g. "
                            "/media/stick/anna")
    rs, ro = src.resolve(), out.resolve()
    if rs != ro and (rs in ro.parents or ro in rs.parents):
        problems.append("the bundle folder and the source folder must not be inside each other")
    if problems:
        for p in problems:
            print(f"problem: {p}", file=sys.stderr)
        return 1
    try:
        entries = bundle_fmt.build(src, out, key=args.key)
    except bundle_fmt.BundleError as e:
        print(f"problem: {e}", file=sys.stderr)
        return 1
    total = sum(e.size for e in entries)
    print(f"bundle written to {out}: {len(entries)} files, {total / 2**20:.1f} MB"
          + (", signed" if args.key else ", unsigned"))
    print("copy the whole folder onto the USB stick (at its top level, or as the only folder on it)")
    return 0


def check_source(src: Path) -> list[str]:
    """Quick checks on the laptop before building, so the installer learns of problems early."""
    out = []
    if not src.is_dir():
        return [f"{src} is not a folder"]
    if not (src / "persona.toml").is_file():
        out.append("no persona.toml in the folder")
    photos = [p for p in ("photo.jpg", "photo.jpeg", "photo.png") if (src / p).is_file()]
    if len(photos) != 1:
        out.append("the folder needs exactly one photo: photo.jpg or photo.png")
    if not (src / "voice").is_dir() or not list((src / "voice").glob("*.wav")):
        out.append("no voice/*.wav recordings in the folder")
    from .verify import layout_ok

    for p in src.rglob("*"):
        rel = p.relative_to(src).as_posix()
        if any(part.startswith(".") for part in p.relative_to(src).parts):
            continue  # hidden files are left out of bundles
        if p.is_symlink():
            out.append(f"{rel} is a link — copy the real file instead")
        elif p.is_file() and not layout_ok(rel):
            out.append(f"{rel} is not part of a bundle (persona.toml, photo.jpg|png, voice/*.wav, "
                       "models/<id>/<file>) — move it out of the folder")
    return out
