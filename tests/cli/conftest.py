"""Run the real console scripts in a temporary directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def run_cli(args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """``recsys-sim ARGS`` (via ``python -m``) with outputs under ``cwd``."""
    env = dict(os.environ, OMP_NUM_THREADS="1", RECSYS_CACHE_DIR=str(cwd / "cache"))
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "recsys.cli.sim",
            *args,
            f"hydra.run.dir={cwd / 'out'}",
            "progress=false",
        ],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def sim_cli(tmp_path):
    def call(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return run_cli(list(args), tmp_path, timeout)

    return call
