"""Real open-loop load tests of the real pipeline, and calibration of the simulator against them.

- :mod:`~recsys.loadtest.server`: an in-process server (per stage a FIFO queue and worker
  threads with the simulator's batching rules).
- :mod:`~recsys.loadtest.run`: the open-loop generator and :func:`run_loadtest`.
- :mod:`~recsys.loadtest.pipeline_stages`: a fitted pipeline's stages as live stages.
- :mod:`~recsys.loadtest.calibrate` / :mod:`~recsys.loadtest.compare` /
  :mod:`~recsys.loadtest.report`: simulated vs measured percentiles per load level.

Nothing here reads a config; ``recsys-loadtest`` (:mod:`recsys.cli.loadtest`) does.
"""

from recsys.loadtest.run import (
    GeneratorBehind,
    LoadTestLimits,
    LoadTestResult,
    Unfinished,
    run_loadtest,
)
from recsys.loadtest.server import LiveServer, LiveStage

__all__ = [
    "GeneratorBehind",
    "LiveServer",
    "LiveStage",
    "LoadTestLimits",
    "LoadTestResult",
    "Unfinished",
    "run_loadtest",
]
