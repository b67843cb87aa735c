"""The constraint gate: exact reasons with numbers, budget ceilings, relative constraints, and
clear errors for policies that name what does not exist."""

import pytest

from recsys.errors import ConfigError
from recsys.gate import (
    METRICS,
    Budget,
    Constraint,
    GateResult,
    Policy,
    check_runs,
    metric_value,
)
from tests.report.factory import BASELINE, HNSW, IVF_SLOW, result_doc

POLICY = {
    "name": "test",
    "constraints": [
        {"metric": "latency_ms.p99", "op": "<=", "value": 100},
        {"metric": "quality.ndcg@10", "op": ">=", "value": 0.05},
    ],
}


def test_passing_run_gets_one_reason_per_constraint_with_numbers():
    gate = Policy.from_dict(POLICY).check(result_doc(**HNSW))
    assert gate == GateResult(
        True, ["latency_ms.p99 60 ms <= 100 ms", "quality.ndcg@10 0.318 >= 0.05"], gate.checks
    )
    assert gate.failures == []
    assert gate.shortfall == 0.0


def test_failing_run_says_by_how_much_it_misses():
    gate = Policy.from_dict(POLICY).check(result_doc(**IVF_SLOW))
    assert not gate.passed
    assert gate.failures == ["latency_ms.p99 150 ms is not <= 100 ms, misses by 50 ms"]
    assert gate.shortfall == pytest.approx(0.5)


def test_unknown_metric_is_an_error_listing_valid_metrics():
    bad = {"constraints": [{"metric": "latency_ms.p98", "op": "<=", "value": 1}]}
    with pytest.raises(
        ConfigError, match=r"unknown metric 'latency_ms.p98'; valid metrics: latency_ms.p50"
    ) as err:
        Policy.from_dict(bad)
    assert all(m in str(err.value) for m in METRICS)
    with pytest.raises(ConfigError, match="unknown metric"):
        metric_value(result_doc(), "p99")


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"metric": "latency_ms.p99", "op": "=<", "value": 1}, "unknown op '=<'"),
        ({"metric": "latency_ms.p99", "op": "<=", "value": "fast"}, "needs a finite number"),
        ({"metric": "latency_ms.p99", "op": "<="}, "needs a finite number"),
        ({"metric": "latency_ms.p99", "value": 1}, "needs metric and op"),
        (
            {"metric": "latency_ms.p99", "op": "<=", "value": 1, "unit": "ms"},
            r"unknown key\(s\) \['unit'\]",
        ),
        (
            {"metric": "quality.ndcg@10", "op": ">=", "relative_to": "best"},
            "relative_to must be 'baseline'",
        ),
        (
            {"metric": "quality.ndcg@10", "op": "==", "relative_to": "baseline"},
            "needs <=, <, >= or >",
        ),
        (
            {
                "metric": "quality.ndcg@10",
                "op": ">=",
                "relative_to": "baseline",
                "tolerance_pct": -1,
            },
            "tolerance_pct must be >= 0",
        ),
    ],
)
def test_bad_constraints_are_refused(item, message):
    with pytest.raises(ConfigError, match=message):
        Policy.from_dict({"constraints": [item]})


def test_bad_policy_documents_are_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['constraint'\]"):
        Policy.from_dict({"constraint": []})
    with pytest.raises(ConfigError, match="no constraints and no budget"):
        Policy.from_dict({"constraints": []})
    with pytest.raises(ConfigError, match="does not exist"):
        Policy.load(tmp_path / "missing.yaml")
    (tmp_path / "broken.yaml").write_text("constraints: [{metric: x\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml"):
        Policy.load(tmp_path / "broken.yaml")
    with pytest.raises(ConfigError, match="baseline selector"):
        Policy.from_dict({**POLICY, "baseline": {"kind": "x"}})
    with pytest.raises(ConfigError, match=r"budget\.monthly_usd must be positive"):
        Policy.from_dict({"budget": {"monthly_usd": 0}})
    with pytest.raises(ConfigError, match=r"budget: unknown key\(s\) \['usd'\]"):
        Policy.from_dict({"budget": {"monthly_usd": 1, "usd": 2}})


def test_budget_becomes_a_cost_per_request_ceiling():
    # 3 replicas x 1 USD/h x 730 h = 2190 USD/month; 100 QPS x 3600 s x 730 h = 262.8M requests.
    check = Budget(monthly_usd=5000).check(result_doc(**HNSW))
    assert check.passed
    assert check.reason == (
        "budget: cost.monthly_usd $2,190.00/month <= $5,000.00/month; i.e. $0.008333 per 1k "
        "requests against a ceiling of $0.01903 per 1k (262.8M requests/month at 100 QPS x 730 h)"
    )
    assert Budget(monthly_usd=5000).ceiling_per_1k_usd(result_doc()) == pytest.approx(
        5000 / 262.8e6 * 1000
    )


