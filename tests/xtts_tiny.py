"""Tiny XTTS checkpoint builder for tests; the code lives in :mod:`appliance.bench.models.xtts`."""

from appliance.bench.models.xtts import SPECIALS, build, write_vocab  # noqa: F401
