"""``recsys-report``: files written, exit codes, and one-line errors instead of tracebacks."""

import subprocess
import sys

import pytest

from recsys.cli.report import main, parse_selector
from tests.report.factory import make_sweep, result_doc, write_run


def test_report_of_a_sweep(tmp_path, capsys):
    sweep = make_sweep(tmp_path)
    out = tmp_path / "out"
    code = main([str(sweep), "--out", str(out), "--baseline", "pipeline_contains=neural_full"])
    stdout = capsys.readouterr().out
    assert code == 0
    assert stdout.splitlines()[:2] == [
        "4 run(s) compared, 2 failed or incomplete",
        "recommended: faiss[HNSW32 ef_search=64] + lightgbm (1)",
    ]
    assert {"results.csv", "report.md", "report.html", "pareto_quality_cost.png"} <= {
        p.name for p in out.iterdir()
    }


def _error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("recsys-report: error: ")
    return err


def test_nonexistent_directory(tmp_path, capsys):
    assert main([str(tmp_path / "nope"), "--out", str(tmp_path / "out")]) == 2
    assert "nope: no such directory" in _error(capsys)


def test_no_result_json_at_all(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty"), "--out", str(tmp_path / "out")]) == 2
    assert "no result.json found below" in _error(capsys)
    assert not (tmp_path / "out").exists()


def test_policy_with_an_unknown_metric(tmp_path, capsys):
    write_run(tmp_path / "run", result_doc())
    policy = tmp_path / "policy.yaml"
    policy.write_text("constraints:\n  - {metric: latency_ms.p98, op: '<=', value: 100}\n")
    assert main([str(tmp_path / "run"), "--policy", str(policy), "--out", str(tmp_path / "o")]) == 2
    err = _error(capsys)
    assert "unknown metric 'latency_ms.p98'; valid metrics: latency_ms.p50, " in err


def test_baseline_that_matches_no_run(tmp_path, capsys):
    write_run(tmp_path / "run", result_doc())
    code = main(
        [
            str(tmp_path / "run"),
            "--baseline",
            "pipeline_contains=neural_full",
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert code == 2
    assert "baseline {'pipeline_contains': 'neural_full'} matches no usable run" in _error(capsys)


def test_only_unusable_runs_still_writes_the_list_and_exits_1(tmp_path, capsys):
    write_run(tmp_path / "runs" / "0", None)
    write_run(tmp_path / "runs" / "1", None).joinpath("result.json").write_text("{")
    assert main([str(tmp_path / "runs"), "--out", str(tmp_path / "out")]) == 1
    assert "none of the 2 run(s) found is usable" in _error(capsys)
    text = (tmp_path / "out" / "report.md").read_text()
    assert "| 0 | no result.json: the run did not finish" in text
    assert "| 1 | result.json unusable: not valid JSON" in text


def test_parse_selector():
    assert parse_selector("3") == "3"
    assert parse_selector("pipeline_contains=neural_full") == {"pipeline_contains": "neural_full"}
    assert parse_selector("pipeline_contains=lightgbm,run=3") == {
        "pipeline_contains": "lightgbm",
        "run": "3",
    }
    assert parse_selector("faiss[IVF256,Flat nprobe=8] + lightgbm") == (
        "faiss[IVF256,Flat nprobe=8] + lightgbm"
    )


@pytest.mark.parametrize("args", [["--help"], []])
def test_module_entry_point(tmp_path, args):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "recsys.cli.report",
            *args,
            *([] if args else [str(tmp_path / "x")]),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if args:
        assert proc.returncode == 0
        assert "--baseline" in proc.stdout
    else:
        assert proc.returncode == 2
        assert proc.stderr.strip() == f"recsys-report: error: {tmp_path / 'x'}: no such directory"
