"""Money: replicas x instance price -> cost per 1000 requests, per month, and TCO.

Every number that is an assumption (prices, hours per month, engineering effort) comes in
as an explicit argument and is echoed back in :meth:`CostReport.to_dict`, so a report can
print what its conclusion rests on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

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
    stages: tuple[dict[str, float | int | str], ...] = field(default_factory=tuple)
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
) -> CostReport:
    """Cost of running ``fleet`` 24/7 (provisioned for ``qps``) while it serves ``qps``.

    Cost per 1000 requests is the fleet's hourly price divided by the thousands of requests it
    serves in an hour at that rate.
    """
    if qps <= 0:
        raise ConfigError(f"qps must be positive to price requests, got {qps}")
    if not fleet:
        raise ConfigError("a fleet needs at least one stage")
    a = assumptions or CostAssumptions()
    hourly = sum(s.hourly_usd for s in fleet)
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
