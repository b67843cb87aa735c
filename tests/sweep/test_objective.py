"""What a run reports to a sweeper: one metric, the composite, or a tuple (multi-objective)."""

import pytest

from recsys.errors import ConfigError
from recsys.sweep import Objective, directions


def result(ndcg=0.30, per_1k=0.002, p99=40.0, met=True):
    return {
        "quality": {"ndcg@10": ndcg},
        "cost": {"per_1k_requests_usd": per_1k},
        "latency_ms": {"p99": p99},
        "sla": {"met": met},
    }


def test_default_is_the_p99_as_before():
    assert Objective.from_dict(None).value(result(p99=41.5)) == 41.5


def test_composite_worked_example():
    # 0.7 * (1 - 0.30) + 0.3 * 0.002 / 0.004 = 0.49 + 0.15 = 0.64
    objective = Objective(kind="composite", cost_ref=0.004)
    assert objective.value(result()) == pytest.approx(0.64)
    # Missing the SLA adds the penalty, so a late pairing never wins.
    assert objective.value(result(met=False)) == pytest.approx(1.64)
    # Better quality at the same cost scores lower.
    assert objective.value(result(ndcg=0.40)) < objective.value(result())


def test_multi_objective_returns_the_metrics_in_order():
    objective = Objective.from_dict(
        {"kind": "multi", "metrics": ["quality.ndcg@10", "cost.per_1k_requests_usd"]}
    )
    assert objective.value(result()) == (0.30, 0.002)
    assert directions(objective) == ("maximize", "minimize")


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"metric": "latency_ms.p98"}, "unknown metric 'latency_ms.p98'"),
        ({"kind": "composite", "quality_metric": "ndcg"}, "unknown metric 'ndcg'"),
        ({"kind": "composite", "cost_ref": 0}, "cost_ref must be positive"),
        ({"kind": "multi", "metrics": ["quality.ndcg@10"]}, "two or more"),
        ({"kind": "best"}, "objective.kind"),
        ({"metrik": "latency_ms.p99"}, "unknown key"),
    ],
)
def test_bad_objectives_are_named(fields, match):
    with pytest.raises(ConfigError, match=match):
        Objective.from_dict(fields)


def test_a_run_without_the_metric_is_an_error_not_a_number():
    with pytest.raises(ConfigError, match=r"no numeric quality\.ndcg@10"):
        Objective(kind="composite").value({"cost": {"per_1k_requests_usd": 1.0}, "sla": {}})
