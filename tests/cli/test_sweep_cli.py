"""``recsys-sim`` bad input for sweeps, catalogues and hosted APIs: one line, exit 2, fast;
and a sweep with one bad job keeps the good ones."""

from __future__ import annotations

import pytest

from recsys.cli import report as report_cli
from tests.sweep.conftest import FAST, run_sim

HW = "+catalogue.x.hardware"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["objective.metric=latency_ms.p98"], "unknown metric 'latency_ms.p98'"),
        (["objective=composite", "objective.cost_ref=0"], "cost_ref must be positive"),
        (
            [f"{HW}._target_=recsys.sim.hardware.Hardware", f"{HW}.name=foo", f"{HW}.vcpu=2"],
            "catalogue.x: price missing for hardware 'foo'",
        ),
        (["+catalogue.x.hardwre=1"], "unknown key(s) ['hardwre']"),
        (["hardware.price_per_hour_usd=null"], "hardware: price missing for hardware 'cpu-2'"),
        (["~hardware.price_per_hour_usd"], "hardware: price missing for hardware 'cpu-2'"),
        (["+hosted_api.rerank.name=x"], "hosted_api names unknown stage(s) ['rerank']"),
        (["+hosted_api.ranking.name=x"], "price missing"),
    ],
)
def test_bad_sweep_inputs_fail_fast_with_one_line(sim_cli, tmp_path, args, message):
    proc = sim_cli("experiment=smoke", *args, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("recsys: error:")]
    assert len(errors) == 1
    assert message in errors[0]
    assert "Traceback" not in proc.stderr
    assert "fitting" not in proc.stderr  # failed before any training
    assert not (tmp_path / "out" / "result.json").exists()


@pytest.mark.slow
def test_a_bad_job_fails_alone_and_is_listed(tmp_path, capsys):
    sweep = tmp_path / "multirun"
    proc = run_sim(["-m", *FAST, "k=50,0", f"hydra.sweep.dir={sweep}"], tmp_path, tmp_path / "c")
    assert proc.returncode != 0  # the sweep says one job failed...
    assert "recsys: error: k must be positive" in proc.stderr
    assert (sweep / "0" / "result.json").is_file()  # ...after the good job finished
    assert not (sweep / "1" / "result.json").exists()
    assert report_cli.main([str(sweep), "--out", str(tmp_path / "report")]) == 0
    assert "1 run(s) compared, 1 failed or incomplete" in capsys.readouterr().out
