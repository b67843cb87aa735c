"""What a sweep optimises, and the comparison report at the end of a multirun.

``recsys-sim`` returns :meth:`Objective.value` of its ``result.json`` to Hydra, which the
Optuna sweeper minimises or maximises (a single run ignores it):

- ``kind: metric``: one ``result.json`` metric (default ``latency_ms.p99``);
- ``kind: composite``: ``quality_weight * (1 - ndcg) + cost_weight * cost / cost_ref``, plus
  ``sla_penalty`` when the run misses its SLA (so a sweep cannot win by being late);
- ``kind: multi``: a tuple of metrics for a multi-objective study (the sweeper preset gives
  each one's direction), e.g. ``(quality.ndcg@10, cost.per_1k_requests_usd)``.

:class:`ReportCallback` is a Hydra callback: at the end of a multirun it runs the comparison
report (:mod:`recsys.report.compare`) over the sweep directory, so a grid sweep and its report
are one command.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback

from recsys.errors import ConfigError
from recsys.gate import METRICS, metric_value

log = logging.getLogger(__name__)

KINDS = ("metric", "composite", "multi")


def _metric(name: Any, where: str) -> str:
    if name not in METRICS:
        raise ConfigError(f"{where}: unknown metric {name!r}; valid metrics: {', '.join(METRICS)}")
    return str(name)


@dataclass(frozen=True)
class Objective:
    """The value a run reports to a sweeper (see the module docstring)."""

    kind: str = "metric"
    metric: str = "latency_ms.p99"
    metrics: tuple[str, ...] = ()
    quality_metric: str = "quality.ndcg@10"
    cost_metric: str = "cost.per_1k_requests_usd"
    quality_weight: float = 0.7
    cost_weight: float = 0.3
    cost_ref: float = 1.0
    sla_penalty: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"objective.kind must be one of {KINDS}, got {self.kind!r}")
        if self.kind == "metric":
            _metric(self.metric, "objective.metric")
        elif self.kind == "composite":
            _metric(self.quality_metric, "objective.quality_metric")
            _metric(self.cost_metric, "objective.cost_metric")
            if not (math.isfinite(self.cost_ref) and self.cost_ref > 0):
                raise ConfigError(f"objective.cost_ref must be positive, got {self.cost_ref}")
            for name in ("quality_weight", "cost_weight", "sla_penalty"):
                if not (math.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                    raise ConfigError(f"objective.{name} must be >= 0")
        else:
            if len(self.metrics) < 2:
                raise ConfigError("objective.metrics needs two or more metrics for kind multi")
            for i, m in enumerate(self.metrics):
                _metric(m, f"objective.metrics[{i}]")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Objective:
        """From the ``objective`` config node (None: the default, p99)."""
        if data is None:
            return cls()
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError(
                f"objective: unknown key(s) {sorted(unknown)}; "
                f"valid: {', '.join(cls.__dataclass_fields__)}"
            )
        fields = dict(data)
        if "metrics" in fields:
            fields["metrics"] = tuple(fields["metrics"] or ())
        return cls(**fields)

    def _get(self, result: Mapping[str, Any], metric: str) -> float:
        value = metric_value(result, metric)
        if isinstance(value, bool):
            return float(value)
        if not isinstance(value, int | float) or not math.isfinite(value):
            raise ConfigError(f"objective: the run has no numeric {metric} (got {value!r})")
        return float(value)

    def value(self, result: Mapping[str, Any]) -> float | tuple[float, ...]:
        """The objective of one run's ``result.json``."""
        if self.kind == "metric":
            return self._get(result, self.metric)
        if self.kind == "multi":
            return tuple(self._get(result, m) for m in self.metrics)
        quality = self._get(result, self.quality_metric)
        cost = self._get(result, self.cost_metric)
        missed = not bool((result.get("sla") or {}).get("met", False))
        return (
            self.quality_weight * (1.0 - quality)
            + self.cost_weight * cost / self.cost_ref
            + (self.sla_penalty if missed else 0.0)
        )


def report_sweep(
    sweep_dir: str | Path,
    out: str | Path | None = None,
    policy: str | Path | Mapping[str, Any] | None = None,
    baseline: str | Mapping[str, Any] | None = None,
) -> dict[str, Path]:
    """The comparison report of every run below ``sweep_dir`` (into ``sweep_dir/report``)."""
    from recsys.cli.report import DEFAULT_POLICY
    from recsys.gate import Policy
    from recsys.report.compare import compare, write_report

    if policy is None or isinstance(policy, str | Path):
        rules = Policy.load(policy or DEFAULT_POLICY)
    else:
        rules = Policy.from_dict(policy, name=str(policy.get("name", "policy")))
    comparison = compare([sweep_dir], rules, baseline)
    return write_report(comparison, Path(out) if out else Path(sweep_dir) / "report")


class ReportCallback(Callback):
    """Hydra callback: write the comparison report when a multirun ends.

    Configure under ``hydra.callbacks`` (see ``conf/experiment/grid48.yaml``). A report that
    cannot be written is logged, never raised: the sweep's own results stay where they are.
    """

    def __init__(
        self,
        out: str | None = None,
        policy: str | None = None,
        baseline: str | Mapping[str, Any] | None = None,
    ) -> None:
        self.out, self.policy, self.baseline = out, policy, baseline

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        try:
            files = report_sweep(sweep_dir, self.out, self.policy, self.baseline)
        except Exception as exc:  # report after the sweep: never lose the sweep over it
            log.error("recsys: the sweep report failed: %s", exc)
            return
        log.info("recsys: wrote the sweep report %s", files["report.html"])
        print(f"sweep report: {files['report.html']}")


def directions(objective: Objective) -> Sequence[str]:
    """Default Optuna directions: maximise quality metrics, minimise the rest."""
    names = objective.metrics if objective.kind == "multi" else (objective.metric,)
    if objective.kind == "composite":
        return ("minimize",)
    return tuple("maximize" if m.startswith("quality.") else "minimize" for m in names)
