"""Fleet steps beyond one fixed instance type: a hardware catalogue, hosted-API stages, and
a month of a daily traffic profile.

Typed steps, no config: :mod:`recsys.scenarios.config` turns config nodes into the objects
these take, and ``recsys-sim`` calls them in place of the fixed-hardware steps of
:mod:`recsys.experiment` when a catalogue or a hosted API is configured.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from recsys.cost import (
    CostAssumptions,
    CostReport,
    HostedAPI,
    MonthlyCost,
    StageFleet,
    TrafficProfile,
    fleet_cost,
    monthly_cost,
)
from recsys.errors import ConfigError
from recsys.experiment import SimOptions
from recsys.plan import (
    CataloguePlan,
    HardwareOption,
    PlanResult,
    plan_cheapest,
    quickest_specs,
)
from recsys.sim.engine import SimResult, StageSpec
from recsys.sim.hardware import Hardware
from recsys.sim.service import EmpiricalServiceTime, LogNormal


def api_stage(spec: StageSpec, api: HostedAPI) -> tuple[StageSpec, HardwareOption]:
    """``spec`` served by a hosted API: its latency distribution, ``max_concurrency``
    requests in flight, no instance price (it is paid per call), and its one catalogue option.
    """
    mean_ms, cv = api.latency_ms()
    hardware = Hardware(
        name=f"api:{api.name}",
        vcpu=api.max_concurrency,
        price_per_hour_usd=0.0,
        price_date=api.price_date,
        price_source=api.price_source,
    )
    served = dataclasses.replace(
        spec,
        service=LogNormal(mean_ms, cv),
        replicas=1,
        workers_per_replica=api.max_concurrency,
        max_batch=1,
        max_wait_ms=0.0,
        hardware=hardware,
    )
    return served, HardwareOption(hardware, api.max_concurrency)


def simulate_catalogue(
    specs: Sequence[StageSpec],
    catalogue: Sequence[Sequence[HardwareOption]],
    arrivals: np.ndarray,
    sla_p99_ms: float,
    seed: int,
    warmup_s: float,
    max_replicas: int = 64,
    progress: bool = True,
    options: SimOptions | None = None,
    fixed: Collection[str] = (),
) -> tuple[list[StageSpec], SimResult, PlanResult | None, CataloguePlan]:
    """Plan the cheapest hardware and replicas per stage (``specs`` carry the service times
    measured here), then simulate the chosen fleet; when no option meets the SLA, simulate
    the fastest one at the replica ceiling, to show how far off it is."""
    chosen = plan_cheapest(
        specs,
        catalogue,
        arrivals,
        sla_p99_ms=sla_p99_ms,
        seed=seed,
        warmup_s=warmup_s,
        max_replicas=max_replicas,
        fixed=fixed,
    )
    if chosen.plan is not None:
        final = list(chosen.plan.stages)
    else:
        final = [
            s if s.name in fixed else dataclasses.replace(s, replicas=max_replicas)
            for s in quickest_specs(specs, catalogue)
        ]
    o = options or SimOptions()
    result = o.simulate(arrivals, final, seed=seed, warmup_s=warmup_s, progress=progress)
    plan = chosen.plan
    if not chosen.feasible:  # said so in result.json's plan: infeasible at any size
        trail = plan.trail if plan is not None else ()
        p99 = float(result.latency_ms["p99"])
        plan = PlanResult(tuple(final), False, p99, sla_p99_ms, chosen.reason, trail)
    return final, result, plan, chosen


def traffic_profile(workload: object, qps: float) -> TrafficProfile:
    """The daily profile of a workload with a rate curve (clock hours 0-23), else flat."""
    rate = getattr(workload, "rate_qps", None)
    day_s = getattr(workload, "day_s", None)
    if not callable(rate) or day_s is None:
        return TrafficProfile.flat(qps)
    # t = 0 is the workload's start_hour: shift so that profile hour h is clock hour h.
    offset_s = float(getattr(workload, "start_hour", 0.0)) / 24.0 * float(day_s)
    curve: Callable[[np.ndarray], np.ndarray] = lambda t: rate(np.asarray(t) - offset_s)  # noqa: E731
    return TrafficProfile.from_rate(curve, float(day_s))


def _fleet(specs: Sequence[StageSpec], apis: Mapping[str, HostedAPI]) -> list[StageFleet]:
    return [
        StageFleet(
            stage=s.name,
            replicas=s.replicas,
            hardware=s.hardware.name if s.hardware else "unknown",
            price_per_hour_usd=s.hardware.price_per_hour_usd if s.hardware else 0.0,
        )
        for s in specs
        if s.name not in apis
    ]


def price(
    specs: Sequence[StageSpec],
    qps: float,
    assumptions: CostAssumptions,
    profile: TrafficProfile,
    apis: Mapping[str, HostedAPI] | None = None,
) -> tuple[CostReport, MonthlyCost]:
    """The fleet serving ``qps`` around the clock, and its month of ``profile`` traffic
    (hosted ``apis``, stage -> API, are paid per request instead of per replica)."""
    apis = dict(apis or {})
    fleet = _fleet(specs, apis)
    report = fleet_cost(fleet, qps=qps, assumptions=assumptions, apis=apis)
    month = monthly_cost(
        fleet, profile, hours_per_month=assumptions.hours_per_month, apis=apis, sized_for_qps=qps
    )
    return report, month


def month_fields(month: MonthlyCost, profile: TrafficProfile) -> dict[str, Any]:
    """Keys added to ``result.json``'s ``cost``: the month provisioned and autoscaled."""
    return {
        "provisioned_monthly_usd": month.provisioned_monthly_usd,
        "autoscaled_monthly_usd": month.autoscaled_monthly_usd,
        "autoscaled_per_1k_requests_usd": month.autoscaled_per_1k_usd,
        "provisioned_per_1k_requests_usd": month.provisioned_per_1k_usd,
        "monthly_requests": month.monthly_requests,
        "traffic_profile": {
            "hourly_qps": [round(q, 4) for q in profile.hourly_qps],
            "peak_hour_qps": profile.peak_qps,
            "mean_qps": profile.mean_qps,
        },
        "hourly_replicas": {k: list(v) for k, v in month.hourly_replicas.items()},
    }


def for_catalogue(
    specs: Sequence[StageSpec],
    profile: pd.DataFrame,
    catalogue: Sequence[Sequence[HardwareOption]] | None,
    apis: Mapping[str, HostedAPI],
) -> tuple[list[StageSpec], list[list[HardwareOption]]]:
    """Stages with their service time as measured here (``profile``, the timing table), and
    each stage's options: hosted-API stages their API, the rest the catalogue's options (or,
    without a catalogue, the stage's own hardware, so only replicas are planned)."""
    out_specs, out_options = [], []
    for i, spec in enumerate(specs):
        measured = EmpiricalServiceTime.from_table(profile, stage=spec.name)
        here = dataclasses.replace(spec, service=measured)
        if spec.name in apis:
            served, option = api_stage(here, apis[spec.name])
            out_specs.append(served)
            out_options.append([option])
        elif catalogue is not None:
            out_specs.append(here)
            out_options.append(list(catalogue[i]))
        else:
            if spec.hardware is None:
                raise ConfigError(f"stage {spec.name!r} has no hardware to plan on")
            out_specs.append(here)
            out_options.append([HardwareOption(spec.hardware, spec.workers_per_replica)])
    return out_specs, out_options
