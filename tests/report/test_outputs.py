"""The written report: CSV rows, self-contained HTML with escaped text, valid PNG figures."""

import base64
import re

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from recsys.gate import Policy
from recsys.report.aggregate import collect_runs
from recsys.report.compare import compare, render_markdown, write_report
from recsys.report.html import render_html
from recsys.report.plots import latency_samples, plot_timeseries
from tests.report.factory import make_sweep, result_doc, write_run

PNG = b"\x89PNG\r\n\x1a\n"
POLICY = Policy.from_dict(
    {
        "name": "test",
        "constraints": [
            {"metric": "latency_ms.p99", "op": "<=", "value": 100},
            {
                "metric": "quality.ndcg@10",
                "op": ">=",
                "relative_to": "baseline",
                "tolerance_pct": 1,
            },
        ],
        "budget": {"monthly_usd": 5000},
        "baseline": {"pipeline_contains": "neural_full"},
    }
)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    sweep = make_sweep(root)
    out = root / "report"
    comparison = compare([sweep], POLICY)
    return sweep, out, write_report(comparison, out)


def test_every_output_is_written(report):
    _, out, files = report
    figures = ["pareto_quality_cost", "p99_cost", "latency_cdf", "stage_breakdown", "timeseries"]
    assert sorted(files) == sorted(
        ["results.csv", "report.md", "report.html", *(f"{f}.png" for f in figures)]
    )
    assert sorted(p.name for p in out.iterdir()) == sorted(files)  # no temporary files left
    for name in figures:
        path = out / f"{name}.png"
        assert path.read_bytes()[:8] == PNG
        with Image.open(path) as image:
            image.verify()


def test_results_csv_has_one_row_per_usable_run(report):
    _, out, _ = report
    frame = pd.read_csv(out / "results.csv")
    assert list(frame["run"].astype(str)) == ["0", "1", "2", "3"]
    assert list(frame["gate_passed"]) == [False, True, False, False]
    assert list(frame["pareto"]) == [True, False, False, True]
    assert list(frame["notes"].fillna("")) == ["baseline, Pareto", "recommended", "", "Pareto"]
    assert frame.loc[1, "monthly_usd"] == 2190.0
    assert (
        frame.loc[3, "gate_failures"] == "latency_ms.p99 150 ms is not <= 100 ms, misses by 50 ms"
    )


def test_html_is_self_contained_and_complete(report):
    _, out, _ = report
    page = (out / "report.html").read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "<script" not in page
    assert "<link" not in page
    sources = re.findall(r"src='([^']*)'", page)
    assert len(sources) == 5
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == PNG
    for text in (
        "Recommended: faiss[HNSW32 ef_search=64] + lightgbm",
        "cost_reduction_pct 70.0%",
        "ndcg_change_pct -0.63%",
        "result.json unusable: not valid JSON",  # corrupt run 4
        "no result.json: the run did not finish",  # unfinished run 5
        "2026-11-30",  # price date
        "example cloud list price",  # price source
        "cost.maintenance_monthly_usd",
        "latency_ms.p99 150 ms is not &lt;= 100 ms",  # gate reasons, escaped
    ):
        assert text in page, text


def test_markdown_report(report):
    _, out, _ = report
    text = (out / "report.md").read_text()
    assert "## Recommendation: faiss[HNSW32 ef_search=64] + lightgbm (`1`)" in text
    assert "![Quality vs cost](pareto_quality_cost.png)" in text
    assert (
        "| 4 | result.json unusable: not valid JSON (Expecting ':' delimiter at line 1) |" in text
    )


def test_text_from_the_data_is_escaped(tmp_path):
    evil = "<script>alert(1)</script>"
    write_run(tmp_path / "a", result_doc(rankers=(evil,)))
    write_run(tmp_path / "b&c", result_doc(rankers=("lightgbm",), replicas=(2, 2)))
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / ".hydra").mkdir()
    comparison = compare([tmp_path], Policy.from_dict({"budget": {"monthly_usd": 9e9}}))
    assert comparison.recommendation.chosen.label == f"faiss[HNSW32 ef_search=64] + {evil}"
    page = render_html(comparison, [])
    assert evil not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "b&amp;c" in page
    assert "b&c" not in page
    assert "<script" not in page
    assert evil in render_markdown(comparison, [])  # markdown is plain text


def test_latency_samples_keep_measured_completed_requests(report):
    sweep, _, _ = report
    run = collect_runs([sweep]).get("1")
    frame = pd.read_parquet(sweep / "1" / "records.parquet")
    keep = (frame["outcome"] == "ok") & (frame["arrival_s"] >= 10.0)
    np.testing.assert_array_equal(latency_samples(run), frame.loc[keep, "e2e_ms"].to_numpy())
    assert latency_samples(collect_runs([sweep]).get("2")) is None  # no records: percentiles


def test_timeseries_plot_uses_whatever_columns_exist(tmp_path):
    run_dir = write_run(tmp_path / "r", result_doc())
    pd.DataFrame({"minute": [0, 1, 2], "qps": [1.0, 2.0, 3.0], "queue_len": [0, 1, 0]}).to_csv(
        run_dir / "timeseries.csv", index=False
    )
    fig = plot_timeseries(collect_runs([tmp_path]).runs)
    assert [ax.get_ylabel() for ax in fig.axes] == ["requests per second", "queue length"]
    (run_dir / "timeseries.csv").write_text("")
    assert plot_timeseries(collect_runs([tmp_path]).runs) is None
