"""Cost: replicas x price, per 1000 requests, per month (provisioned and autoscaled), TCO,
budget ceilings, ROI of a quality change, hosted APIs."""

import math

import numpy as np
import pytest

from recsys.cost import (
    CostAssumptions,
    HostedAPI,
    StageFleet,
    TrafficProfile,
    autoscaled_replicas,
    budget_ceiling_per_1k_usd,
    fleet_cost,
    monthly_cost,
    roi,
)
from recsys.errors import ConfigError
from recsys.sim.workload import Diurnal


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


# -- a month of a traffic profile, autoscaled -------------------------------------------------


def _day_night(day_s: float = 86400.0):
    """100 QPS for the first half of the day, 25 QPS for the second."""
    return lambda t: np.where(np.asarray(t) < day_s / 2, 100.0, 25.0)


def test_profile_from_a_rate_curve_is_hourly_means():
    profile = TrafficProfile.from_rate(_day_night())
    assert profile.hourly_qps == (100.0,) * 12 + (25.0,) * 12
    assert profile.peak_qps == 100.0
    assert profile.mean_qps == 62.5
    # A compressed day (one simulated minute per hour) gives the same profile.
    assert TrafficProfile.from_rate(_day_night(1440.0), day_s=1440.0) == profile


def test_autoscaled_month_worked_example():
    # Sized for the 100 QPS peak: retrieval 4 x $0.50/h + ranking 2 x $1.00/h = $4/h.
    fleet = [StageFleet("retrieval", 4, "a", 0.5), StageFleet("ranking", 2, "b", 1.0)]
    profile = TrafficProfile((100.0,) * 12 + (25.0,) * 12)
    month = monthly_cost(fleet, profile, hours_per_month=720)
    # Provisioned: $4/h for 720 h.
    assert month.provisioned_monthly_usd == pytest.approx(2880.0)
    # Autoscaled: at 25 QPS a quarter of the load: retrieval ceil(4/4) = 1, ranking
    # ceil(2/4) = 1, so $1.50/h; a day is 12 x $4 + 12 x $1.50 = $66, a 30-day month $1980.
    assert month.hourly_replicas == {
        "retrieval": (4,) * 12 + (1,) * 12,
        "ranking": (2,) * 12 + (1,) * 12,
    }
    assert month.autoscaled_monthly_usd == pytest.approx(1980.0)
    # 62.5 QPS on average x 3600 s x 720 h = 162M requests.
    assert month.monthly_requests == pytest.approx(162e6)
    assert month.autoscaled_per_1k_usd == pytest.approx(1980.0 / 162e3)
    assert month.provisioned_per_1k_usd == pytest.approx(2880.0 / 162e3)
    assert month.autoscaling_saves_pct == pytest.approx(100 * (1 - 1980 / 2880))


def test_flat_profile_autoscales_to_the_provisioned_cost():
    fleet = [StageFleet("retrieval", 3, "a", 0.2)]
    month = monthly_cost(fleet, TrafficProfile.flat(50.0))
    assert month.autoscaled_monthly_usd == pytest.approx(month.provisioned_monthly_usd)
    # and matches fleet_cost at that rate around the clock
    assert month.provisioned_per_1k_usd == pytest.approx(
        fleet_cost(fleet, 50.0).per_1k_requests_usd
    )


def test_diurnal_profile_keeps_its_peak_and_mean():
    workload = Diurnal(peak_qps=1000, peak_factor=2.0, peak_hour=20)
    profile = TrafficProfile.from_rate(workload.rate_qps)
    assert profile.mean_qps == pytest.approx(500.0, rel=1e-3)
    assert max(range(24), key=lambda h: profile.hourly_qps[h]) in (19, 20)
    assert 900 < profile.peak_qps <= 1000  # an hour's mean sits just under the instant peak


@pytest.mark.parametrize(
    ("replicas", "qps", "peak", "expected"),
    [(4, 50, 100, 2), (4, 51, 100, 3), (3, 0, 100, 1), (10, 100, 100, 10), (5, 1, 100, 1)],
)
def test_autoscaled_replicas_keeps_load_per_replica(replicas, qps, peak, expected):
    assert autoscaled_replicas(replicas, qps, peak) == expected


# -- budget, ROI, hosted APIs ------------------------------------------------------------------


def test_budget_becomes_a_cost_per_request_ceiling():
    # 200 QPS around a 730-hour month is 525.6M requests; $5000 pays $0.009513 per 1000.
    requests = TrafficProfile.flat(200).monthly_requests(730)
    assert requests == pytest.approx(525.6e6)
    assert budget_ceiling_per_1k_usd(5000, requests) == pytest.approx(5000 / 525_600)
    with pytest.raises(ConfigError, match="budget must be positive"):
        budget_ceiling_per_1k_usd(0, requests)


