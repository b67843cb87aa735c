"""Which engine runs a simulation: ``engine="auto" | "simpy" | "fast" | "naive"``.

All three implement one model and give the same per-request records for the same arrivals
and seed (tested):

- ``fast``: the compiled event loop (:mod:`recsys.sim.fast`, Numba), millions of requests per
  second; everything but the autoscaler.
- ``simpy``: SimPy with callbacks (:mod:`recsys.sim.engine`), about 200k requests per second;
  the only one with the autoscaler. ``callbacks`` is accepted as its old name.
- ``naive``: one SimPy process per request (:mod:`recsys.sim.naive`), the readable reference.
- ``auto`` (the default): ``fast`` when Numba is installed and the run has no autoscaler
  and no warm/cold service model (:class:`~recsys.sim.service.WarmColdServiceTime`), shared
  machine (``StageSpec.contention``), machine slowdown (``StageSpec.slowdown``) or early
  exit (``StageSpec.after_ms``), else ``simpy``.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from functools import cache

from recsys.errors import ConfigError
from recsys.sim.contention import contended
from recsys.sim.service import state_dependent
from recsys.sim.slowdown import modulated

ENGINES = ("auto", "simpy", "fast", "naive")
_ALIASES = {"callbacks": "simpy", "simpy-callbacks": "simpy", "numba": "fast"}


@cache
def compiled_available() -> bool:
    """Whether Numba is installed (checked without importing it: importing costs 0.5 s)."""
    return importlib.util.find_spec("numba") is not None


def leaves_early(stages: Sequence[object]) -> bool:
    """Whether any stage's requests leave before its worker is free (``after_ms`` > 0)."""
    return any(getattr(s, "after_ms", 0.0) > 0 for s in stages)


def supports(stages: Sequence[object], autoscaler: object | None = None) -> bool:
    """Whether the compiled engine can run this pipeline (anything but an autoscaler or a
    state-dependent service model, shared machine or machine slowdown)."""
    stateful = any(state_dependent(getattr(s, "service", None)) for s in stages)
    shared = contended(stages) or modulated(stages) or leaves_early(stages)
    return autoscaler is None and not stateful and not shared and 0 < len(stages) < 128


def choose_engine(
    stages: Sequence[object], autoscaler: object | None = None, engine: str = "auto"
) -> str:
    """The engine that will run (``simpy``, ``fast`` or ``naive``); ConfigError if it cannot."""
    name = _ALIASES.get(engine, engine)
    if name not in ENGINES:
        raise ConfigError(f"sim engine must be one of {ENGINES}, got {engine!r}")
    can_compile = supports(stages, autoscaler)
    if name == "auto":
        return "fast" if compiled_available() and can_compile else "simpy"
    if name == "fast" and not can_compile:
        raise ConfigError(
            "engine 'fast' cannot autoscale, draw warm/cold service times, share a machine "
            "between stages (contention), slow it down over time nor let requests leave "
            "before their worker is free (after_ms); use engine 'simpy' or 'auto'"
        )
    if name == "naive" and autoscaler is not None:
        raise ConfigError("engine 'naive' has no autoscaler; use engine 'simpy' or 'auto'")
    if name == "naive" and contended(stages):
        raise ConfigError("engine 'naive' has no stage contention; use engine 'simpy' or 'auto'")
    if name == "naive" and leaves_early(stages):
        raise ConfigError("engine 'naive' has no after_ms; use engine 'simpy' or 'auto'")
    return name


__all__ = ["ENGINES", "choose_engine", "compiled_available", "leaves_early", "supports"]
