"""The constraint gate: does a run meet the hard constraints of a policy, and why (not)?

A policy (YAML, ``conf/policy/default.yaml``) lists constraints on ``result.json`` metrics::

    constraints:
      - {metric: latency_ms.p99, op: "<=", value: 100}
      - {metric: quality.ndcg@10, op: ">=", value: 0.05}
      - {metric: quality.ndcg@10, op: ">=", relative_to: baseline, tolerance_pct: 1}
    budget: {monthly_usd: 5000, qps: null, hours_per_month: 730}
    baseline: {pipeline_contains: neural_full}

A relative constraint compares with the baseline run: ``>=`` within 1% means at least 99% of
the baseline's value, ``<=`` within 1% at most 101%. The budget is checked on monthly cost and
also shown as the cost-per-request ceiling it implies at the given traffic. Every check states
its numbers; a metric a run lacks fails the check (never a silent pass).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from recsys.errors import ConfigError

#: Metrics a policy may name, with their unit (dotted paths into ``result.json`` and a few
#: derived ones: ``dropped_pct`` of measured requests, ``total_replicas`` over all stages).
METRICS: dict[str, str] = {
    **{f"latency_ms.{p}": "ms" for p in ("p50", "p90", "p95", "p99", "p999")},
    **{
        f"quality.{m}": ""
        for m in (
            "ndcg@10",
            "recall@10",
            "hr@10",
            "mrr@10",
            "coverage",
            "retrieval_recall@k",
            "retrieval_recall_vs_exact@k",
        )
    },
    **{
        f"cost.{c}": "USD"
        for c in ("per_1k_requests_usd", "monthly_usd", "tco_monthly_usd", "hourly_usd")
    },
    "traffic.peak_qps": "QPS",
    "dropped": "requests",
    "dropped_pct": "%",
    "total_replicas": "replicas",
    "sla.met": "",
    "sla.attainment": "",
}

OPS: dict[str, Callable[[Any, Any], bool]] = {
    "<=": operator.le,
    "<": operator.lt,
    ">=": operator.ge,
    ">": operator.gt,
    "==": operator.eq,
    "!=": operator.ne,
}
_SELECTOR_KEYS = ("run", "label", "pipeline_contains")
DEFAULT_HOURS_PER_MONTH = 730.0


def _check_metric(metric: Any, where: str) -> str:
    if metric not in METRICS:
        raise ConfigError(
            f"{where}: unknown metric {metric!r}; valid metrics: {', '.join(METRICS)}"
        )
    return str(metric)


def fmt(value: Any, unit: str = "") -> str:
    """A number as people read it in a reason: 4 significant digits, ``$`` for money."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float) and math.isnan(value):
        return "n/a"
    if unit == "USD":
        number = float(value)
        return f"${number:,.2f}" if abs(number) >= 100 else f"${number:.4g}"
    text = f"{value:,.4g}" if isinstance(value, float) else f"{value:,}"
    return f"{text} {unit}" if unit and unit != "%" else f"{text}{unit}"


def metric_value(result: Mapping[str, Any], metric: str) -> Any:
    """The value of ``metric`` in a ``result.json`` document; None if the run lacks it."""
    _check_metric(metric, "metric")
    if metric == "total_replicas":
        try:
            return sum(int(s["replicas"]) for s in result["stages"])
        except (KeyError, TypeError, ValueError):
            return None
    if metric == "dropped_pct":
        sim = result.get("simulation") or {}
        measured = (sim.get("requests") or {}).get("measured")
        if measured is None:
            measured = (result.get("traffic") or {}).get("requests")
        dropped = result.get("dropped")
        if not measured or dropped is None:
            return None
        return 100.0 * float(dropped) / float(measured)
    node: Any = result
    for part in metric.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    if isinstance(node, float) and math.isnan(node):
        return None
    return node


