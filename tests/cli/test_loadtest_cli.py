"""``recsys-loadtest`` end to end: one load test, the calibration report, and bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

from recsys.cli.common import CONF_DIR
from recsys.cli.loadtest import run
from recsys.errors import ConfigError

# Training is cached across the tests of this module; runs stay small (tiny data).
SMALL = [
    "experiment=calibrate",
    "progress=false",
    "profile.repeats=20",
    "profile.batch_sizes=[1,2]",
    "profile.sample_users=32",
    # A busy test machine wakes threads late; these tests check plumbing, not fidelity.
    "loadtest.limits.max_lag_ms=1000",
]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


def loadtest(cache: Path, out: Path, *args: str, timeout: float = 240):
    env = dict(os.environ, OMP_NUM_THREADS="1", RECSYS_CACHE_DIR=str(cache))
    return subprocess.run(
        [sys.executable, "-m", "recsys.cli.loadtest", *args, f"hydra.run.dir={out}"],
        cwd=out.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_one_load_test_writes_records_in_the_simulators_format(cache_dir, tmp_path):
    out = tmp_path / "run"
    proc = loadtest(
        cache_dir,
        out,
        *SMALL,
        "loadtest.mode=run",
        "loadtest.n_requests=200",
        "loadtest.warmup_requests=20",
        "traffic.peak_qps=100",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads((out / "loadtest.json").read_text())
    assert doc["status"] == "ok"
    assert doc["requests"] == 200
    assert doc["real_ms"]["end_to_end"]["p50"] > 0
    assert set(doc["comparison"]["end_to_end"]) >= {"sim_p99_ms", "real_p99_ms", "err_p99"}
    real = pd.read_parquet(out / "records.parquet")
    sim = pd.read_parquet(out / "sim_records.parquet")
    assert list(real.columns) == list(sim.columns)
    assert (real["arrival_s"].to_numpy() == sim["arrival_s"].to_numpy()).all()  # same arrivals
    assert "load test: ok" in proc.stdout


@pytest.mark.parametrize("generator", ["thread", "process"])
def test_an_impossible_trace_exits_2_and_reports_no_latency(cache_dir, tmp_path, generator):
    # 100k requests in 0.1 s. The in-process generator cannot keep that pace; the generator
    # process (a pipe write per arrival, about 1 us) nearly can, and then the server cannot:
    # either way the run is refused in one line, not measured as latency.
    out = tmp_path / "run"
    proc = loadtest(
        cache_dir,
        out,
        *SMALL[:-1],
        "loadtest.mode=run",
        "loadtest.n_requests=100000",
        "traffic.peak_qps=1000000",
        f"loadtest.generator={generator}",
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    err = proc.stderr.strip().splitlines()
    assert "Traceback" not in proc.stderr
    doc = json.loads((out / "loadtest.json").read_text())
    assert doc["real_ms"] is None  # not reported as latency
    if generator == "thread":
        assert err[-1].startswith("recsys: error: the load generator")
        assert "behind its schedule" in err[-1]
        assert doc["status"] == "generator_behind"
    else:
        assert doc["status"] in ("generator_behind", "unfinished")
        assert err[-1].startswith("recsys: error: ")
        assert "cannot" in err[-1]


def test_a_bad_setting_fails_in_one_line(cache_dir, tmp_path):
    proc = loadtest(cache_dir, tmp_path / "run", *SMALL, "loadtest.mode=bogus", timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        "recsys: error: loadtest.mode must be run or calibrate, got 'bogus'"
    )


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("loadtest.limits.max_lag_ms=0", "loadtest.max_lag_ms must be positive"),
        ("loadtest.calibration.utilizations=[0]", "utilizations must lie in"),
        ("loadtest.calibration.capacity=guess", "capacity must be measured or profile"),
        ("loadtest.switch_interval_ms=-1", "switch_interval_ms must be positive"),
        ("loadtest.calibration.warp_window_ms=-1", "warp_window_ms must be >= 0"),
        ("loadtest.calibration.stall_min_ms=3", "stall_min_ms or warp_window_ms, not both"),
        ("+loadtest.limits.bogus=1", "loadtest.limits"),
    ],
)
def test_bad_settings_are_refused_before_any_work(tmp_path, monkeypatch, override, message):
    monkeypatch.chdir(tmp_path)
    with initialize_config_dir(str(CONF_DIR)):
        cfg = compose("loadtest/config", overrides=[*SMALL, override])
    with pytest.raises(ConfigError, match=message):
        run(cfg)


def test_calibrate_experiment_writes_the_report(cache_dir, tmp_path):
    out = tmp_path / "cal"
    proc = loadtest(
        cache_dir,
        out,
        *SMALL,
        "loadtest.calibration.utilizations=[0.3,0.6]",
        "loadtest.calibration.n_requests=200",
        "loadtest.calibration.warmup_requests=20",
        "loadtest.calibration.probe_requests=100",
        "loadtest.calibration.capacity_requests=200",
        # Two quick pairings (the experiment's own train a large MLP).
        "loadtest.calibration.pairings=["
        "{name: hnsw+lightgbm, overrides: ['ranking=lightgbm_small']},"
        "{name: ivf+mlp, overrides: ['retrieval=ivf', 'retrieval.nlist=16', 'ranking=mlp',"
        " 'ranking.epochs=2']}]",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads((out / "calibration.json").read_text())
    assert {r["pairing"] for r in doc["levels"]} == {"hnsw+lightgbm", "ivf+mlp"}
    keys = {"pairing", "utilization", "stage", "sim_p50_ms", "real_p50_ms", "sim_p99_ms"}
    for row in doc["levels"]:
        assert keys | {"real_p99_ms"} <= set(row)
    assert {r["stage"] for r in doc["levels"]} == {"retrieval", "ranking", "end_to_end"}
    assert len(doc["levels"]) == 2 * 2 * 3
    assert (out / "cdf_hnsw+lightgbm.png").exists()
    assert (out / "cdf_ivf+mlp.png").exists()
    text = (out / "calibration.md").read_text()
    assert "## hnsw+lightgbm" in text and "## ivf+mlp" in text
    assert "calibration (end to end" in proc.stdout
    # The saved records are enough to analyse the run again without serving anything: with
    # the same settings it reproduces every level; with other model settings (no clock warp)
    # the same measured requests are held against another model.
    same = tmp_path / "same"
    proc = loadtest(
        cache_dir, same, "experiment=calibrate", f"loadtest.calibration.reanalyse={out}"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    again = json.loads((same / "calibration.json").read_text())
    assert again["levels"] == doc["levels"]
    assert again["run"]["reanalysed_from"] == str(out)
    assert again["pairings"][1]["serving"]["ranking"]["max_batch"] >= 1
    other = tmp_path / "nowarp"
    proc = loadtest(
        cache_dir,
        other,
        "experiment=calibrate",
        f"loadtest.calibration.reanalyse={same}",
        "loadtest.calibration.warp_window_ms=0",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    nowarp = json.loads((other / "calibration.json").read_text())
    assert [r["real_p99_ms"] for r in nowarp["levels"]] == [r["real_p99_ms"] for r in doc["levels"]]
    assert all("warp" not in r["calibrated_inputs"] for r in nowarp["levels"])
    assert nowarp["settings"]["warp_window_ms"] == 0
    # A run from before pairings recorded their serving settings: they are read back from
    # its config (the sim settings with each pairing's own sim.* overrides).
    for pairing in doc["pairings"]:
        del pairing["serving"]
    (out / "calibration.json").write_text(json.dumps(doc))
    older = tmp_path / "older"
    proc = loadtest(
        cache_dir, older, "experiment=calibrate", f"loadtest.calibration.reanalyse={out}"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((older / "calibration.json").read_text())["levels"] == doc["levels"]


def test_a_reanalysis_of_a_directory_without_a_calibration_fails_in_one_line(tmp_path):
    proc = loadtest(
        tmp_path,
        tmp_path / "run",
        "experiment=calibrate",
        f"loadtest.calibration.reanalyse={tmp_path}",
        timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        f"recsys: error: loadtest.calibration.reanalyse: no calibration.json in {tmp_path}"
    )
