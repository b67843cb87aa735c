"""Calibration on stages with known service times: the report's schema, and its pieces."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest

from recsys.errors import ConfigError, DataError
from recsys.loadtest.calibrate import (
    CalibrationOptions,
    Pairing,
    arrivals_at,
    calibrate_pairing,
    measure_capacity_qps,
    probe_chunks,
    profile_capacity_qps,
    reanalyse_level,
    reanalyse_pairing,
    sustained_rate,
)
from recsys.loadtest.compare import fill_batch_sizes, relative_error, service_table
from recsys.loadtest.model import profiled_models
from recsys.loadtest.report import (
    REQUIRED_LEVEL_KEYS,
    calibration_doc,
    check_calibration,
    plot_cdfs,
    render_markdown,
    targets_met,
    to_json,
)
from recsys.loadtest.run import LoadTestLimits
from recsys.loadtest.server import LiveStage
from recsys.sim.workload import Poisson
from tests.loadtest.conftest import sleeper

TARGETS = {"p50": 0.05, "p99": 0.10, "max_utilization": 0.7}


def _profile(ms: dict[str, float]) -> pd.DataFrame:
    rows = [
        (stage, "sleep", b, 10, t * (1 + 0.2 * (b - 1)))
        for stage, t in ms.items()
        for b in (1, 2)
        for _ in range(20)
    ]
    return pd.DataFrame(rows, columns=["stage", "kind", "batch_size", "n_candidates", "service_ms"])


OPTIONS = CalibrationOptions(
    utilizations=(0.3, 0.6),
    n_requests=250,
    warmup_requests=25,
    probe_requests=120,
    capacity="profile",
    min_batch_samples=10,
)


def _sleeping_pairing() -> Pairing:
    # Stages of 5 and 10 ms: long against the 0.1-2 ms wake-up jitter of a busy 2-core
    # machine, so the checks below test the server and simulator, not the OS scheduler.
    stages = [LiveStage("retrieval", sleeper(5.0)), LiveStage("ranking", sleeper(10.0))]
    return Pairing(
        "sleep+sleep",
        stages,
        _profile({"retrieval": 5.0, "ranking": 10.0}),
        np.arange(10),
        Poisson(100.0),
    )


@pytest.fixture(scope="module")
def calibrated():
    return calibrate_pairing(_sleeping_pairing(), OPTIONS, LoadTestLimits(max_lag_ms=1000.0))


def _reanalysed(calibrated, options: CalibrationOptions):
    saved = [
        (lv.utilization, calibrated.records[lv.utilization], lv.status) for lv in calibrated.levels
    ]
    return reanalyse_pairing(
        _sleeping_pairing(), options, calibrated.capacity_qps, calibrated.capacity, saved
    )


def test_a_reanalysis_with_the_same_settings_reproduces_the_report(calibrated):
    # The saved detailed records hold everything the analysis needs: fitting the calibrated
    # model on the probe's requests again and simulating with the level's seed gives the
    # same numbers, without serving anything.
    again = _reanalysed(calibrated, OPTIONS)
    assert again.serving == calibrated.serving
    assert again.serving["ranking"]["max_batch"] == 1
    for before, after in zip(calibrated.rows(), again.rows(), strict=True):
        assert json.loads(to_json(after)) == json.loads(to_json(before))


def test_a_reanalysis_applies_its_own_model_settings(calibrated):
    # Without the clock warp the same measured requests (same real percentiles) are held
    # against another model.
    again = _reanalysed(calibrated, dataclasses.replace(OPTIONS, warp_window_ms=0.0))
    for before, after in zip(calibrated.rows(), again.rows(), strict=True):
        assert after["real_p99_ms"] == before["real_p99_ms"]
        if before["stage"] == "end_to_end":
            assert "warp" in before["calibrated_inputs"]
            assert "warp" not in after["calibrated_inputs"]


def test_a_reanalysis_needs_an_interleaved_probe(calibrated):
    frame = calibrated.records[0.3].assign(probe=False)
    with pytest.raises(DataError, match="no probe requests"):
        reanalyse_level(_sleeping_pairing(), 0.3, 100.0, OPTIONS, frame, status="ok", seed=1)
    with pytest.raises(DataError, match="lack the columns"):
        reanalyse_level(
            _sleeping_pairing(),
            0.3,
            100.0,
            OPTIONS,
            frame.drop(columns="probe"),
            status="ok",
            seed=1,
        )


def test_calibration_json_has_the_documented_levels(calibrated, tmp_path):
    doc = calibration_doc([calibrated], run={"seed": 0}, machine={}, settings={}, targets=TARGETS)
    check_calibration(doc)
    rows = doc["levels"]
    assert len(rows) == 2 * 3  # two levels x (two stages + end_to_end)
    assert {r["stage"] for r in rows} == {"retrieval", "ranking", "end_to_end"}
    assert {r["utilization"] for r in rows} == {0.3, 0.6}
    for row in rows:
        assert set(REQUIRED_LEVEL_KEYS) <= set(row)
        assert row["pairing"] == "sleep+sleep"
        assert row["model"] == "calibrated"
        assert set(row["profiled"]) >= {"sim_p50_ms", "real_p99_ms", "err_p99"}
        assert row["real_p50_ms"] <= row["real_p99_ms"]
        # The interleaved probe is a second measurement of the level: its error is reported.
        assert set(row["repeat"]) >= {"probe_p50_ms", "real_p50_ms", "err_p50", "err_p99"}
    parsed = json.loads(to_json(doc))
    assert parsed["levels"][0]["pairing"] == "sleep+sleep"
    assert doc["pairings"][0]["capacity_qps"] == pytest.approx(1000 / 10.0)
    assert "sleep+sleep" in doc["targets"]["verdict"]
    e2e = next(r for r in rows if r["stage"] == "end_to_end")
    assert set(e2e["tail"]) == {"real", "profiled", "calibrated"}
    assert e2e["tail"]["real"]["episodes"] >= 1
    text = render_markdown(doc, {"sleep+sleep": "cdf.png"})
    assert "| 30% | end_to_end |" in text
    assert "the measured p99 tail is" in text
    assert "![CDF overlays of sleep+sleep](cdf.png)" in text
    png = plot_cdfs(calibrated, tmp_path / "cdf.png")
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_known_service_times_are_simulated_closely(calibrated):
    # Sleeping stages do what the profile says (plus wake-up jitter), so the simulated
    # median is near the measured one; a server that batched or timed differently is not.
    e2e = [r for r in calibrated.rows() if r["stage"] == "end_to_end" and r["utilization"] == 0.3]
    assert abs(e2e[0]["err_p50"]) < 0.25, e2e[0]


def test_check_calibration_refuses_missing_keys():
    with pytest.raises(ValueError, match="levels"):
        check_calibration({"levels": []})
    with pytest.raises(ValueError, match="real_p99_ms"):
        check_calibration({"levels": [dict.fromkeys(REQUIRED_LEVEL_KEYS[:-1], 1)]})


def test_arrivals_are_rescaled_to_the_level_rate():
    times = arrivals_at(Poisson(10.0), 250.0, 1001, np.random.default_rng(0))
    assert times[0] == 0.0
    assert 1000 / times[-1] == pytest.approx(250.0)
    with pytest.raises(ConfigError):
        CalibrationOptions(utilizations=(0.0,))


def test_an_interleaved_probe_takes_every_other_chunk_after_the_warm_up():
    arrivals = np.array([0.0, 0.4, 1.0, 1.4, 2.1, 2.9, 3.0, 3.5, 4.2])
    probe = probe_chunks(arrivals, warmup_s=1.0, chunk_s=1.0)
    # warm-up [0, 1): neither; [1, 2): measured; [2, 3): probe; [3, 4): measured; [4, 5): probe
    assert probe.tolist() == [False, False, False, False, True, True, False, False, True]
    with pytest.raises(ConfigError, match="interleave_s"):
        CalibrationOptions(interleave_s=-1.0)


def test_capacity_from_the_profile_is_the_slowest_stage_in_full_batches():
    stages = [LiveStage("a", sleeper(1)), LiveStage("b", sleeper(1), max_batch=2, replicas=3)]
    models = profiled_models(_profile({"a": 2.0, "b": 5.0}), ["a", "b"])
    caps = profile_capacity_qps(stages, models)
    assert caps["a"] == pytest.approx(500.0)
    assert caps["b"] == pytest.approx(3 * 2 / 0.006)


def test_sustained_capacity_counts_only_while_requests_still_arrive():
    # 1000 requests over 1 s; the server does 500/s while they arrive (its other threads
    # at work), then drains the backlog of 500 at 2000/s once they stop (the bottleneck
    # alone). It sustains 500/s; over all completions it would seem to do 800/s.
    arrival = np.arange(1000) / 1000.0
    done = np.concatenate([np.arange(1, 501) / 500.0, 1.0 + np.arange(1, 501) / 2000.0])
    records = pd.DataFrame({"arrival_s": arrival, "done_s": done})
    assert sustained_rate(records) == pytest.approx(500.0, rel=0.01)
    # A server held up while the whole stream arrived served nothing then: rate 0 (the
    # bisection's "did not keep up"), not an error.
    assert sustained_rate(records.assign(done_s=done + 10.0)) == 0.0
    with pytest.raises(ConfigError, match="too short"):
        sustained_rate(records.iloc[:1])


def test_measured_capacity_of_a_live_server_is_its_bottlenecks_rate():
    # Sleeping stages of 2 and 5 ms: the second sustains 1000 / 5 = 200 requests/s (a little
    # less: time.sleep overshoots by up to a few tenths of a ms on a busy machine).
    stages = [LiveStage("a", sleeper(2.0)), LiveStage("b", sleeper(5.0))]
    rates = measure_capacity_qps(
        stages, np.arange(10), 100, np.random.default_rng(0), LoadTestLimits()
    )
    assert 150.0 < rates["qps"] <= 212.0
    assert rates["burst_qps"] > 150.0
    # Each round is a trial rate and what the server served while arrivals came.
    assert len(rates["rounds"]) == 4
    assert all(r["served_qps"] <= 1.05 * r["rate_qps"] for r in rates["rounds"])


def test_service_table_adds_dispatch_and_keeps_one_row_per_batch():
    records = pd.DataFrame(
        {
            "arrival_s": [0.0, 0.0, 1.0],
            "a_start_s": [0.1, 0.1, 1.2],
            "a_batch_size": [2, 2, 1],
            "a_service_ms": [3.0, 3.0, 1.0],
        }
    )
    table = service_table(records, ["a"], warmup_s=0.0, dispatch_ms={"a": np.array([1, 1, 0.5])})
    assert table["batch_size"].tolist() == [2, 1]
    assert table["service_ms"].tolist() == [4.0, 1.5]
    filled = fill_batch_sizes(table, _profile({"a": 9.0}), min_samples=1)
    # Batch sizes 1 and 2 were measured: nothing comes from the profile.
    assert (filled["source"] == "load test").all()
    assert set(filled["n_candidates"]) == {10}


def test_errors_and_targets():
    assert relative_error(11.0, 10.0) == pytest.approx(0.1)
    assert math.isnan(relative_error(1.0, 0.0))
    row = {"pairing": "p", "stage": "end_to_end", "status": "ok", "err_p50": 0.01, "err_p99": 0.05}
    rows = [{**row, "utilization": 0.3}, {**row, "utilization": 0.85, "err_p99": 0.5}]
    assert targets_met(rows)["p"] == {"met": True, "failed_levels": [], "noise_limited_levels": []}
    rows.append({**row, "utilization": 0.5, "status": "generator_behind"})
    assert targets_met(rows)["p"] == {
        "met": False,
        "failed_levels": [0.5],
        "noise_limited_levels": [],
    }


def test_a_failed_level_is_noise_limited_when_the_runs_two_halves_disagree_beyond_the_target():
    row = {"pairing": "p", "stage": "end_to_end", "status": "ok", "err_p50": 0.01}
    halves_agree = {"err_p50": 0.02, "err_p99": 0.04}
    halves_apart = {"err_p50": 0.02, "err_p99": -0.25}
    rows = [
        {**row, "utilization": 0.3, "err_p99": 0.2, "repeat": halves_agree},  # the model's miss
        {**row, "utilization": 0.5, "err_p99": 0.2, "repeat": halves_apart},  # noise floor
        {**row, "utilization": 0.7, "err_p99": 0.05, "repeat": halves_apart},  # passed anyway
    ]
    verdict = targets_met(rows)["p"]
    assert verdict["failed_levels"] == [0.3, 0.5]
    assert verdict["noise_limited_levels"] == [0.5]


def test_fill_batch_sizes_falls_back_to_the_profile_when_no_batch_size_has_enough_samples():
    profiled = _profile({"retrieval": 1.0})
    measured = profiled.head(3).copy()  # 3 samples of batch 1: fewer than min_samples
    table = fill_batch_sizes(measured, profiled, min_samples=20)
    assert (table["source"] == "profile").all()
    assert len(table) == len(profiled)


def test_each_level_reports_how_busy_its_stages_really_were(calibrated):
    # Sleeping stages of 5 and 10 ms at 30% and 60% of the ranking stage's 100 QPS: the
    # ranking worker holds batches about 30% and 60% of the time, retrieval half that.
    for row in calibrated.rows():
        if row["stage"] == "end_to_end":
            continue
        busy = row["diagnostics"]["real_busy_fraction"]
        expected = row["utilization"] * (1.0 if row["stage"] == "ranking" else 0.5)
        # Poisson counts of ~150-300 arrivals (sd ~6-8%) plus the sleeps' overshoot.
        assert busy == pytest.approx(expected, rel=0.3), row
