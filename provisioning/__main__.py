"""``python -m provisioning PATH``: provision from a folder without the full CLI (a light entry point,
used by the kill test). Prints the result message; exit code 0 on success."""

from __future__ import annotations

import sys
from pathlib import Path

from appliance import paths

from .pipeline import provision


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m provisioning BUNDLE_FOLDER", file=sys.stderr)
        return 2
    result = provision(paths.load_settings(), Path(argv[0]))
    print(result.message)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
