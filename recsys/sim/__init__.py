"""Traffic simulator: workloads -> replica pools with batching, queues and timeouts -> latency.

Sees only service-time models (never faiss, lightgbm, torch or onnx), so it stays fast,
testable against queueing theory and usable for stages that do not exist yet.
"""

from recsys.sim.autoscale import AutoscalerSpec
from recsys.sim.engine import StageSpec, simulate
from recsys.sim.hardware import Hardware
from recsys.sim.results import SimResult, StageStats
from recsys.sim.service import (
    Deterministic,
    EmpiricalServiceTime,
    Exponential,
    Gamma,
    LogNormal,
    Scaled,
    ServiceTimeModel,
)
from recsys.sim.workload import Bursty, Diurnal, Poisson, Replay, Workload, record_arrivals

__all__ = [
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
    "Scaled",
    "ServiceTimeModel",
    "SimResult",
    "StageSpec",
    "StageStats",
    "Workload",
    "record_arrivals",
    "simulate",
]
