"""``recsys-sim experiment=validate_mmc|validate_md1``: theory beside simulation in result.json."""

import pytest

from recsys.result import read_result


@pytest.mark.parametrize("experiment", ["validate_mmc", "validate_md1"])
def test_validation_experiment_writes_analytic_beside_simulated(sim_cli, tmp_path, experiment):
    # 100k requests keep it quick; the CI still comes from 20 batch means of this run.
    proc = sim_cli(f"experiment={experiment}", "validation.n_requests=100000")
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = read_result(tmp_path / "out" / "result.json")
    validation = result["validation"]
    assert validation["kind"] == experiment.removeprefix("validate_")
    for metric in ("p_wait", "mean_wait_ms", "wait_p99_ms"):
        m = validation["metrics"][metric]
        assert m["ci_low"] <= m["simulated"] <= m["ci_high"]
        # 95% intervals: any single one may miss; a miss by more than its width is a bug.
        width = m["ci_high"] - m["ci_low"]
        assert m["ci_low"] - width <= m["analytic"] <= m["ci_high"] + width
    assert result["latency_ms"]["p99"] > 0
    assert result["stages"][0]["replicas"] == validation["params"]["servers"]


def test_unstable_validation_queue_is_refused(sim_cli, tmp_path):
    proc = sim_cli("experiment=validate_md1", "validation.arrival_rate_qps=150")
    assert proc.returncode == 2
    assert "utilisation" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out" / "result.json").exists()
