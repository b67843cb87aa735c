"""A real 2x2 grid multirun with the joblib launcher, then ``recsys-report`` over it."""

from __future__ import annotations

import pandas as pd
import pytest

from recsys.cli import report as report_cli
from recsys.result import read_result
from tests.sweep.conftest import FAST, run_sim


@pytest.mark.slow
def test_joblib_grid_writes_a_result_per_job_and_reports(tmp_path, shared_cache, capsys):
    sweep = tmp_path / "multirun"
    proc = run_sim(
        [
            "-m",
            *FAST,
            "retrieval=hnsw,sq8",
            "ranking=lightgbm_small,popularity",
            "hydra/launcher=joblib2",
            f"hydra.sweep.dir={sweep}",
            "+hydra.callbacks.report._target_=recsys.sweep.ReportCallback",
        ],
        tmp_path,
        shared_cache,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = {int(p.parent.name): read_result(p) for p in sweep.glob("*/result.json")}
    assert sorted(results) == [0, 1, 2, 3]
    pairs = {
        (r["config"]["retrieval"]["_target_"].rsplit(".", 1)[-1], r["pipeline"][1]["kind"])
        for r in results.values()
    }
    assert pairs == {
        ("hnsw", "lightgbm"),
        ("hnsw", "popularity"),
        ("sq8", "lightgbm"),
        ("sq8", "popularity"),
    }
    # Two jobs ran at a time, in separate processes (joblib).
    assert "Joblib.Parallel" in proc.stdout + proc.stderr
    assert "Joblib.Parallel(n_jobs=2," in proc.stdout + proc.stderr
    # The callback wrote the comparison report at the end of the multirun.
    assert (sweep / "report" / "report.html").is_file()
    table = pd.read_csv(sweep / "report" / "results.csv")
    assert len(table) == 4

    # Damage two runs: one corrupt result.json, one missing. The report lists both as failed
    # and keeps only the two good runs in its table (never a row of wrong numbers).
    (sweep / "1" / "result.json").write_text("{ not json")
    (sweep / "2" / "result.json").unlink()
    out = tmp_path / "report"
    code = report_cli.main([str(sweep), "--out", str(out)])
    assert code == 0
    assert "2 run(s) compared, 2 failed or incomplete" in capsys.readouterr().out
    table = pd.read_csv(out / "results.csv")
    assert sorted(table["run"].astype(str)) == ["0", "3"]
    markdown = (out / "report.md").read_text()
    assert "result.json unusable" in markdown and "no result.json" in markdown