@dataclass(frozen=True)
class Constraint:
    """``metric op value``, or ``metric op baseline`` within ``tolerance_pct``."""

    metric: str
    op: str
    value: float | bool | None = None
    relative_to: str | None = None
    tolerance_pct: float = 0.0

    def __post_init__(self) -> None:
        where = f"constraint on {self.metric!r}"
        _check_metric(self.metric, "policy constraint")
        if self.op not in OPS:
            raise ConfigError(f"{where}: unknown op {self.op!r}; valid ops: {', '.join(OPS)}")
        if self.relative_to is None:
            if isinstance(self.value, bool) or (
                isinstance(self.value, int | float) and math.isfinite(self.value)
            ):
                return
            raise ConfigError(f"{where}: needs a finite number (or true/false) as value")
        if self.relative_to != "baseline":
            raise ConfigError(f"{where}: relative_to must be 'baseline', got {self.relative_to!r}")
        if self.value is not None:
            raise ConfigError(f"{where}: give either value or relative_to, not both")
        if self.op in ("==", "!="):
            raise ConfigError(f"{where}: a relative constraint needs <=, <, >= or >")
        if not (math.isfinite(self.tolerance_pct) and self.tolerance_pct >= 0):
            raise ConfigError(f"{where}: tolerance_pct must be >= 0, got {self.tolerance_pct}")

    @property
    def unit(self) -> str:
        return METRICS[self.metric]

    def describe(self) -> str:
        if self.relative_to is None:
            return f"{self.metric} {self.op} {fmt(self.value, self.unit)}"
        sign = "-" if self.op.startswith(">") else "+"
        return f"{self.metric} {self.op} baseline {sign} {self.tolerance_pct:g}%"

    def threshold(self, baseline: Mapping[str, Any] | None) -> Any:
        """The bound to compare with (relative bounds from the baseline's value)."""
        if self.relative_to is None:
            return self.value
        base = metric_value(baseline, self.metric) if baseline is not None else None
        if base is None:
            return None
        factor = (
            1 - self.tolerance_pct / 100
            if self.op.startswith(">")
            else 1 + self.tolerance_pct / 100
        )
        return float(base) * factor

    def check(self, result: Mapping[str, Any], baseline: Mapping[str, Any] | None) -> Check:
        """Pass or fail ``result``, with the numbers in the reason."""
        value = metric_value(result, self.metric)
        bound = self.threshold(baseline)
        origin = ""
        if self.relative_to is not None and bound is not None:
            base = metric_value(baseline or {}, self.metric)
            sign = "-" if self.op.startswith(">") else "+"
            origin = f" (baseline {fmt(base, self.unit)} {sign}{self.tolerance_pct:g}%)"
        if bound is None:
            return Check(
                self.describe(), False, f"{self.describe()}: baseline lacks {self.metric}", math.inf
            )
        if value is None:
            wanted = f"{self.op} {fmt(bound, self.unit)}"
            reason = f"{self.metric} missing from result.json: cannot check {wanted}"
            return Check(self.describe(), False, reason, math.inf)
        if isinstance(value, str) or not isinstance(value, int | float):
            reason = f"{self.metric} is not a number ({value!r}): cannot check"
            return Check(self.describe(), False, reason, math.inf)
        ok = bool(OPS[self.op](value, bound))
        shown = f"{self.metric} {fmt(value, self.unit)}"
        if ok:
            return Check(
                self.describe(), True, f"{shown} {self.op} {fmt(bound, self.unit)}{origin}", 0.0
            )
        gap = abs(float(value) - float(bound))
        shortfall = 1.0 if isinstance(bound, bool) else gap / max(abs(float(bound)), 1e-12)
        miss = "" if isinstance(bound, bool) else f", misses by {fmt(gap, self.unit)}"
        reason = f"{shown} is not {self.op} {fmt(bound, self.unit)}{origin}{miss}"
        return Check(self.describe(), False, reason, shortfall)


