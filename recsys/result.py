"""The ``result.json`` contract (schema version 1) and atomic writing of run outputs."""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

SCHEMA_VERSION = 1
REQUIRED_KEYS = (
    "schema_version",
    "run",
    "pipeline",
    "quality",
    "traffic",
    "latency_ms",
    "stages",
    "dropped",
    "cost",
    "sla",
    "config",
)


def jsonable(value: Any) -> Any:
    """Numpy scalars/arrays to Python; NaN/inf to None (JSON has no NaN)."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [jsonable(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def check_result(result: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` naming any key of the contract that is missing."""
    missing = [k for k in REQUIRED_KEYS if k not in result]
    if missing:
        raise ValueError(f"result lacks required key(s): {missing}")
    for key in ("p50", "p95", "p99", "p999"):
        if key not in result["latency_ms"]:
            raise ValueError(f"result.latency_ms lacks {key!r}")
    for key in ("per_1k_requests_usd", "monthly_usd", "tco_monthly_usd"):
        if key not in result["cost"]:
            raise ValueError(f"result.cost lacks {key!r}")


def atomic_write_text(path: Path, text: str) -> None:
    """Write to a temporary file in the same directory, then rename: never a half file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_result(path: Path, result: Mapping[str, Any]) -> None:
    """Validate against the contract and write ``result.json`` atomically."""
    check_result(result)
    atomic_write_text(path, json.dumps(jsonable(result), indent=2, sort_keys=False) + "\n")


def read_result(path: Path) -> dict[str, Any]:
    """Read and validate one ``result.json``; ``ValueError`` if corrupt or incomplete."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")
    check_result(data)
    return data
