"""Tiny XTTS checkpoint builder for tests; the code lives in :mod:`appliance.benchmodels.xtts`."""

from appliance.benchmodels.xtts import SPECIALS, build, write_vocab  # noqa: F401