def test_budget_at_a_given_traffic_and_on_tco():
    # The fleet costs 7300 USD/month; at 50 QPS that is twice the per-request cost of 100 QPS.
    budget = Budget(monthly_usd=5000, qps=50, hours_per_month=730, metric="cost.tco_monthly_usd")
    check = budget.check(result_doc(**BASELINE))
    assert not check.passed
    assert check.reason.startswith(
        "budget: cost.tco_monthly_usd $9,800.00/month is over $5,000.00/month"
    )
    assert "ceiling of $0.03805 per 1k (131.4M requests/month at 50 QPS x 730 h)" in check.reason
    assert check.shortfall == pytest.approx(4800 / 5000)


def test_relative_constraint_uses_the_baseline_within_its_tolerance():
    policy = Policy.from_dict(
        {
            "constraints": [
                {
                    "metric": "quality.ndcg@10",
                    "op": ">=",
                    "relative_to": "baseline",
                    "tolerance_pct": 1,
                }
            ]
        }
    )
    base = result_doc(**BASELINE)  # NDCG 0.320: the bound is 0.3168
    ok = policy.check(result_doc(ndcg=0.317), base)
    low = policy.check(result_doc(ndcg=0.316), base)
    assert ok.reasons == ["quality.ndcg@10 0.317 >= 0.3168 (baseline 0.32 -1%)"]
    assert low.reasons == [
        "quality.ndcg@10 0.316 is not >= 0.3168 (baseline 0.32 -1%), misses by 0.0008"
    ]
    assert not low.passed
    # Without a baseline the relative constraint is not applied, and the policy says so.
    assert policy.check(result_doc(ndcg=0.1)).reasons == []
    assert policy.unapplied(None) == [
        "not applied: quality.ndcg@10 >= baseline - 1% (no baseline run marked: set baseline: in "
        "the policy or pass --baseline)"
    ]
    upper = Constraint("latency_ms.p99", "<=", relative_to="baseline", tolerance_pct=10)
    assert upper.threshold(base) == pytest.approx(99.0)


def test_missing_metric_fails_never_passes_silently():
    result = result_doc()
    del result["quality"]["hr@10"]
    result["latency_ms"]["p999"] = None  # NaN in JSON
    policy = Policy.from_dict(
        {
            "constraints": [
                {"metric": "quality.hr@10", "op": ">=", "value": 0.1},
                {"metric": "latency_ms.p999", "op": "<=", "value": 500},
            ]
        }
    )
    gate = policy.check(result)
    assert not gate.passed
    assert gate.failures == [
        "quality.hr@10 missing from result.json: cannot check >= 0.1",
        "latency_ms.p999 missing from result.json: cannot check <= 500 ms",
    ]
    assert gate.shortfall == float("inf")


def test_derived_metrics_and_boolean_constraints():
    result = result_doc(replicas=(2, 3), dropped=25, measured=10_000)
    assert metric_value(result, "total_replicas") == 5
    assert metric_value(result, "dropped_pct") == pytest.approx(0.25)
    policy = Policy.from_dict(
        {
            "constraints": [
                {"metric": "dropped_pct", "op": "<=", "value": 0.1},
                {"metric": "sla.met", "op": "==", "value": True},
                {"metric": "total_replicas", "op": "<=", "value": 4},
            ]
        }
    )
    gate = policy.check(result)
    assert gate.reasons == [
        "dropped_pct 0.25% is not <= 0.1%, misses by 0.15%",
        "sla.met True == True",
        "total_replicas 5 replicas is not <= 4 replicas, misses by 1 replicas",
    ]
    assert [g.passed for g in check_runs(policy, [result, result_doc(p99_ms=200)])] == [
        False,
        False,
    ]


def test_default_policy_file():
    from recsys.cli.report import DEFAULT_POLICY

    policy = Policy.load(DEFAULT_POLICY)
    assert policy.name == "default"
    assert policy.describe() == [
        "latency_ms.p99 <= 100 ms",
        "quality.ndcg@10 >= 0.05",
        "dropped_pct <= 0.1%",
        "quality.ndcg@10 >= baseline - 1%",
        "cost.monthly_usd <= $5,000.00/month "
        "(budget, paying for each run's peak QPS around the clock)",
    ]
    assert policy.check(result_doc(**HNSW)).passed
    assert (
        policy.check(result_doc(**BASELINE))
        .failures[0]
        .startswith("budget: cost.monthly_usd $7,300.00/month is over $5,000.00/month")
    )
