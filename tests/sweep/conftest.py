"""Real multiruns of ``recsys-sim`` on the smoke experiment, shrunk to seconds per job."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# A smoke job in a few seconds: tiny data, few profile samples, a short simulation.
FAST = [
    "experiment=smoke",
    "retrieval.embedding.epochs=2",
    "sim.n_requests=4000",
    "sim.warmup_requests=400",
    "profile.batch_sizes=[1,4]",
    "profile.repeats=8",
    "eval_users=100",
    "write_records=false",
    "progress=false",
]


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory) -> Path:
    """One artifact cache for the session: each stage trains once across all sweep tests."""
    return tmp_path_factory.mktemp("cache")


def run_sim(
    args: list[str], cwd: Path, cache: Path, timeout: float = 240, env: dict | None = None
) -> subprocess.CompletedProcess:
    """``recsys-sim ARGS`` in ``cwd`` (as the console script would run it)."""
    environ = dict(os.environ, OMP_NUM_THREADS="1", RECSYS_CACHE_DIR=str(cache), **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "recsys.cli.sim", *args],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
