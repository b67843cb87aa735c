"""Trace replay and recording: exact round trips, time handling, clear errors."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recsys.errors import ConfigError, DataError
from recsys.sim.engine import StageSpec, simulate
from recsys.sim.replay import Replay, record_arrivals
from recsys.sim.service import Exponential
from recsys.sim.workload import Poisson

AZURE = Path("/work/shared/data/traces/azure_llm_2023/AzureLLMInferenceTrace_conv.csv")


def _rng(seed=0):
    return np.random.default_rng(seed)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_recorded_run_replays_to_identical_arrivals(tmp_path, suffix):
    arrivals = Poisson(50.0).arrivals(_rng(), n_requests=2000)
    users = np.arange(2000) % 37
    path = record_arrivals(tmp_path / f"run{suffix}", arrivals, users)
    replay = Replay(path, user_column="user_id")
    assert np.array_equal(replay.arrivals(_rng(9)), arrivals)
    assert np.array_equal(replay.load()["user_id"].to_numpy(), users)


def test_a_simulated_run_records_and_replays(tmp_path):
    arrivals = Poisson(50.0).arrivals(_rng(), n_requests=500)
    stages = [StageSpec("s", Exponential(5.0))]
    first = simulate(arrivals, stages, seed=1)
    record_arrivals(tmp_path / "run.csv", first.records["arrival_s"].to_numpy())
    again = simulate(Replay(tmp_path / "run.csv").arrivals(_rng()), stages, seed=1)
    pd.testing.assert_frame_equal(first.records, again.records)


def _write(tmp_path, values, name="t.csv", column="ts"):
    path = tmp_path / name
    pd.DataFrame({column: values}).to_csv(path, index=False)
    return path


def test_speedup_two_halves_the_span(tmp_path):
    path = _write(tmp_path, [0.0, 1.0, 2.5, 4.0])
    normal = Replay(path, time_column="ts").arrivals(_rng())
    fast = Replay(path, time_column="ts", speedup=2.0).arrivals(_rng())
    assert fast[-1] - fast[0] == pytest.approx((normal[-1] - normal[0]) / 2)
    assert np.allclose(fast, normal / 2)


def test_unix_milliseconds_and_seconds_are_detected(tmp_path):
    ms = _write(tmp_path, [1_700_000_000_000, 1_700_000_000_250, 1_700_000_001_000], "ms.csv")
    assert np.allclose(Replay(ms, time_column="ts").arrivals(_rng()), [0.0, 0.25, 1.0])
    s = _write(tmp_path, [1_700_000_000.0, 1_700_000_000.5], "s.csv")
    assert np.allclose(Replay(s, time_column="ts").arrivals(_rng()), [0.0, 0.5])
    stated = _write(tmp_path, [0, 250, 1000], "rel_ms.csv")
    assert np.allclose(
        Replay(stated, time_column="ts", time_unit="ms").arrivals(_rng()), [0.0, 0.25, 1.0]
    )


def test_iso_datetimes(tmp_path):
    path = _write(
        tmp_path,
        ["2023-11-16 18:15:46.6805900", "2023-11-16 18:15:50.9951690", "2023-11-16T18:16:00Z"],
    )
    times = Replay(path, time_column="ts").arrivals(_rng())
    assert times == pytest.approx([0.0, 4.314579, 13.31941])
    window = Replay(path, time_column="ts", start="2023-11-16 18:15:50").arrivals(_rng())
    assert window == pytest.approx([0.995169, 10.0])


@pytest.mark.skipif(not AZURE.exists(), reason="shared Azure trace not present")
def test_real_azure_trace():
    replay = Replay(AZURE, time_column="TIMESTAMP", columns={"tokens": "ContextTokens"})
    times = replay.arrivals(_rng())
    assert times[0] == 0.0
    assert np.all(np.diff(times) >= 0)
    assert times.size == len(replay.load())
    assert "tokens" in replay.load()
    hour = replay.arrivals(_rng(), duration_s=600.0)
    assert hour[-1] < 600.0


def test_window_loop_and_counts(tmp_path):
    path = _write(tmp_path, [0.0, 1.0, 2.0, 3.0])
    assert np.array_equal(
        Replay(path, time_column="ts", start=1.0, end=3.0).arrivals(_rng()), [0.0, 1.0]
    )
    looped = Replay(path, time_column="ts", loop=True).arrivals(_rng(), duration_s=10.0)
    assert np.array_equal(looped, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9])  # period = span + mean gap
    assert Replay(path, time_column="ts", loop=True).arrivals(_rng(), n_requests=9).size == 9
    with pytest.raises(ConfigError, match="loop"):
        Replay(path, time_column="ts").arrivals(_rng(), n_requests=9)


def test_rate_multiplier_thins_and_superposes(tmp_path):
    n = 20_000
    path = record_arrivals(tmp_path / "t.parquet", np.arange(n, dtype=float) * 0.01)
    half = Replay(path, rate_multiplier=0.5).arrivals(_rng())
    # Each arrival kept with probability 1/2: Binomial(n, 1/2) within 5 sd.
    assert abs(half.size - n / 2) < 5 * np.sqrt(n / 4)
    double = Replay(path, rate_multiplier=2.0).arrivals(_rng())
    assert double.size == 2 * n
    assert np.all(np.diff(double) >= 0)
    assert double[0] >= 0
    more = Replay(path, rate_multiplier=2.5).arrivals(_rng())
    assert abs(more.size - 2.5 * n) < 5 * np.sqrt(n / 4)


def test_sort_option(tmp_path):
    path = _write(tmp_path, [2.0, 0.0, 1.0])
    assert np.array_equal(
        Replay(path, time_column="ts", sort=True).arrivals(_rng()), [0.0, 1.0, 2.0]
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("ts\n0.0\n2.0\n1.0\n", "not sorted"),
        ("ts\n0.0\n\n1.0\nnan\n", "missing/NaN"),
        ("ts\n0.0\n-1.0\n", "negative"),
        ("ts\n2023-01-01 00:00:00\nyesterday\n", "unparsable"),
        ("other\n1.0\n", "lacks column"),
        ("", "empty"),
        ("ts\n", "no rows"),
    ],
)
def test_malformed_traces_are_data_errors(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(DataError, match=message):
        Replay(path, time_column="ts").arrivals(_rng())


def test_missing_file_and_bad_options(tmp_path):
    with pytest.raises(DataError, match="not found"):
        Replay(tmp_path / "nope.csv").arrivals(_rng())
    with pytest.raises(ConfigError):
        Replay(tmp_path / "x.csv", speedup=0.0)
    with pytest.raises(ConfigError):
        Replay(tmp_path / "x.csv", time_unit="minutes")
    with pytest.raises(DataError):
        record_arrivals(tmp_path / "r.csv", [2.0, 1.0])
    with pytest.raises(ConfigError):
        record_arrivals(tmp_path / "r.json", [1.0])
