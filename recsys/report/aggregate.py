"""Every run below some directories, as one flat row each; unusable runs listed with a reason.

A run is a directory holding ``result.json`` (``recsys-sim`` writes it last, so its presence
means the run finished). A Hydra job directory (one with ``.hydra/``) without it, or a
``result.json`` that is corrupt or incomplete, becomes a :class:`FailedRun`: never a table
row with wrong numbers, never a crash.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from recsys.errors import ConfigError, DataError
from recsys.gate import check_selector
from recsys.result import SCHEMA_VERSION, read_result

#: Table columns, in order (``replicas_<stage>`` columns are appended per stage seen).
COLUMNS = (
    "run",
    "label",
    "retrieval",
    "retrieval_params",
    "rankers",
    "dataset",
    "ndcg@10",
    "recall@10",
    "retrieval_recall@k",
    "k",
    "peak_qps",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "p999_ms",
    "replicas",
    "total_replicas",
    "per_1k_requests_usd",
    "monthly_usd",
    "tco_monthly_usd",
    "sla_p99_ms",
    "sla_met",
    "dropped",
    "run_dir",
)
_SEARCH_PARAMS = ("nprobe", "ef_search")


@dataclass(frozen=True)
class Run:
    """One finished run: its name, directory, ``result.json`` and flattened table row."""

    name: str
    dir: Path
    result: dict[str, Any] = field(repr=False)
    row: dict[str, Any] = field(repr=False)

    @property
    def label(self) -> str:
        return str(self.row["label"])

    def __getitem__(self, column: str) -> Any:
        return self.row[column]


@dataclass(frozen=True)
class FailedRun:
    """A run directory that gave no usable result, and why."""

    name: str
    dir: Path
    reason: str


@dataclass(frozen=True)
class Runs:
    """The usable runs and the failed/incomplete ones, both in natural order of name."""

    runs: list[Run]
    failed: list[FailedRun]
    sources: tuple[Path, ...] = ()

    def __len__(self) -> int:
        return len(self.runs)

    def __iter__(self) -> Any:
        return iter(self.runs)

    def to_frame(self) -> pd.DataFrame:
        """One row per usable run (``COLUMNS`` plus ``replicas_<stage>``)."""
        if not self.runs:
            return pd.DataFrame(columns=list(COLUMNS))
        frame = pd.DataFrame([r.row for r in self.runs])
        extra = [c for c in frame.columns if c not in COLUMNS]
        return frame[[*COLUMNS, *extra]]

    def get(self, name: str) -> Run:
        for run in self.runs:
            if run.name == name:
                return run
        raise KeyError(name)

    def select(self, selector: str | Mapping[str, Any]) -> list[Run]:
        """Runs matching a selector (see :func:`matches`)."""
        check_selector(selector)
        return [r for r in self.runs if matches(r, selector)]

    def find(self, selector: str | Mapping[str, Any]) -> Run:
        """The one run ``selector`` names (``ConfigError`` if none or several)."""
        found = self.select(selector)
        if len(found) == 1:
            return found[0]
        names = ", ".join(r.name for r in (found or self.runs)[:20])
        if not found:
            raise ConfigError(f"baseline {selector!r} matches no usable run; runs: {names}")
        raise ConfigError(
            f"baseline {selector!r} matches {len(found)} runs ({names}); "
            "name one run, e.g. {run: NAME}"
        )


def matches(run: Run, selector: str | Mapping[str, Any]) -> bool:
    """A string names a run (its name, directory name or a path suffix) or its exact label;
    a mapping needs every key to match: ``run`` (as a string would), ``label`` (exact) and
    ``pipeline_contains`` (a substring of the label or of any stage kind)."""
    if isinstance(selector, str):
        return _names_run(run, selector) or run.label == selector
    ok = True
    if "run" in selector:
        ok &= _names_run(run, str(selector["run"]))
    if "label" in selector:
        ok &= run.label == str(selector["label"])
    if "pipeline_contains" in selector:
        needle = str(selector["pipeline_contains"])
        kinds = [str(p.get("kind", "")) for p in run.result["pipeline"]]
        ok &= needle in run.label or any(needle in k for k in kinds)
    return bool(ok)


def _names_run(run: Run, name: str) -> bool:
    name = name.strip().rstrip("/")
    return name in (run.name, run.dir.name, str(run.dir)) or str(run.dir).endswith("/" + name)


def pairing_label(pipeline: Sequence[Mapping[str, Any]]) -> str:
    """``faiss[HNSW32 ef_search=64] + lightgbm``: retrieval (index and search knobs), rankers."""
    parts = []
    for stage in pipeline:
        kind, params = str(stage.get("kind", "?")), stage.get("params") or {}
        if params.get("factory"):
            knobs = " ".join(
                f"{k}={params[k]}" for k in _SEARCH_PARAMS if params.get(k) is not None
            )
            index = f"{params['factory']} {knobs}".strip()
            kind = f"{kind.split('_', maxsplit=1)[0]}[{index}]"
        parts.append(kind)
    return " + ".join(parts)


def disambiguate_labels(runs: Sequence[Run]) -> None:
    """Runs whose pipelines share a label but differ in a stage's parameters (a sweep of
    ``lightgbm`` and ``lightgbm_small``, of two MLP sizes) get the differing parameters
    appended to their label, e.g. ``... + lightgbm (lightgbm: n_estimators=50, num_leaves=15)``,
    so tables, plots and the recommendation never show two different configurations under
    one name. Runs that differ only in traffic or hardware keep one label (those are columns).
    """
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(run.label, []).append(run)
    for label, group in groups.items():
        if len(group) < 2:
            continue
        pipelines = [r.result["pipeline"] for r in group]
        if len({len(p) for p in pipelines}) != 1:
            continue
        differing = [
            (i, keys) for i in range(len(pipelines[0])) if (keys := _differing(pipelines, i))
        ]
        if not differing:
            continue
        for run, pipeline in zip(group, pipelines, strict=True):
            parts = []
            for i, keys in differing:
                params = pipeline[i].get("params") or {}
                values = ", ".join(f"{k}={params.get(k)}" for k in keys)
                parts.append(f"{pipeline[i].get('kind', '?')}: {values}")
            run.row["label"] = f"{label} ({'; '.join(parts)})"


def _differing(pipelines: Sequence[Sequence[Mapping[str, Any]]], stage: int) -> list[str]:
    """The parameter names of stage ``stage`` whose values are not the same in all pipelines."""
    params = [p[stage].get("params") or {} for p in pipelines]
    keys = sorted({k for ps in params for k in ps}, key=str)
    return [
        k
        for k in keys
        if len({json.dumps(ps.get(k), sort_keys=True, default=str) for ps in params}) > 1
    ]


def _num(result: Mapping[str, Any], path: str, required: bool = True) -> float:
    node: Any = result
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            if required:
                raise ValueError(f"result.json lacks {path}")
            return math.nan
        node = node[part]
    if node is None:
        return math.nan
    if isinstance(node, bool) or not isinstance(node, int | float):
        raise ValueError(f"result.json {path} is not a number: {node!r}")
    return float(node)


def flatten_result(result: Mapping[str, Any], name: str, run_dir: Path) -> dict[str, Any]:
    """One table row from a ``result.json``; ``ValueError`` naming what is missing or wrong."""
    if result.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(f"unsupported schema_version {result.get('schema_version')!r}")
    pipeline, stages = result["pipeline"], result["stages"]
    if (
        not isinstance(pipeline, list)
        or not pipeline
        or not all(isinstance(p, Mapping) and "kind" in p for p in pipeline)
    ):
        raise ValueError("result.json pipeline must be a non-empty list of stages with a kind")
    if not isinstance(stages, list) or not all(
        isinstance(s, Mapping) and "name" in s and isinstance(s.get("replicas"), int)
        for s in stages
    ):
        raise ValueError("result.json stages must be a list of {name, replicas, ...}")
    met = (result["sla"] or {}).get("met") if isinstance(result["sla"], Mapping) else None
    if not isinstance(met, bool):
        raise ValueError(f"result.json sla.met must be true or false, got {met!r}")
    retrieval = pipeline[0]
    params = retrieval.get("params") or {}
    quality = result["quality"] if isinstance(result["quality"], Mapping) else {}
    row: dict[str, Any] = {
        "run": name,
        "label": pairing_label(pipeline),
        "retrieval": str(retrieval["kind"]),
        "retrieval_params": ", ".join(f"{k}={v}" for k, v in params.items() if v is not None),
        "rankers": " + ".join(str(p["kind"]) for p in pipeline[1:]),
        "dataset": str(quality.get("dataset", "")),
        "ndcg@10": _num(result, "quality.ndcg@10"),
        "recall@10": _num(result, "quality.recall@10", required=False),
        "retrieval_recall@k": _num(result, "quality.retrieval_recall@k", required=False),
        "k": _num(result, "quality.k", required=False),
        "peak_qps": _num(result, "traffic.peak_qps"),
        **{f"{p}_ms": _num(result, f"latency_ms.{p}") for p in ("p50", "p95", "p99", "p999")},
        "replicas": ", ".join(f"{s['name']}={s['replicas']}" for s in stages),
        "total_replicas": sum(int(s["replicas"]) for s in stages),
        **{
            c: _num(result, f"cost.{c}")
            for c in ("per_1k_requests_usd", "monthly_usd", "tco_monthly_usd")
        },
        "sla_p99_ms": _num(result, "sla.p99_ms", required=False),
        "sla_met": met,
        "dropped": int(_num(result, "dropped")),
        "run_dir": str(run_dir),
    }
    for stage in stages:
        row[f"replicas_{stage['name']}"] = int(stage["replicas"])
    return row


def _natural(text: str) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


def _run_dirs(root: Path) -> tuple[set[Path], set[Path]]:
    """Directories below ``root`` with a ``result.json``, and Hydra job directories."""
    finished = {p.parent for p in root.rglob("result.json") if p.is_file()}
    if (root / "result.json").is_file():
        finished.add(root)
    hydra = {p.parent for p in root.rglob(".hydra") if p.is_dir()}
    return finished, hydra


def _name(run_dir: Path, root: Path, prefix: bool) -> str:
    """The run's path below the given directory (``3`` for job 3 of a sweep directory), the
    directory's own name if it is the run, prefixed by it when several were given."""
    rel = run_dir.relative_to(root).as_posix()
    if rel == ".":
        return root.name
    return f"{root.name}/{rel}" if prefix else rel