def test_roi_of_a_quality_change_worked_example():
    # +0.2 NDCG points at 100M requests/month, each point worth $50 per 1M requests: $1000/month;
    # the new stack also costs $3000/month less; migrating costs $12000 once.
    result = roi(
        ndcg_before=0.100,
        ndcg_after=0.102,
        monthly_requests=100e6,
        value_per_ndcg_point_per_1m_usd=50,
        monthly_cost_before_usd=5000,
        monthly_cost_after_usd=2000,
        one_off_usd=12000,
        months=12,
    )
    assert result.quality_value_monthly_usd == pytest.approx(1000.0)
    assert result.net_monthly_usd == pytest.approx(4000.0)
    assert result.payback_months == pytest.approx(3.0)
    assert result.roi_pct == pytest.approx(300.0)  # (12 x 4000 - 12000) / 12000
    # A quality loss is a negative value, and a change that never pays back says so.
    loss = roi(
        ndcg_before=0.1,
        ndcg_after=0.09,
        monthly_requests=100e6,
        value_per_ndcg_point_per_1m_usd=50,
        monthly_cost_before_usd=1000,
        monthly_cost_after_usd=1000,
        one_off_usd=100,
    )
    assert loss.quality_value_monthly_usd == pytest.approx(-5000.0)
    assert loss.payback_months is None


def test_hosted_api_priced_per_call_and_per_token():
    per_call = HostedAPI("rank-api", price_per_call_usd=0.0004)
    assert per_call.per_1k_requests_usd == pytest.approx(0.40)
    # $0.002 per 1k tokens x 500 tokens = $0.001 a call; two calls per request.
    per_token = HostedAPI(
        "llm", price_per_1k_tokens_usd=0.002, tokens_per_call=500, calls_per_request=2
    )
    assert per_token.usd_per_request == pytest.approx(0.002)
    assert per_token.monthly_usd(1e6) == pytest.approx(2000.0)
    # Self-hosted retrieval (1 x $0.10/h at 100 QPS = $0.10 per 360k requests) + API ranking.
    report = fleet_cost(
        [StageFleet("retrieval", 1, "c7i.large", 0.1)], qps=100, apis={"ranking": per_call}
    )
    assert report.per_1k_requests_usd == pytest.approx(0.1 / 360 + 0.40)
    assert report.stages[1] == report.stages[1] | {"stage": "ranking", "api": "rank-api"}
    month = monthly_cost(
        [StageFleet("retrieval", 1, "x", 0.1)],
        TrafficProfile.flat(100),
        hours_per_month=730,
        apis={"ranking": per_call},
    )
    api_month = 0.0004 * 100 * 3600 * 730
    assert month.provisioned_monthly_usd == pytest.approx(0.1 * 730 + api_month)
    assert month.autoscaled_monthly_usd == pytest.approx(0.1 * 730 + api_month)


def test_hosted_api_latency_goes_through_its_percentiles():
    api = HostedAPI("x", price_per_call_usd=0.001, latency_p50_ms=50, latency_p99_ms=200)
    mean_ms, cv = api.latency_ms()
    # The log-normal with this mean and cv has median 50 ms and 99th percentile 200 ms.
    sigma2 = math.log1p(cv**2)
    mu = math.log(mean_ms) - sigma2 / 2
    assert math.exp(mu) == pytest.approx(50.0)
    assert math.exp(mu + 2.3263478740408408 * math.sqrt(sigma2)) == pytest.approx(200.0)


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: HostedAPI("free"), "price missing"),
        (lambda: HostedAPI("t", price_per_1k_tokens_usd=0.01), "tokens_per_call"),
        (lambda: HostedAPI("n", price_per_call_usd=None), "price_per_call_usd"),
        (lambda: HostedAPI("l", price_per_call_usd=1, latency_p50_ms=300), "latency_p50_ms"),
        (lambda: TrafficProfile((1.0,) * 23), "24 hourly rates"),
        (lambda: TrafficProfile((0.0,) * 24), "not all zero"),
        (lambda: monthly_cost([], TrafficProfile.flat(1)), "at least one stage"),
    ],
)
def test_bad_money_inputs_are_named(build, match):
    with pytest.raises(ConfigError, match=match):
        build()


def test_a_fleet_sized_off_peak_is_scaled_up_for_the_peak_hour():
    # 2 replicas serve 50 QPS; the peak hour brings 100 QPS, so 4 are provisioned.
    fleet = [StageFleet("ranking", 2, "x", 1.0)]
    profile = TrafficProfile((100.0,) * 6 + (50.0,) * 18)
    month = monthly_cost(fleet, profile, hours_per_month=720, sized_for_qps=50)
    assert month.hourly_replicas["ranking"] == (4,) * 6 + (2,) * 18
    assert month.provisioned_monthly_usd == pytest.approx(4 * 720)
    assert month.autoscaled_monthly_usd == pytest.approx((6 * 4 + 18 * 2) * 30)
