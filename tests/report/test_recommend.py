"""Pareto frontier (exact) and the recommendation: choice, tie-break, reasons, savings."""

import math

import pytest

from recsys.gate import Policy
from recsys.report.aggregate import collect_runs
from recsys.report.recommend import dominates, pareto_front, recommend, savings
from tests.report.factory import make_sweep, result_doc, write_run

POLICY = Policy.from_dict(
    {
        "name": "test",
        "constraints": [
            {"metric": "latency_ms.p99", "op": "<=", "value": 100},
            {"metric": "quality.ndcg@10", "op": ">=", "value": 0.05},
            {
                "metric": "quality.ndcg@10",
                "op": ">=",
                "relative_to": "baseline",
                "tolerance_pct": 1,
            },
        ],
        "budget": {"monthly_usd": 5000},
    }
)


def test_pareto_front_two_objectives():
    points = [
        {"q": 0.30, "c": 1.0},  # 0: cheapest
        {"q": 0.32, "c": 3.0},  # 1: best quality
        {"q": 0.31, "c": 2.0},  # 2: in between, on the front
        {"q": 0.30, "c": 2.5},  # 3: dominated by 0 and 2
        {"q": 0.31, "c": 2.0},  # 4: equal to 2: equal points do not dominate each other
        {"q": math.nan, "c": 0.1},  # 5: unknown quality: never on the front
    ]
    assert pareto_front(points, maximize=["q"], minimize=["c"]) == [0, 1, 2, 4]
    assert dominates(points[0], points[3], ["q"], ["c"])
    assert not dominates(points[2], points[4], ["q"], ["c"])


def test_pareto_front_three_objectives_and_edge_cases():
    points = [
        {"q": 1, "c": 1, "p99": 10},
        {"q": 1, "c": 1, "p99": 20},  # dominated through p99 alone
        {"q": 2, "c": 2, "p99": 30},
        {"q": 0, "c": 3, "p99": 5},  # worst quality and cost, best latency: on the front
    ]
    assert pareto_front(points, maximize=["q"], minimize=["c", "p99"]) == [0, 2, 3]
    assert pareto_front(points, minimize=["c"]) == [0, 1]
    assert pareto_front([], maximize=["q"]) == []
    with pytest.raises(ValueError, match="at least one objective"):
        pareto_front(points)


@pytest.fixture
def runs(tmp_path):
    return collect_runs([make_sweep(tmp_path)])


def test_without_baseline_the_cheapest_passing_run_wins(runs):
    rec = recommend(runs.runs, POLICY)
    assert rec.chosen.name == "2"
    assert rec.passing == ["1", "2"]
    assert rec.front == ["0", "3"]
    assert rec.reasons[0] == (
        "faiss[HNSW32 ef_search=16] + lightgbm (2) is the cheapest of the 2 run(s) of 4 "
        "that pass every constraint of policy 'test': $0.005556 per 1k requests, "
        "$1,460.00/month (TCO $3,960.00/month), NDCG@10 0.3, p99 40 ms at 100 QPS."
    )
    assert rec.reasons[1:3] == [
        "Meets latency_ms.p99 40 ms <= 100 ms.",
        "Meets quality.ndcg@10 0.3 >= 0.05.",
    ]
    assert rec.notes == [
        "not applied: quality.ndcg@10 >= baseline - 1% (no baseline run marked: set baseline: in "
        "the policy or pass --baseline)"
    ]
    assert rec.savings == {}


def test_with_baseline_relative_quality_rules_out_the_cheapest(runs):
    baseline = runs.find({"pipeline_contains": "neural_full"})
    rec = recommend(runs.runs, POLICY, baseline)
    assert rec.chosen.name == "1"
    assert rec.baseline is baseline
    assert rec.gate["2"].failures == [
        "quality.ndcg@10 0.3 is not >= 0.3168 (baseline 0.32 -1%), misses by 0.0168"
    ]
    # Baseline: 10 replicas at 1 USD/h; chosen: 3.
    assert rec.savings == {
        "cost_reduction_pct": pytest.approx(70.0),
        "ndcg_change_pct": pytest.approx(-0.625),
        "monthly_savings_usd": pytest.approx(5110.0),
    }
    assert rec.reasons[-3:] == [
        "The budget of $5,000.00/month allows at most $0.01903 per 1k requests at this traffic; "
        "this pairing uses 44% of that ceiling.",
        "Not Pareto-optimal of the 4 runs (NDCG@10 vs cost per 1k requests): dominated by "
        "3 (NDCG@10 0.319 at $0.005556/1k), each of which fails the gate.",
        "Against the baseline faiss[Flat] + neural_full (0): cost per 1k requests "
        "$0.02778 -> $0.008333 (cost_reduction_pct 70.0%), NDCG@10 0.32 -> 0.318 "
        "(ndcg_change_pct -0.63%); $5,110.00/month saved.",
    ]
    assert savings(baseline, baseline)["cost_reduction_pct"] == 0.0


def test_pareto_optimal_choice_names_what_it_dominates(tmp_path):
    write_run(tmp_path / "a", result_doc(ndcg=0.30, replicas=(1, 1)))
    write_run(tmp_path / "b", result_doc(ndcg=0.29, replicas=(1, 2)))
    runs = collect_runs([tmp_path])
    rec = recommend(runs.runs, POLICY)
    assert rec.chosen.name == "a"
    assert (
        "On the quality-vs-cost Pareto frontier of the 2 runs (NDCG@10 vs cost per 1k requests): "
        "no run is both cheaper and better; it dominates 1: b." in rec.reasons
    )
    assert (
        "Next cheapest that passes: faiss[HNSW32 ef_search=64] + lightgbm (b) at $0.008333 per "
        "1k requests (NDCG@10 0.29)." in rec.reasons
    )


def test_equal_cost_is_broken_by_higher_ndcg(tmp_path):
    write_run(tmp_path / "low", result_doc(ndcg=0.20))
    write_run(tmp_path / "high", result_doc(ndcg=0.25))
    write_run(tmp_path / "pricier", result_doc(ndcg=0.40, replicas=(2, 2)))
    rec = recommend(collect_runs([tmp_path]).runs, POLICY)
    assert rec.chosen.name == "high"


def test_when_nothing_passes_the_closest_is_named_with_what_it_misses(tmp_path):
    write_run(tmp_path / "slow", result_doc(p99_ms=120.0))  # misses by 20%
    write_run(tmp_path / "slower", result_doc(p99_ms=300.0))
    write_run(tmp_path / "slow_and_costly", result_doc(p99_ms=101.0, replicas=(5, 5)))
    rec = recommend(collect_runs([tmp_path]).runs, POLICY)
    assert rec.chosen is None
    assert rec.closest.name == "slow"
    assert rec.reasons[:2] == [
        "No run passes every constraint of policy 'test' (3 run(s) checked).",
        "Closest: faiss[HNSW32 ef_search=64] + lightgbm (slow), which misses 1 constraint(s): "
        "latency_ms.p99 120 ms is not <= 100 ms, misses by 20 ms.",
    ]
    assert rec.reasons[2].startswith("It meets quality.ndcg@10 0.3 >= 0.05; budget: ")
    assert recommend([], POLICY).reasons == ["No usable run to choose from."]
