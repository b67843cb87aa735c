"""A utilisation-target autoscaler for replica pools, modelled on the Kubernetes HPA.

Every ``interval_s`` it measures each stage's busy fraction since the last tick (or since its
capacity last changed, so a half-started fleet does not skew the reading) and asks for
``ceil(ready * utilisation / target_utilization)`` replicas (no change within ``tolerance`` of
the target), clamped to ``[min_replicas, max_replicas]``. New replicas serve only after
``cold_start_s`` (they are billed from the request on). Scale-down uses the highest
recommendation of the last ``scale_down_delay_s`` (the HPA stabilisation window), cancels
replicas still starting first, and lets busy workers finish their batch.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from simpy import Environment, Event, Timeout

from recsys.errors import ConfigError
from recsys.sim.server import StageServer

# (time_s, ready replicas, replicas still cold-starting)
ReplicaLog = list[tuple[float, int, int]]


@dataclass(frozen=True)
class AutoscalerSpec:
    """Autoscaling policy applied to ``stages`` (all stages when None)."""

    target_utilization: float = 0.6
    min_replicas: int = 1
    max_replicas: int = 64
    interval_s: float = 30.0
    cold_start_s: float = 60.0
    scale_down_delay_s: float = 300.0
    tolerance: float = 0.1
    stages: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not 0.0 < self.target_utilization <= 1.0:
            raise ConfigError(
                f"autoscaler target_utilization must be in (0, 1], got {self.target_utilization}"
            )
        if not 1 <= self.min_replicas <= self.max_replicas:
            raise ConfigError(
                "autoscaler needs 1 <= min_replicas <= max_replicas, got "
                f"{self.min_replicas}..{self.max_replicas}"
            )
        if self.interval_s <= 0 or self.cold_start_s < 0 or self.scale_down_delay_s < 0:
            raise ConfigError("autoscaler interval_s must be > 0; delays must be >= 0")
        if not 0.0 <= self.tolerance < 1.0:
            raise ConfigError(f"autoscaler tolerance must be in [0, 1), got {self.tolerance}")
        if self.stages is not None:
            object.__setattr__(self, "stages", tuple(self.stages))


class _Pending:
    """One replica still cold-starting; cancelled ones are ignored when their timer fires."""

    __slots__ = ("cancelled",)

    def __init__(self) -> None:
        self.cancelled = False


class Autoscaler:
    """Runs the policy on ``servers`` until ``until_s`` (the last arrival) and logs replicas."""

    def __init__(
        self, env: Environment, spec: AutoscalerSpec, servers: Sequence[StageServer], until_s: float
    ) -> None:
        names = {s.spec.name for s in servers}
        unknown = set(spec.stages or ()) - names
        if unknown:
            raise ConfigError(
                f"autoscaler stages {sorted(unknown)} are not in the pipeline {sorted(names)}"
            )
        self.env = env
        self.spec = spec
        self.servers = [s for s in servers if spec.stages is None or s.spec.name in spec.stages]
        self.until_s = until_s
        self.pending: dict[int, list[_Pending]] = {s.index: [] for s in self.servers}
        self.history: dict[int, deque[tuple[float, int]]] = {s.index: deque() for s in self.servers}
        self.last: dict[int, tuple[float, float]] = {s.index: s.account() for s in self.servers}
        self.replica_log: dict[int, ReplicaLog] = {
            s.index: [(0.0, s.replicas, 0)] for s in self.servers
        }
        if spec.interval_s <= until_s:
            Timeout(env, spec.interval_s).callbacks.append(self._tick)

    def _note(self, server: StageServer) -> None:
        self.replica_log[server.index].append(
            (self.env.now, server.replicas, len(self.pending[server.index]))
        )

    def _tick(self, event: Event) -> None:
        for server in self.servers:
            self._scale(server)
        if self.env.now + self.spec.interval_s <= self.until_s:
            Timeout(self.env, self.spec.interval_s).callbacks.append(self._tick)

    def recommend(self, ready: int, current: int, utilization: float) -> int:
        """HPA rule: replicas for the target utilisation, unchanged within the tolerance."""
        spec = self.spec
        ratio = utilization / spec.target_utilization
        wanted = current if abs(ratio - 1.0) <= spec.tolerance else math.ceil(ready * ratio)
        return min(max(wanted, spec.min_replicas), spec.max_replicas)

    def _scale(self, server: StageServer) -> None:
        now, idx = self.env.now, server.index
        busy, area = server.account()
        last_busy, last_area = self.last[idx]
        self.last[idx] = (busy, area)
        utilization = (busy - last_busy) / (area - last_area) if area > last_area else 0.0
        pending = self.pending[idx]
        current = server.replicas + len(pending)
        desired = self.recommend(server.replicas, current, utilization)
        history = self.history[idx]
        history.append((now, desired))
        while history and history[0][0] < now - self.spec.scale_down_delay_s:
            history.popleft()
        target = desired if desired >= current else min(current, max(d for _, d in history))
        if target > current:
            for _ in range(target - current):
                token = _Pending()
                pending.append(token)
                timer = Timeout(self.env, self.spec.cold_start_s, (server, token))
                timer.callbacks.append(self._ready)
            self._note(server)
        elif target < current:
            remove = current - target
            while remove and pending:
                pending.pop().cancelled = True
                remove -= 1
            if remove:
                server.set_replicas(server.replicas - remove)
                self.last[idx] = server.account()
            self._note(server)

    def _ready(self, event: Event) -> None:
        server, token = event.value  # type: ignore[misc]  # given to Timeout above
        if token.cancelled:
            return
        self.pending[server.index].remove(token)
        server.set_replicas(server.replicas + 1)
        self.last[server.index] = server.account()  # measure the new capacity from now on
        self._note(server)
