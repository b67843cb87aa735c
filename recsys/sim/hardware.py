"""The machine a stage's replicas run on: price, size and speed relative to the profiler.

Prices and speed factors are assumptions, not measurements of this machine: each carries the
date and source of its price so the report can print it next to the numbers it drives.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from recsys.errors import ConfigError
from recsys.sim.service import Scaled, ServiceTimeModel


@dataclass(frozen=True)
class Hardware:
    """One instance type.

    ``speed_factor`` is how many times faster one worker runs a stage than on the profiling
    machine (2.0 halves every service time); ``price_per_hour_usd`` is per replica (instance).
    """

    name: str
    vcpu: int
    price_per_hour_usd: float
    speed_factor: float = 1.0
    price_date: str = "unknown"
    price_source: str = "unknown"
    memory_gib: float | None = None
    accelerator: str | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigError("hardware.name must not be empty")
        if int(self.vcpu) < 1:
            raise ConfigError(f"hardware {self.name}: vcpu must be >= 1, got {self.vcpu}")
        if not (math.isfinite(self.price_per_hour_usd) and self.price_per_hour_usd >= 0):
            raise ConfigError(
                f"hardware {self.name}: price_per_hour_usd must be >= 0, "
                f"got {self.price_per_hour_usd}"
            )
        if not (math.isfinite(self.speed_factor) and self.speed_factor > 0):
            raise ConfigError(
                f"hardware {self.name}: speed_factor must be > 0, got {self.speed_factor}"
            )
        if self.memory_gib is not None and self.memory_gib <= 0:
            raise ConfigError(
                f"hardware {self.name}: memory_gib must be > 0, got {self.memory_gib}"
            )

    def scale(self, model: ServiceTimeModel) -> ServiceTimeModel:
        """``model`` as it would run on this hardware (unchanged when speed_factor is 1)."""
        return model if self.speed_factor == 1.0 else Scaled(model, self.speed_factor)

    def cost_usd(self, replica_hours: float) -> float:
        """Price of ``replica_hours`` instance-hours."""
        return replica_hours * self.price_per_hour_usd

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, for ``result.json`` and the report's assumptions table."""
        return asdict(self)
