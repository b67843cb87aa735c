"""Money: replicas x instance price -> cost per 1000 requests, per month, and TCO.

Every number that is an assumption (prices, hours per month, engineering effort, value of
quality) comes in as an explicit argument and is echoed back in :meth:`CostReport.to_dict`,
so a report can print what its conclusion rests on. Beyond a fleet at its peak rate around
the clock (:func:`fleet_cost`): a month of a daily traffic profile, provisioned for the peak
or autoscaled (:func:`monthly_cost`); a budget as a cost-per-request ceiling
(:func:`budget_ceiling_per_1k_usd`); the ROI of a quality change (:func:`roi`); and stages
served by a hosted model API priced per call or per token (:class:`HostedAPI`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from recsys.errors import ConfigError


@dataclass(frozen=True)
class StageFleet:
    """The replicas serving one stage and what one of them costs."""

    stage: str
    replicas: int
    hardware: str
    price_per_hour_usd: float

    def __post_init__(self) -> None:
        if self.replicas <= 0:
            raise ConfigError(
                f"stage {self.stage!r}: replicas must be positive, got {self.replicas}"
            )
        if self.price_per_hour_usd < 0:
            raise ConfigError(
                f"hardware {self.hardware!r}: price_per_hour_usd must be >= 0, "
                f"got {self.price_per_hour_usd}"
            )

    @property
    def hourly_usd(self) -> float:
        return self.replicas * self.price_per_hour_usd


@dataclass(frozen=True)
class CostAssumptions:
    """Explicit, dated assumptions behind every cost figure.

    ``engineering_hours`` x ``engineering_rate_usd`` is a one-off migration effort amortised
    over ``amortization_months``; ``maintenance_monthly_usd`` is the running cost of owning the
    stack (on-call, retraining, monitoring) beyond the instances.
    """

    hours_per_month: float = 730.0
    engineering_hours: float = 0.0
    engineering_rate_usd: float = 150.0
    amortization_months: float = 12.0
    maintenance_monthly_usd: float = 0.0
    source: str = "defaults"

    def __post_init__(self) -> None:
        for name in ("hours_per_month", "amortization_months"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"cost.{name} must be positive, got {getattr(self, name)}")
        for name in ("engineering_hours", "engineering_rate_usd", "maintenance_monthly_usd"):
            if getattr(self, name) < 0:
                raise ConfigError(f"cost.{name} must be >= 0, got {getattr(self, name)}")

    @property
    def engineering_monthly_usd(self) -> float:
        return self.engineering_hours * self.engineering_rate_usd / self.amortization_months


@dataclass(frozen=True)
class CostReport:
    """Cost of a fleet serving ``qps`` requests per second around the clock."""

    qps: float
    hourly_usd: float
    per_1k_requests_usd: float
    monthly_usd: float
    tco_monthly_usd: float
    stages: tuple[dict[str, object], ...] = field(default_factory=tuple)
    assumptions: dict[str, float | str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return {
            "per_1k_requests_usd": self.per_1k_requests_usd,
            "monthly_usd": self.monthly_usd,
            "tco_monthly_usd": self.tco_monthly_usd,
            "hourly_usd": self.hourly_usd,
            "qps": self.qps,
            "stages": list(self.stages),
            "assumptions": dict(self.assumptions),
        }


def fleet_cost(
    fleet: Sequence[StageFleet],
    qps: float,
    assumptions: CostAssumptions | None = None,
    apis: Mapping[str, HostedAPI] | None = None,
) -> CostReport:
    """Cost of running ``fleet`` 24/7 (provisioned for ``qps``) while it serves ``qps``.

    Cost per 1000 requests is the fleet's hourly price divided by the thousands of requests it
    serves in an hour at that rate, plus what the hosted ``apis`` (stage -> API) charge per
    1000 requests.
    """
    if qps <= 0:
        raise ConfigError(f"qps must be positive to price requests, got {qps}")
    apis = dict(apis or {})
    if not fleet and not apis:
        raise ConfigError("a fleet needs at least one stage")
    a = assumptions or CostAssumptions()
    api_hourly = {name: api.usd_per_request * qps * 3600.0 for name, api in apis.items()}
    hourly = sum(s.hourly_usd for s in fleet) + sum(api_hourly.values())
    monthly = hourly * a.hours_per_month
    per_1k = hourly / (qps * 3600.0 / 1000.0)
    tco = monthly + a.engineering_monthly_usd + a.maintenance_monthly_usd
    stages = tuple(
        {
            "stage": s.stage,
            "replicas": s.replicas,
            "hardware": s.hardware,
            "price_per_hour_usd": s.price_per_hour_usd,
            "monthly_usd": s.hourly_usd * a.hours_per_month,
        }
        for s in fleet
    ) + tuple(
        {
            "stage": name,
            "api": api.name,
            "per_1k_requests_usd": api.per_1k_requests_usd,
            "monthly_usd": api_hourly[name] * a.hours_per_month,
        }
        for name, api in apis.items()
    )
    return CostReport(
        qps=qps,
        hourly_usd=hourly,
        per_1k_requests_usd=per_1k,
        monthly_usd=monthly,
        tco_monthly_usd=tco,
        stages=stages,
        assumptions=dict(asdict(a).items()),
    )


# -- traffic over a day, autoscaling, budgets, ROI, hosted APIs -------------------------------

HOURS_PER_DAY = 24


@dataclass(frozen=True)
class TrafficProfile:
    """Mean request rate of each hour of a typical day (``hourly_qps``, 24 values).

    A month is ``hours_per_month`` hours of such days; a flat profile is "peak around the
    clock", the assumption behind :func:`fleet_cost`.
    """

    hourly_qps: tuple[float, ...]

    def __post_init__(self) -> None:
        rates = tuple(float(r) for r in self.hourly_qps)
        if len(rates) != HOURS_PER_DAY:
            raise ConfigError(f"a traffic profile needs 24 hourly rates, got {len(rates)}")
        if not all(math.isfinite(r) and r >= 0 for r in rates) or max(rates) <= 0:
            raise ConfigError("hourly rates must be finite, >= 0 and not all zero")
        object.__setattr__(self, "hourly_qps", rates)

    @classmethod
    def flat(cls, qps: float) -> TrafficProfile:
        """The same rate every hour."""
        return cls((float(qps),) * HOURS_PER_DAY)

    @classmethod
    def from_rate(
        cls, rate_qps: Callable[[np.ndarray], np.ndarray], day_s: float = 86400.0
    ) -> TrafficProfile:
        """Hourly means of a rate curve ``rate_qps(t_s)`` over one day of ``day_s`` seconds
        (sampled every simulated minute), e.g. :meth:`recsys.sim.workload.Diurnal.rate_qps`."""
        if not (math.isfinite(day_s) and day_s > 0):
            raise ConfigError(f"day_s must be positive, got {day_s}")
        t = (np.arange(HOURS_PER_DAY * 60) + 0.5) * day_s / (HOURS_PER_DAY * 60)
        rates = np.asarray(rate_qps(t), dtype=np.float64).reshape(HOURS_PER_DAY, 60).mean(1)
        return cls(tuple(rates.tolist()))

    @property
    def peak_qps(self) -> float:
        return max(self.hourly_qps)

    @property
    def mean_qps(self) -> float:
        return sum(self.hourly_qps) / HOURS_PER_DAY

    def monthly_requests(self, hours_per_month: float = 730.0) -> float:
        return self.mean_qps * 3600.0 * hours_per_month


def autoscaled_replicas(replicas: int, qps: float, peak_qps: float, min_replicas: int = 1) -> int:
    """Replicas an autoscaler keeps at ``qps`` when ``replicas`` serve ``peak_qps``: the same
    load per replica, ``ceil(replicas * qps / peak_qps)``, and never fewer than ``min_replicas``.
    """
    if peak_qps <= 0:
        raise ConfigError(f"peak_qps must be positive, got {peak_qps}")
    # The small tolerance keeps 4 * 0.5 from becoming 3 (float noise rounding up to 3.0000001).
    return max(int(min_replicas), math.ceil(replicas * qps / peak_qps - 1e-9))


@dataclass(frozen=True)
class MonthlyCost:
    """A fleet sized for the peak of a traffic profile, priced over a month two ways."""

    monthly_requests: float
    provisioned_monthly_usd: float
    autoscaled_monthly_usd: float
    hourly_replicas: dict[str, tuple[int, ...]]

    @property
    def provisioned_per_1k_usd(self) -> float:
        return self.provisioned_monthly_usd / self.monthly_requests * 1000.0

    @property
    def autoscaled_per_1k_usd(self) -> float:
        return self.autoscaled_monthly_usd / self.monthly_requests * 1000.0

    @property
    def autoscaling_saves_pct(self) -> float:
        return 100.0 * (1.0 - self.autoscaled_monthly_usd / self.provisioned_monthly_usd)

    def to_dict(self) -> dict[str, object]:
        return {
            "monthly_requests": self.monthly_requests,
            "provisioned_monthly_usd": self.provisioned_monthly_usd,
            "autoscaled_monthly_usd": self.autoscaled_monthly_usd,
            "provisioned_per_1k_usd": self.provisioned_per_1k_usd,
            "autoscaled_per_1k_usd": self.autoscaled_per_1k_usd,
            "hourly_replicas": {k: list(v) for k, v in self.hourly_replicas.items()},
        }


def monthly_cost(
    fleet: Sequence[StageFleet],
    profile: TrafficProfile,
    hours_per_month: float = 730.0,
    min_replicas: int = 1,
    apis: Mapping[str, HostedAPI] | None = None,
    sized_for_qps: float | None = None,
) -> MonthlyCost:
    """Month of ``profile`` traffic on ``fleet``, which serves ``sized_for_qps`` (default: the
    profile's peak hour).

    Provisioned: the fleet for the peak hour around the clock. Autoscaled: each hour, each
    stage keeps :func:`autoscaled_replicas` for that hour's mean rate (an assumption: the same
    load per replica that met the SLA when sized also meets it at other rates; scaling lag
    is not priced). Hosted ``apis`` are paid per request either way.
    """
    if not fleet and not apis:
        raise ConfigError("a fleet needs at least one stage")
    sized = profile.peak_qps if sized_for_qps is None else float(sized_for_qps)
    hourly = {
        s.stage: tuple(
            autoscaled_replicas(s.replicas, q, sized, min(min_replicas, s.replicas))
            for q in profile.hourly_qps
        )
        for s in fleet
    }
    days = hours_per_month / HOURS_PER_DAY
    day_usd = sum(sum(hourly[s.stage]) * s.price_per_hour_usd for s in fleet)
    peak_usd = sum(max(hourly[s.stage]) * s.price_per_hour_usd for s in fleet)
    requests = profile.monthly_requests(hours_per_month)
    api_usd = sum(api.monthly_usd(requests) for api in (apis or {}).values())
    return MonthlyCost(
        monthly_requests=requests,
        provisioned_monthly_usd=peak_usd * hours_per_month + api_usd,
        autoscaled_monthly_usd=day_usd * days + api_usd,
        hourly_replicas=hourly,
    )


def budget_ceiling_per_1k_usd(monthly_budget_usd: float, monthly_requests: float) -> float:
    """The most 1000 requests may cost for ``monthly_budget_usd`` to pay for the traffic."""
    if not (math.isfinite(monthly_budget_usd) and monthly_budget_usd > 0):
        raise ConfigError(f"a monthly budget must be positive, got {monthly_budget_usd}")
    if not (math.isfinite(monthly_requests) and monthly_requests > 0):
        raise ConfigError(f"monthly requests must be positive, got {monthly_requests}")
    return monthly_budget_usd / monthly_requests * 1000.0


@dataclass(frozen=True)
class ROI:
    """What a redesign is worth per month (quality value + savings) against its one-off cost."""

    quality_value_monthly_usd: float
    savings_monthly_usd: float
    one_off_usd: float
    months: float

    @property
    def net_monthly_usd(self) -> float:
        return self.quality_value_monthly_usd + self.savings_monthly_usd

    @property
    def roi_pct(self) -> float | None:
        """Net gain over ``months`` as a percentage of the one-off cost (None when free)."""
        if self.one_off_usd <= 0:
            return None
        return 100.0 * (self.net_monthly_usd * self.months - self.one_off_usd) / self.one_off_usd

    @property
    def payback_months(self) -> float | None:
        """Months until the one-off cost is earned back (None if it never is)."""
        if self.net_monthly_usd <= 0:
            return None
        return self.one_off_usd / self.net_monthly_usd

    def to_dict(self) -> dict[str, float | None]:
        return {
            "quality_value_monthly_usd": self.quality_value_monthly_usd,
            "savings_monthly_usd": self.savings_monthly_usd,
            "net_monthly_usd": self.net_monthly_usd,
            "one_off_usd": self.one_off_usd,
            "months": self.months,
            "roi_pct": self.roi_pct,
            "payback_months": self.payback_months,
        }


def quality_value_monthly_usd(
    ndcg_change: float, monthly_requests: float, value_per_ndcg_point_per_1m_usd: float
) -> float:
    """Value of an absolute NDCG@10 change (``0.01`` is one point) at a monthly volume."""
    return ndcg_change * 100.0 * value_per_ndcg_point_per_1m_usd * monthly_requests / 1e6


def roi(
    *,
    ndcg_before: float,
    ndcg_after: float,
    monthly_requests: float,
    value_per_ndcg_point_per_1m_usd: float,
    monthly_cost_before_usd: float,
    monthly_cost_after_usd: float,
    one_off_usd: float,
    months: float = 12.0,
) -> ROI:
    """ROI of moving from one pairing to another: the quality change valued at
    ``value_per_ndcg_point_per_1m_usd`` per NDCG point per million requests, plus the monthly
    savings, against a one-off (migration) cost, over ``months``."""
    if months <= 0 or one_off_usd < 0 or monthly_requests < 0:
        raise ConfigError("roi needs months > 0, one_off_usd >= 0 and monthly_requests >= 0")
    return ROI(
        quality_value_monthly_usd(
            ndcg_after - ndcg_before, monthly_requests, value_per_ndcg_point_per_1m_usd
        ),
        monthly_cost_before_usd - monthly_cost_after_usd,
        one_off_usd,
        months,
    )


@dataclass(frozen=True)
class HostedAPI:
    """A stage served by a hosted model API: paid per call and per token, no replicas.

    Latency is log-normal through ``latency_p50_ms`` and ``latency_p99_ms`` (what providers
    publish); ``max_concurrency`` is the provider's limit on requests in flight.
    """

    name: str
    price_per_call_usd: float = 0.0
    price_per_1k_tokens_usd: float = 0.0
    tokens_per_call: float = 0.0
    calls_per_request: float = 1.0
    latency_p50_ms: float = 50.0
    latency_p99_ms: float = 200.0
    max_concurrency: int = 1000
    price_date: str = "unknown"
    price_source: str = "unknown"

    def __post_init__(self) -> None:
        where = f"hosted API {self.name!r}"
        for name in ("price_per_call_usd", "price_per_1k_tokens_usd", "tokens_per_call"):
            value = getattr(self, name)
            if value is None or not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"{where}: {name} must be >= 0, got {value}")
        if self.price_per_call_usd == 0 and self.price_per_1k_tokens_usd == 0:
            raise ConfigError(f"{where}: price missing (price_per_call_usd or per_1k_tokens)")
        if self.price_per_1k_tokens_usd > 0 and self.tokens_per_call <= 0:
            raise ConfigError(f"{where}: a per-token price needs tokens_per_call > 0")
        if not self.calls_per_request > 0 or self.max_concurrency < 1:
            raise ConfigError(f"{where}: calls_per_request and max_concurrency must be positive")
        if not 0 < self.latency_p50_ms <= self.latency_p99_ms:
            raise ConfigError(f"{where}: need 0 < latency_p50_ms <= latency_p99_ms")

    @property
    def usd_per_request(self) -> float:
        per_call = self.price_per_call_usd + self.tokens_per_call / 1000 * (
            self.price_per_1k_tokens_usd
        )
        return per_call * self.calls_per_request

    @property
    def per_1k_requests_usd(self) -> float:
        return 1000.0 * self.usd_per_request

    def monthly_usd(self, monthly_requests: float) -> float:
        return self.usd_per_request * monthly_requests

    def latency_ms(self) -> tuple[float, float]:
        """``(mean_ms, cv)`` of the log-normal through the given p50 and p99."""
        sigma = math.log(self.latency_p99_ms / self.latency_p50_ms) / Z_99
        return self.latency_p50_ms * math.exp(sigma**2 / 2), math.sqrt(math.expm1(sigma**2))

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "per_1k_requests_usd": self.per_1k_requests_usd}


#: The standard normal's 99th percentile.
Z_99 = 2.3263478740408408
