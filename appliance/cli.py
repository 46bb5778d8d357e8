"""``avatar-kiosk``: the one command line for the daemon, the technician and the installer.

Each subcommand's code lives in its own module and is imported only when that subcommand runs,
so ``avatar-kiosk --help`` and ``status`` stay instant on the box (no torch, no models loaded).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from pathlib import Path

from . import config as config_mod
from . import logs, paths

log = logging.getLogger("avatar-kiosk")


def _build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="avatar-kiosk",
        description="A talking digital person for a kiosk box. Technicians: start with `status` and `doctor`.",
    )
    p.add_argument("--config", type=Path, help="config file (default: /etc/avatar-kiosk/config.toml on the box, "
                   ".kiosk/config.toml in a checkout)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def cmd(name: str, target: str, help: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=help)
        sp.set_defaults(target=target)
        return sp

    # --- the kiosk itself
    sp = cmd("run", "appliance.app.run:main", "run the kiosk (what the systemd service starts)")
    sp.add_argument("--visitor", type=Path, help="use a WAV file as the microphone instead of a sound card")
    sp.add_argument("--record", type=Path, help="write what a person would see and hear to a video file")
    sp.add_argument("--headless", action="store_true", help="render offscreen (SDL dummy driver)")
    sp.add_argument("--exit-after", type=float, default=0.0, help="stop after this many seconds of audio (0 = run on)")
    sp.add_argument("--speaker-out", type=Path, help="with --visitor: write what the speaker played to this WAV "
                    "when the kiosk stops")
    sp = cmd("smoke", "appliance.app.smoke:main",
             "load every configured engine and run it once, in a child process (the set-up's last step)")
    sp.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    sp = cmd("demo", "appliance.demo:main", "the demo persona talking: a spoken visitor, the face, the reply")
    sp.add_argument("--record", type=Path, help="also write the demo to a video file (mp4)")
    sp.add_argument("--prepare-only", action="store_true", help="only assemble the demo bundle and profile")
    sp.add_argument("--visitor", type=Path, help="a WAV file to use as the visitor (default: generated questions)")
    sp = cmd("ask", "appliance.app.commands:ask", "a typed turn: print the reply and write its audio")
    sp.add_argument("text")
    sp.add_argument("--out", type=Path, help="write the reply audio here (WAV)")
    sp.add_argument("--language", choices=("en", "ru"), help="force the reply language")
    sp = cmd("say", "appliance.app.commands:say", "speak a text through the running kiosk (or to a WAV)")
    sp.add_argument("text")
    sp.add_argument("--out", type=Path, help="write the audio here instead of playing it")
    sp.add_argument("--language", choices=("en", "ru"))
    sp = cmd("listen", "appliance.app.commands:listen", "run the whole listening loop on a recording")
    sp.add_argument("--wav", type=Path, required=True)
    sp.add_argument("--out", type=Path, help="write what the kiosk said to this WAV")
    sp.add_argument("--realtime", action="store_true", help="feed the recording at real-time speed")
    sp = cmd("bench", "appliance.bench:main", "measure per-stage latencies (and --face / --voice / --wer / --lipsync / --safety / --production)")
    sp.add_argument("--turns", type=int, default=8)
    sp.add_argument("--face", action="store_true", help="measure the face animator's ms per frame")
    sp.add_argument("--voice", action="store_true", help="measure voice similarity to the profile's samples")
    sp.add_argument("--wer", action="store_true",
                    help="Russian word error rate through the listening path vs whisper base with ru fixed")
    sp.add_argument("--limit", type=int, help="--wer: only the first N prompts")
    sp.add_argument("--soak", type=float, metavar="MINUTES",
                    help="run the real kiosk busy for MINUTES; print its memory, open files and threads each minute")
    sp.add_argument("--safety", action="store_true",
                    help="the question guard on the red-team set and on ordinary museum questions")
    sp.add_argument("--lipsync", action="store_true",
                    help="judge the rendered mouth against the voice with an independent face-landmark pass")
    sp.add_argument("--json", type=Path, help="also write the figures as JSON")
    sp.add_argument("--production", action="store_true",
                    help="time the production engines on production-size architectures with random weights")
    sp.add_argument("--size", choices=("tiny", "full"), default="full",
                    help="--production: model size (full = production dimensions; tiny = toy, for tests)")
    sp.add_argument("--device", choices=("cuda", "cpu"), default="cuda",
                    help="--production: where the engines run (cuda falls back to cpu, with a note, without a GPU)")
    sp.add_argument("--stages", default="stt,llm,tts,lipsync",
                    help="--production: comma list of stages to run (stt,llm,tts,lipsync)")
    sp.add_argument("--reps", type=int, default=3, help="--production: timed repetitions per figure (p50)")

    # --- models
    sp = cmd("models", "appliance.models_cli:main", "list, verify, install or fetch model files")
    sp.add_argument("action", choices=("list", "verify", "install", "fetch"))
    sp.add_argument("role", nargs="?", help="fetch: a role or model id")
    sp.add_argument("--all", action="store_true", help="fetch: every production model")
    sp.add_argument("--tier", choices=("embedded", "production", "all"), default="all")

    # --- technician
    cmd("status", "appliance.daemon.control:status_cmd", "one look at the running kiosk")
    sp = cmd("doctor", "appliance.daemon.doctor:main", "check everything a real box needs; one line per check")
    sp.add_argument("--quick", action="store_true", help="skip hashing the model files")
    sp = cmd("logs", "appliance.daemon.control:logs_cmd", "recent kiosk events from the journal")
    sp.add_argument("-n", type=int, default=50)
    sp = cmd("config", "appliance.config_cli:main", "check the config file, or print every key with its default")
    sp.add_argument("--defaults", action="store_true", help="print the full schema as a commented TOML file")

    # --- installer
    sp = cmd("provision", "appliance.cli:provision",
             "provision from a bundle folder (a mounted stick) or a signed bundle at an https URL")
    sp.add_argument("path", help="the bundle folder, or https://… (the bundle folder on a web server; must be signed)")
    sp.add_argument("--ca-file", help="https: the CA certificate (PEM) the server's certificate must chain to "
                    "(default: provisioning.ca_file, else the system's CAs)")
    sp = cmd("profile", "provisioning.commands:profile", "list the profiles, or roll back to the previous one")
    sp.add_argument("action", choices=("list", "rollback"))
    sp = cmd("bundle", "provisioning.commands:bundle", "build (and sign) a bundle folder for a USB stick")
    sp.add_argument("action", choices=("build", "keygen"))
    sp.add_argument("src", type=Path, nargs="?", help="build: the folder with persona.toml, photo, voice/")
    sp.add_argument("out", type=Path, nargs="?", help="build: the bundle folder to write; keygen: key file prefix")
    sp.add_argument("--key", type=Path, help="build: Ed25519 private key file to sign the manifest with")
    return p


def main(argv: list[str] | None = None, *, run=None) -> int:
    """``run``: another handler for ``avatar-kiosk run`` (the daemon tests' stand-in apps)."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "target", None):
        parser.print_help()
        return 0
    logs.setup("DEBUG" if args.verbose else "INFO")
    try:
        settings = paths.load_settings(args.config)
    except config_mod.ConfigError as e:
        if logs.under_journald():  # once: the journal also captures stderr
            log.error("%s", e, extra=logs.fields(logs.CONFIG_ERROR))
        else:
            print(str(e), file=sys.stderr)
        if args.command != "run":
            return 2
        # The daemon stays up on its defaults and shows the error on the maintenance screen (exiting
        # would leave the screen dark: systemd does not restart a configuration error). A fixed file
        # is picked up by `systemctl reload avatar-kiosk` or a restart.
        settings = paths.default_settings(args.config)
        args.config_error = str(e)
    if run is not None and args.command == "run":
        return int(run(settings, args) or 0)
    module, _, func = args.target.partition(":")
    try:
        handler = getattr(importlib.import_module(module), func)
    except (ImportError, AttributeError) as e:
        if isinstance(e, ModuleNotFoundError) and e.name and not e.name.startswith(("appliance", "provisioning")):
            raise
        print(f"avatar-kiosk {args.command}: not built yet ({module}.{func})", file=sys.stderr)
        return 3
    return int(handler(settings, args) or 0)


def provision(settings, args) -> int:
    """``avatar-kiosk provision``: the pipeline (provisioning.commands), then a running kiosk is told
    to go live with the new profile, as after a stick (a fleet tool pushes personas this way)."""
    from provisioning.commands import provision as run

    rc = run(settings, args)
    if rc == 0:
        _tell_running_kiosk(settings)
    return rc


def _tell_running_kiosk(settings) -> None:
    """A running kiosk takes the new profile live (face, voice, persona, greeting), as from a stick;
    without one, the kiosk starts with it next time."""
    from .daemon.control import DaemonUnavailable, request

    try:
        reply = request(settings.paths.control_socket, {"cmd": "profile_changed"}, timeout=120)
    except DaemonUnavailable:
        print("The kiosk is not running: it starts with the new profile.")
        return
    if reply.get("ok") and reply.get("changed"):
        print(f"The running kiosk now speaks as {reply.get('persona')} (profile {reply.get('profile')}).")
    elif reply.get("ok"):
        print("The running kiosk already runs this profile.")
    else:
        print(f"The running kiosk did not switch yet: {reply.get('error')} — it will use the new profile "
              "after its next start (systemctl restart avatar-kiosk).")


if __name__ == "__main__":
    sys.exit(main())
