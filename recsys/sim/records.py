"""Per-request log the engines fill in: compact typed arrays, one slot per request and stage.

Like Ciw's data records, every request keeps its arrival time and, per stage, when it joined
the queue, when its batch started, its service time, its batch size and the queue length it
found on arrival; plus its outcome (ok / timeout / shed), the stage that dropped it and the
time it left the system. Nothing is lost: every request ends with exactly one outcome.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

PENDING, OK, TIMEOUT, SHED = -1, 0, 1, 2
OUTCOMES = ("ok", "timeout", "shed")


class RequestLog:
    """Filled during a run (``array.array`` slots are cheap to set from Python), read after.

    Engines that fill NumPy arrays directly build it with :meth:`from_arrays`; the per-stage
    fields are then rows of the ``[n_stages, n]`` arrays kept in ``stacked``.
    """

    enqueue_s: list[Any]
    start_s: list[Any]
    service_s: list[Any]
    batch_size: list[Any]
    queue_len: list[Any]
    outcome: Any
    drop_stage: Any
    done_s: Any
    stacked: dict[str, np.ndarray]

    def __init__(self, arrival_s: np.ndarray, n_stages: int) -> None:
        n = int(arrival_s.size)
        self.n = n
        self.arrival_s = arrival_s

        def floats() -> array:
            return array("d", [math.nan]) * n

        def ints() -> array:
            return array("q", [0]) * n

        self.enqueue_s = [floats() for _ in range(n_stages)]
        self.start_s = [floats() for _ in range(n_stages)]
        self.service_s = [floats() for _ in range(n_stages)]
        self.batch_size = [ints() for _ in range(n_stages)]
        self.queue_len = [ints() for _ in range(n_stages)]
        self.outcome = array("b", [PENDING]) * n
        self.drop_stage = array("b", [-1]) * n
        self.done_s = floats()
        self.stacked = {}

    @classmethod
    def from_arrays(
        cls,
        arrival_s: np.ndarray,
        *,
        enqueue_s: np.ndarray,
        start_s: np.ndarray,
        service_s: np.ndarray,
        batch_size: np.ndarray,
        queue_len: np.ndarray,
    ) -> RequestLog:
        """A log over caller-owned ``[n_stages, n]`` arrays (for engines that fill NumPy
        arrays directly); outcomes start pending."""
        log = cls.__new__(cls)
        n = int(arrival_s.size)
        log.n = n
        log.arrival_s = arrival_s
        log.stacked = {
            "enqueue_s": enqueue_s,
            "start_s": start_s,
            "service_s": service_s,
            "batch_size": batch_size,
            "queue_len": queue_len,
        }
        log.enqueue_s, log.start_s, log.service_s = list(enqueue_s), list(start_s), list(service_s)
        log.batch_size, log.queue_len = list(batch_size), list(queue_len)
        log.outcome = np.full(n, PENDING, dtype=np.int8)
        log.drop_stage = np.full(n, -1, dtype=np.int8)
        log.done_s = np.full(n, math.nan)
        return log

    def drop(self, rid: int, code: int, stage: int, t: float) -> None:
        """Record that request ``rid`` left the system at ``t`` without a reply."""
        self.outcome[rid] = code
        self.drop_stage[rid] = stage
        self.done_s[rid] = t

    def arrays(self) -> dict[str, np.ndarray]:
        """Zero-copy NumPy views of the log."""
        out: dict[str, np.ndarray] = {
            "arrival_s": self.arrival_s,
            "outcome": np.frombuffer(self.outcome, dtype=np.int8),
            "drop_stage": np.frombuffer(self.drop_stage, dtype=np.int8),
            "done_s": np.frombuffer(self.done_s, dtype=np.float64),
        }
        for s in range(len(self.enqueue_s)):
            out[f"enqueue_s/{s}"] = np.frombuffer(self.enqueue_s[s], dtype=np.float64)
            out[f"start_s/{s}"] = np.frombuffer(self.start_s[s], dtype=np.float64)
            out[f"service_s/{s}"] = np.frombuffer(self.service_s[s], dtype=np.float64)
            out[f"batch_size/{s}"] = np.frombuffer(self.batch_size[s], dtype=np.int64)
            out[f"queue_len/{s}"] = np.frombuffer(self.queue_len[s], dtype=np.int64)
        return out

    def to_frame(self, stage_names: Sequence[str]) -> pd.DataFrame:
        """One row per request: ``arrival_s``, per-stage ``{stage}_wait_ms`` /
        ``_service_ms`` / ``_batch_size`` (0 = never served there) / ``_queue_len`` /
        ``_start_s``, then ``e2e_ms``, ``outcome`` and ``drop_stage``."""
        a = self.arrays()
        cols: dict[str, np.ndarray] = {
            "request_id": np.arange(self.n, dtype=np.int64),
            "arrival_s": a["arrival_s"],
        }
        for s, name in enumerate(stage_names):
            enq, start = a[f"enqueue_s/{s}"], a[f"start_s/{s}"]
            ends = np.where(np.isnan(start), a["done_s"], start)  # a timed-out wait ends at drop
            cols[f"{name}_enqueue_s"] = enq
            cols[f"{name}_wait_ms"] = (ends - enq) * 1000.0
            cols[f"{name}_start_s"] = start
            cols[f"{name}_service_ms"] = a[f"service_s/{s}"] * 1000.0
            cols[f"{name}_batch_size"] = a[f"batch_size/{s}"].astype(np.int32)
            cols[f"{name}_queue_len"] = a[f"queue_len/{s}"].astype(np.int32)
        cols["done_s"] = a["done_s"]
        cols["e2e_ms"] = (a["done_s"] - a["arrival_s"]) * 1000.0
        frame = pd.DataFrame(cols)
        codes = a["outcome"]
        frame["outcome"] = pd.Categorical.from_codes(np.where(codes < 0, 0, codes), OUTCOMES)
        names = np.array([*stage_names, ""], dtype=object)
        frame["drop_stage"] = pd.Series(names[a["drop_stage"]], dtype="string").replace("", pd.NA)
        return frame
