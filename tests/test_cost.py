"""Cost: replicas x price, per 1000 requests, per month, TCO."""

import pytest

from recsys.cost import CostAssumptions, StageFleet, fleet_cost
from recsys.errors import ConfigError


def test_two_stage_fleet_worked_example():
    # 2 x $0.50/h + 3 x $1.00/h = $4/h. At 100 QPS that is 360k requests an hour,
    # so $4 / 360 = $0.0111 per 1000 requests; a 730-hour month costs $2920.
    fleet = [StageFleet("retrieval", 2, "c7i.large", 0.5), StageFleet("ranking", 3, "c7i.xl", 1.0)]
    assumptions = CostAssumptions(
        engineering_hours=120,
        engineering_rate_usd=100,
        amortization_months=12,
        maintenance_monthly_usd=200,
    )
    report = fleet_cost(fleet, qps=100, assumptions=assumptions)
    assert report.hourly_usd == pytest.approx(4.0)
    assert report.per_1k_requests_usd == pytest.approx(4.0 / 360.0)
    assert report.monthly_usd == pytest.approx(2920.0)
    # TCO adds 120 h x $100 / 12 months = $1000 and $200 maintenance.
    assert report.tco_monthly_usd == pytest.approx(2920.0 + 1000.0 + 200.0)
    assert [s["monthly_usd"] for s in report.stages] == pytest.approx([730.0, 2190.0])
    assert report.to_dict()["assumptions"]["engineering_hours"] == 120


def test_cost_per_request_halves_when_traffic_doubles_on_the_same_fleet():
    fleet = [StageFleet("retrieval", 1, "x", 1.0)]
    assert fleet_cost(fleet, 200).per_1k_requests_usd == pytest.approx(
        fleet_cost(fleet, 100).per_1k_requests_usd / 2
    )


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: StageFleet("ranking", 0, "x", 1.0), "replicas must be positive"),
        (lambda: StageFleet("ranking", 1, "x", -1.0), "price_per_hour_usd"),
        (lambda: fleet_cost([StageFleet("r", 1, "x", 1.0)], qps=0), "qps must be positive"),
        (lambda: fleet_cost([], qps=10), "at least one stage"),
        (lambda: CostAssumptions(hours_per_month=0), "hours_per_month"),
        (lambda: CostAssumptions(engineering_hours=-5), "engineering_hours"),
    ],
)
def test_bad_cost_inputs_are_named(build, match):
    with pytest.raises(ConfigError, match=match):
        build()
