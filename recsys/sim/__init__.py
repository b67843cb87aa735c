"""Traffic simulator: workloads -> replica pools with batching, queues and timeouts -> latency.

Sees only service-time models (never faiss, lightgbm, torch or onnx), so it stays fast,
testable against queueing theory and usable for stages that do not exist yet.

Modules, one idea each:

- ``service``: service-time models (empirical from profiles, analytic what-ifs, ``Scaled``).
- ``hardware``: instance types with dated prices and speed factors.
- ``workload`` / ``replay``: arrival processes (Poisson, diurnal, bursty, recorded traces) and
  ``record_arrivals``.
- ``engine``: ``StageSpec`` and ``simulate`` (picks an engine, see ``select``), and the SimPy
  callback engine; ``server`` holds the per-stage queue/batcher/workers; ``autoscale`` the
  HPA-like autoscaler; ``records`` the per-request log; ``results`` the ``SimResult`` summary.
- ``naive``: the same model, one SimPy process per request (reference and benchmark).
- ``fast`` / ``kernel``: the compiled engine (Numba): SimPy's events replayed in one loop, the
  same per-request records at millions of requests per second; no autoscaler.
- ``select``: ``engine="auto" | "simpy" | "fast" | "naive"`` (auto: compiled when it applies).
- ``stream``: what ``record=False`` keeps instead of records (bounded-memory histograms,
  percentiles within 0.2%), the same for every engine.
- ``theory`` / ``validate``: closed forms (Erlang C, M/D/1, Pollaczek-Khinchine) and
  simulated-vs-analytic reports; ``replications``: independent-replication intervals.
"""

from recsys.sim.autoscale import AutoscalerSpec
from recsys.sim.engine import StageSpec, simulate
from recsys.sim.hardware import Hardware
from recsys.sim.replications import ReplicatedResult, simulate_replications
from recsys.sim.results import SimResult, StageStats
from recsys.sim.select import ENGINES, choose_engine
from recsys.sim.service import (
    Deterministic,
    EmpiricalServiceTime,
    Exponential,
    Gamma,
    LogNormal,
    Scaled,
    ServiceTimeModel,
)
from recsys.sim.validate import validate_queue
from recsys.sim.workload import Bursty, Diurnal, Poisson, Replay, Workload, record_arrivals

__all__ = [
    "ENGINES",
    "AutoscalerSpec",
    "Bursty",
    "Deterministic",
    "Diurnal",
    "EmpiricalServiceTime",
    "Exponential",
    "Gamma",
    "Hardware",
    "LogNormal",
    "Poisson",
    "Replay",
    "ReplicatedResult",
    "Scaled",
    "ServiceTimeModel",
    "SimResult",
    "StageSpec",
    "StageStats",
    "Workload",
    "choose_engine",
    "record_arrivals",
    "simulate",
    "simulate_replications",
    "validate_queue",
]
