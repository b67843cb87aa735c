"""The Ray launcher against a real local Ray cluster that this test starts and stops."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from recsys.result import read_result
from tests.sweep.conftest import FAST, run_sim

pytest.importorskip("hydra_plugins.hydra_ray_launcher")
pytest.importorskip("ray")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ray_cli() -> str:
    found = shutil.which("ray", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.skip("the ray command is not installed next to this Python")
    return found


@pytest.mark.slow
def test_ray_launcher_runs_jobs_on_a_local_cluster(tmp_path, shared_cache):
    ray = ray_cli()
    port = free_port()
    # Ray >= 2.59 wants token authentication: the same token for the cluster and the client.
    env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    environ = dict(os.environ, **env)
    start = subprocess.run(
        [
            ray,
            "start",
            "--head",
            "--node-ip-address=127.0.0.1",
            f"--port={port}",
            "--num-cpus=2",
            "--include-dashboard=false",
            "--disable-usage-stats",
        ],
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    try:
        assert start.returncode == 0, start.stderr[-3000:]
        sweep = tmp_path / "multirun"
        proc = run_sim(
            [
                "-m",
                *FAST,
                "ranking=lightgbm_small,popularity",
                "hydra/launcher=ray",
                f"hydra.launcher.ray.init.address=127.0.0.1:{port}",
                f"hydra.sweep.dir={sweep}",
            ],
            tmp_path,
            shared_cache,
            timeout=300,
            env=env,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        results = {p.parent.name: read_result(p) for p in sweep.glob("*/result.json")}
        assert sorted(results) == ["0", "1"]
        assert {r["pipeline"][1]["kind"] for r in results.values()} == {"lightgbm", "popularity"}
        # The jobs ran as Ray tasks (their output comes back tagged by the Ray worker).
        assert "_run_job pid=" in proc.stdout + proc.stderr
    finally:
        # Always stop the cluster started here: a stale head breaks the next local start.
        subprocess.run(
            [ray, "stop", "--force"], env=environ, capture_output=True, timeout=120, check=False
        )
