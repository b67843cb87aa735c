"""The real stages of a fitted :class:`~recsys.pipeline.Pipeline` as load-test stages.

Requests carry real data from stage to stage: retrieval gets a batch of user ids and returns
each user's candidate row; a ranker gets candidate rows (possibly from different retrieval
batches), stacks them into one :class:`~recsys.stages.base.Candidates` batch, ranks it, and
returns each request's row. The work per batch is what the profiler times
(``retriever.retrieve(users, k)``, ``ranker.rank(candidates, n)``) plus the stacking of rows,
which a real server pays too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from recsys.experiment import ServingOptions
from recsys.loadtest.server import LiveStage
from recsys.pipeline import Pipeline
from recsys.stages.base import Candidates, Ranker, Retriever


class Row:
    """Row ``i`` of a candidate batch (a view, not a copy)."""

    __slots__ = ("batch", "i")

    def __init__(self, batch: Candidates, i: int) -> None:
        self.batch = batch
        self.i = i


def rows(batch: Candidates) -> list[Row]:
    return [Row(batch, i) for i in range(len(batch))]


def stack(parts: Sequence[Row]) -> Candidates:
    """One batch from rows; the batch itself when the rows are all of it, in order."""
    first = parts[0].batch
    if len(parts) == len(first) and all(r.batch is first and r.i == i for i, r in enumerate(parts)):
        return first
    idx = [r.i for r in parts]
    if all(r.batch is first for r in parts):
        return first.take(np.asarray(idx))
    return Candidates(
        np.array([r.batch.users[r.i] for r in parts]),
        np.stack([r.batch.items[r.i] for r in parts]),
        np.stack([r.batch.scores[r.i] for r in parts]),
    )


class RetrievalRunner:
    """User ids in, candidate rows out."""

    def __init__(self, retriever: Retriever, k: int) -> None:
        self.retriever = retriever
        self.k = k

    def __call__(self, payloads: list[Any]) -> list[Row]:
        users = np.fromiter(payloads, dtype=np.int64, count=len(payloads))
        return rows(self.retriever.retrieve(users, self.k))


class RankingRunner:
    """Candidate rows in, the top ``n`` of each row out."""

    def __init__(self, ranker: Ranker, n: int) -> None:
        self.ranker = ranker
        self.n = n

    def __call__(self, payloads: list[Any]) -> list[Row]:
        batch = stack(payloads)
        return rows(self.ranker.rank(batch, min(self.n, batch.k)))


def live_stages(
    pipeline: Pipeline,
    serving: Mapping[str, ServingOptions],
    replicas: Mapping[str, int],
) -> list[LiveStage]:
    """One :class:`LiveStage` per pipeline stage, with that stage's serving settings.

    ``network_ms`` is ignored: the stages run in one process.
    """
    names = [d["stage"] for d in pipeline.describe()]
    runners: list[Any] = [RetrievalRunner(pipeline.retriever, pipeline.k)]
    runners += [RankingRunner(r, n) for r, n in pipeline.rankers]
    out = []
    for name, runner in zip(names, runners, strict=True):
        opts = serving[name]
        out.append(
            LiveStage(
                name=name,
                run=runner,
                replicas=int(replicas[name]),
                workers_per_replica=opts.workers_per_replica,
                max_batch=opts.max_batch,
                max_wait_ms=opts.max_wait_ms,
                queue_capacity=opts.queue_capacity,
                timeout_ms=opts.timeout_ms,
            )
        )
    return out