@dataclass(frozen=True)
class Budget:
    """A monthly budget on ``metric`` (instances by default; ``cost.tco_monthly_usd`` for TCO).

    ``qps`` and ``hours_per_month`` give the traffic the budget pays for; None means each
    run's own peak QPS around the clock and its own cost assumption for hours per month.
    """

    monthly_usd: float
    qps: float | None = None
    hours_per_month: float | None = None
    metric: str = "cost.monthly_usd"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.monthly_usd) and self.monthly_usd > 0):
            raise ConfigError(f"budget.monthly_usd must be positive, got {self.monthly_usd}")
        for name in ("qps", "hours_per_month"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ConfigError(f"budget.{name} must be positive or null, got {value}")
        if self.metric not in ("cost.monthly_usd", "cost.tco_monthly_usd"):
            raise ConfigError(
                "budget.metric must be cost.monthly_usd or cost.tco_monthly_usd, "
                f"got {self.metric!r}"
            )

    def traffic(self, result: Mapping[str, Any]) -> tuple[float | None, float]:
        """``(qps, hours per month)`` the budget pays for, for this run."""
        qps = self.qps if self.qps is not None else metric_value(result, "traffic.peak_qps")
        hours = self.hours_per_month
        if hours is None:
            assumed = ((result.get("cost") or {}).get("assumptions") or {}).get("hours_per_month")
            hours = float(assumed) if assumed else DEFAULT_HOURS_PER_MONTH
        return (float(qps) if qps else None), hours

    def monthly_requests(self, result: Mapping[str, Any]) -> float | None:
        qps, hours = self.traffic(result)
        return None if qps is None else qps * 3600.0 * hours

    def ceiling_per_1k_usd(self, result: Mapping[str, Any]) -> float | None:
        """The most a thousand requests may cost for the budget to pay for the traffic."""
        requests = self.monthly_requests(result)
        return None if not requests else self.monthly_usd / requests * 1000.0

    def check(self, result: Mapping[str, Any]) -> Check:
        name = f"budget {fmt(self.monthly_usd, 'USD')}/month"
        monthly = metric_value(result, self.metric)
        if monthly is None:
            return Check(name, False, f"{self.metric} missing: cannot check the budget", math.inf)
        qps, hours = self.traffic(result)
        ceiling = self.ceiling_per_1k_usd(result)
        ok = float(monthly) <= self.monthly_usd
        verb = "<=" if ok else "is over"
        reason = (
            f"budget: {self.metric} {fmt(monthly, 'USD')}/month {verb} "
            f"{fmt(self.monthly_usd, 'USD')}/month"
        )
        if ceiling is not None and qps is not None:
            per_1k = float(monthly) / (qps * 3600.0 * hours) * 1000.0
            reason += (
                f"; i.e. {fmt(per_1k, 'USD')} per 1k requests against a ceiling of "
                f"{fmt(ceiling, 'USD')} per 1k ({qps * 3600.0 * hours / 1e6:,.1f}M requests/month "
                f"at {qps:g} QPS x {hours:g} h)"
            )
        shortfall = 0.0 if ok else (float(monthly) - self.monthly_usd) / self.monthly_usd
        return Check(name, ok, reason, shortfall)


@dataclass(frozen=True)
class Check:
    """One constraint applied to one run."""

    constraint: str
    passed: bool
    reason: str
    shortfall: float = 0.0  # relative distance to the bound; 0 when met, inf when unknown


@dataclass(frozen=True)
class GateResult:
    """Whether a run passes every constraint, and one reason (with numbers) per constraint."""

    passed: bool
    reasons: list[str]
    checks: tuple[Check, ...] = ()

    @property
    def failures(self) -> list[str]:
        return [c.reason for c in self.checks if not c.passed]

    @property
    def shortfall(self) -> float:
        """Sum of relative misses: how far from passing (0 when it passes)."""
        return sum(c.shortfall for c in self.checks if not c.passed)


@dataclass(frozen=True)
class Policy:
    """Hard constraints, an optional budget and an optional baseline run selector."""

    constraints: tuple[Constraint, ...] = ()
    budget: Budget | None = None
    baseline: str | dict[str, str] | None = None
    name: str = "policy"
    notes: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.constraints and self.budget is None:
            raise ConfigError(f"policy {self.name!r} has no constraints and no budget")
        check_selector(self.baseline)

    @property
    def relative(self) -> tuple[Constraint, ...]:
        return tuple(c for c in self.constraints if c.relative_to is not None)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], name: str = "policy") -> Policy:
        """Validate a parsed policy document (unknown keys are errors, not ignored)."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"policy {name!r} must be a mapping, got {type(data).__name__}")
        unknown = set(data) - {"name", "constraints", "budget", "baseline", "description"}
        if unknown:
            raise ConfigError(
                f"policy {name!r}: unknown key(s) {sorted(unknown)}; "
                "valid: name, description, constraints, budget, baseline"
            )
        constraints = []
        for i, item in enumerate(data.get("constraints") or []):
            if not isinstance(item, Mapping):
                raise ConfigError(f"policy constraint {i} must be a mapping, got {item!r}")
            extra = set(item) - {"metric", "op", "value", "relative_to", "tolerance_pct"}
            if extra or "metric" not in item or "op" not in item:
                raise ConfigError(
                    f"policy constraint {i} ({dict(item)}) needs metric and op, plus value or "
                    "relative_to: baseline (and tolerance_pct)"
                    + (f"; unknown key(s) {sorted(extra)}" if extra else "")
                )
            constraints.append(Constraint(**item))
        budget = data.get("budget")
        if budget is not None:
            if not isinstance(budget, Mapping) or "monthly_usd" not in budget:
                raise ConfigError(f"policy budget needs monthly_usd, got {budget!r}")
            extra = set(budget) - {"monthly_usd", "qps", "hours_per_month", "metric"}
            if extra:
                raise ConfigError(f"policy budget: unknown key(s) {sorted(extra)}")
            budget = Budget(**budget)
        return cls(
            constraints=tuple(constraints),
            budget=budget,
            baseline=data.get("baseline"),
            name=str(data.get("name") or name),
        )

    @classmethod
    def load(cls, path: str | Path) -> Policy:
        """Read a policy YAML file (``ConfigError`` if missing, unparsable or invalid)."""
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"policy file {path} does not exist") from None
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"policy file {path}: {' '.join(str(exc).split())}") from None
        return cls.from_dict(data or {}, name=path.stem)

    def describe(self) -> list[str]:
        """The constraints in words, one per line."""
        lines = [c.describe() for c in self.constraints]
        if self.budget is not None:
            traffic = (
                "each run's peak QPS" if self.budget.qps is None else f"{self.budget.qps:g} QPS"
            )
            lines.append(
                f"{self.budget.metric} <= {fmt(self.budget.monthly_usd, 'USD')}/month "
                f"(budget, paying for {traffic} around the clock)"
            )
        return lines

    def check(
        self, result: Mapping[str, Any], baseline: Mapping[str, Any] | None = None
    ) -> GateResult:
        """Apply every constraint to ``result``; relative ones only when a baseline is given."""
        checks = [
            c.check(result, baseline)
            for c in self.constraints
            if c.relative_to is None or baseline is not None
        ]
        if self.budget is not None:
            checks.append(self.budget.check(result))
        return GateResult(all(c.passed for c in checks), [c.reason for c in checks], tuple(checks))

    def unapplied(self, baseline: Mapping[str, Any] | None) -> list[str]:
        """Notes on relative constraints that could not be applied (no baseline marked)."""
        if baseline is not None:
            return []
        return [
            f"not applied: {c.describe()} (no baseline run marked: set baseline: in the policy "
            "or pass --baseline)"
            for c in self.relative
        ]


def check_selector(selector: Any) -> None:
    """A baseline selector: a run name or label, or a mapping of run/label/pipeline_contains."""
    if selector is None or isinstance(selector, str):
        return
    if (
        isinstance(selector, Mapping)
        and selector
        and set(selector) <= set(_SELECTOR_KEYS)
        and all(isinstance(v, str | int) for v in selector.values())
    ):
        return
    raise ConfigError(
        f"baseline selector {selector!r} must be a run name or a mapping with key(s) "
        f"{', '.join(_SELECTOR_KEYS)}"
    )


def check_runs(
    policy: Policy,
    results: Sequence[Mapping[str, Any]],
    baseline: Mapping[str, Any] | None = None,
) -> list[GateResult]:
    """:meth:`Policy.check` for each of ``results``."""
    return [policy.check(r, baseline) for r in results]