def collect_runs(dirs: Iterable[str | Path]) -> Runs:
    """Read every ``result.json`` below ``dirs`` (recursively).

    ``DataError`` if a directory does not exist or nothing at all (no ``result.json``, no
    Hydra job directory) is found; bad runs are listed in :attr:`Runs.failed`.
    """
    roots = [Path(d) for d in dirs]
    if not roots:
        raise DataError("no run directories given")
    runs: dict[Path, Run] = {}
    failed: dict[Path, FailedRun] = {}
    for given in roots:
        if not given.exists():
            raise DataError(f"{given}: no such directory")
        if given.is_file() and given.name != "result.json":
            raise DataError(f"{given}: not a directory (give run directories)")
        root = (given.parent if given.is_file() else given).resolve()
        finished, hydra = _run_dirs(root)
        for run_dir in sorted(finished | hydra):
            if run_dir in runs or run_dir in failed:
                continue
            name = _name(run_dir, root, prefix=len(roots) > 1)
            if run_dir not in finished:
                reason = (
                    "no result.json: the run did not finish (or is still running); "
                    "see its .log file"
                )
                failed[run_dir] = FailedRun(name, run_dir, reason)
                continue
            try:
                result = read_result(run_dir / "result.json")
                row = flatten_result(result, name, run_dir)
            except (ValueError, TypeError, KeyError, OSError) as exc:
                reason = str(exc).replace(str(run_dir / "result.json") + ": ", "")
                failed[run_dir] = FailedRun(name, run_dir, f"result.json unusable: {reason}")
                continue
            runs[run_dir] = Run(name, run_dir, result, row)
    if not runs and not failed:
        raise DataError(
            f"no result.json found below {', '.join(str(r) for r in roots)} "
            "(run recsys-sim first, or point at its outputs/ or multirun/ directory)"
        )
    disambiguate_labels(list(runs.values()))
    return Runs(
        runs=sorted(runs.values(), key=lambda r: _natural(r.name)),
        failed=sorted(failed.values(), key=lambda r: _natural(r.name)),
        sources=tuple(roots),
    )
