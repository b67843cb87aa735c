"""A recommender as an ordered cascade: retrieval(k) -> ranker keeps n1 -> ... -> top final_n.

:class:`Pipeline` fits its stages in order on a :class:`~recsys.data.split.Split` (retriever on
train; each ranker on the previous stage's candidates for validation users, labelled by the
validation interactions), recommends, evaluates offline on the test part, and hands a
profiler one :class:`StageCall` per stage to time it alone on realistic inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Self

import numpy as np

from recsys.cache import ArtifactCache, data_fingerprint
from recsys.errors import ConfigError
from recsys.metrics_ranking import per_user_metrics, ranking_metrics, recall_against
from recsys.stages.base import Candidates, Ranker, Retriever
from recsys.stages.history import SeenItems


@dataclass(frozen=True)
class StageCall:
    """One stage, runnable alone: ``run(make_input(batch_size, rng))``.

    ``make_input`` also takes ``n_candidates`` (rankers only; at most ``n_in``) to time a
    ranker on shorter candidate lists. ``n_in``/``n_out`` are candidates per request.
    """

    name: str
    kind: str
    params: dict[str, Any]
    make_input: Callable[..., object]
    run: Callable[[object], object]
    n_in: int
    n_out: int


@dataclass(frozen=True)
class QualityReport:
    """Offline quality of a pipeline on the test part of a split.

    ``per_user`` holds each evaluated user's final-list metrics (``"ndcg@10"``...) and
    ``"user"``, their ids, in evaluation order: two pipelines evaluated on the same split
    give paired arrays (for a bootstrap of their difference).
    """

    metrics: dict[str, float]
    k: int
    n_users: int
    stages: list[dict[str, Any]] = field(default_factory=list)
    per_user: dict[str, np.ndarray] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {**self.metrics, "k": self.k, "n_users": self.n_users}


class Pipeline:
    """Retrieval of ``k`` candidates, then each ``(ranker, n)`` keeps its top ``n``, then the
    top ``final_n`` are the recommendation."""

    def __init__(
        self,
        retriever: Retriever,
        k: int,
        rankers: Sequence[tuple[Ranker, int]] = (),
        final_n: int = 10,
    ) -> None:
        self.retriever = retriever
        self.k = int(k)
        self.rankers = [(r, int(n)) for r, n in rankers]
        self.final_n = int(final_n)
        self.validate()

    def validate(self, n_items: int | None = None) -> None:
        """Stage sizes must shrink: ``n_items >= k >= n1 >= ... >= final_n > 0``."""
        if self.final_n <= 0:
            raise ConfigError(f"final_n must be positive, got {self.final_n}")
        if n_items is not None and self.k > n_items:
            raise ConfigError(f"k={self.k} exceeds the catalogue of {n_items} items")
        if self.k < self.final_n:
            raise ConfigError(f"k={self.k} is smaller than the final list final_n={self.final_n}")
        previous = ("k", self.k)
        for i, (ranker, n) in enumerate(self.rankers):
            label = f"ranker {i + 1} ({_kind(ranker)})"
            if n > previous[1]:
                raise ConfigError(
                    f"{label} keeps n={n} but gets only {previous[0]}={previous[1]} candidates"
                )
            if n < self.final_n:
                raise ConfigError(f"{label} keeps n={n} < final_n={self.final_n}")
            previous = (f"n{i + 1}", n)

    def describe(self) -> list[dict[str, Any]]:
        """``[{"stage", "kind", "params", "n"}]`` for ``result.json``."""
        out = [_describe("retrieval", self.retriever, self.k)]
        out += [
            _describe(name, r, n) for name, (r, n) in zip(self._names(), self.rankers, strict=True)
        ]
        return out

    def _names(self) -> list[str]:
        if len(self.rankers) == 1:
            return ["ranking"]
        return [f"ranking_{i + 1}" for i in range(len(self.rankers))]

    # -- training and serving -------------------------------------------------------------

    def fit(self, split: Any, cache: ArtifactCache | None = None) -> Self:
        """Fit retrieval on train, then each ranker on the candidates of validation users.

        With a ``cache``, every stage that can ``save``/``restore`` itself is restored when
        an artifact for the same training config, upstream stages and data exists, and
        stored after fitting otherwise (so a sweep trains each stage once). Afterwards the
        validation interactions count as history (they are excluded from recommendations),
        as they would be when serving after the validation period.
        """
        train = split.train
        train_fp = data_fingerprint(train) if cache is not None else ""
        retriever = self.retriever

        def fit_retriever() -> None:
            emb = getattr(retriever, "embedding", None)
            if emb is not None and not hasattr(emb, "item_embeddings_"):
                _fit_stage(cache, emb, stage_config(emb), train_fp, lambda: emb.fit(train))
            retriever.fit(train)

        upstream: dict[str, Any] = {
            "retrieval": _fit_stage(
                cache, retriever, stage_config(retriever), train_fp, fit_retriever
            ),
            # search-time knobs change the candidates the rankers learn from
            "search": {k: v for k, v in _params(retriever).items() if k in SERVING_ONLY},
            "k": self.k,
        }
        self.validate(train.n_items)
        candidates = retriever.retrieve(split.valid_users(), self.k)
        data_fp = data_fingerprint(train, split.valid) if cache is not None else ""
        for ranker, n in self.rankers:
            config = {"stage": stage_config(ranker), "upstream": upstream}
            key = _fit_stage(
                cache,
                ranker,
                config,
                data_fp,
                lambda r=ranker, c=candidates: r.fit(train, split.valid, c),
            )
            candidates = ranker.rank(candidates, n)
            upstream = {"ranker": key, "n": n, "previous": upstream}
        add_history = getattr(retriever, "add_history", None)
        if add_history is not None:
            add_history(split.valid)
        return self

    def cascade(self, users: np.ndarray) -> list[Candidates]:
        """The candidates after every stage (retrieval first), for ``users``."""
        out = [self.retriever.retrieve(np.asarray(users, np.int64), self.k)]
        for ranker, n in self.rankers:
            out.append(ranker.rank(out[-1], n))
        return out

    def recommend(self, users: np.ndarray) -> Candidates:
        """The final ``final_n`` recommendations of each user, best first."""
        return self.cascade(users)[-1].head(self.final_n)

    # -- offline evaluation ---------------------------------------------------------------

    def evaluate(self, split: Any, users: np.ndarray | None = None) -> QualityReport:
        """NDCG/recall/HR/MRR@10 and coverage of the final list; retrieval recall@k.

        Relevant items are a user's test items not already in their train/validation
        history (those are never recommended). ``users`` defaults to every test user.
        """
        users = split.test_users() if users is None else np.asarray(users, np.int64)
        truth = test_truth(split, users)
        stages = self.cascade(users)
        final = stages[-1].head(self.final_n)
        metrics = ranking_metrics(final.items, truth, split.train.n_items, k=10)
        n_users = metrics.pop("n_users")
        per_user = per_user_metrics(final.items, truth, split.train.n_items, k=10)
        per_user["user"] = users[per_user.pop("user_index")]
        retrieved = stages[0].items
        metrics["retrieval_recall@k"] = ranking_metrics(
            retrieved, truth, split.train.n_items, k=self.k
        )[f"recall@{self.k}"]
        metrics["retrieval_recall_vs_exact@k"] = self._recall_vs_exact(users, retrieved)
        return QualityReport(metrics, self.k, int(n_users), self.describe(), per_user)

    def _recall_vs_exact(self, users: np.ndarray, retrieved: np.ndarray) -> float:
        if getattr(self.retriever, "is_exact", False):
            return 1.0
        exact = getattr(self.retriever, "exact", None)
        if exact is None:
            return float("nan")
        return recall_against(retrieved, exact().retrieve(users, self.k).items)

    # -- profiling ------------------------------------------------------------------------

    def stage_callables(self, sample_users: np.ndarray) -> list[StageCall]:
        """One :class:`StageCall` per stage. Ranker inputs are real candidate sets of the
        previous stage, computed once for ``sample_users`` and resampled per batch."""
        sample_users = np.asarray(sample_users, np.int64)
        if len(sample_users) == 0:
            raise ConfigError("stage_callables needs at least one sample user")
        pools = self.cascade(sample_users)
        retriever, k = self.retriever, self.k

        def make_users(batch_size: int, rng: np.random.Generator) -> np.ndarray:
            return rng.choice(sample_users, size=batch_size, replace=True)

        calls = [
            StageCall(
                "retrieval",
                _kind(retriever),
                _params(retriever),
                make_users,
                lambda users: retriever.retrieve(users, k),
                retriever_n_in(retriever),
                k,
            )
        ]
        for name, (ranker, n), pool in zip(self._names(), self.rankers, pools, strict=False):
            calls.append(_ranker_call(name, ranker, n, pool))
        return calls


def _ranker_call(name: str, ranker: Ranker, n: int, pool: Candidates) -> StageCall:
    def make_input(
        batch_size: int, rng: np.random.Generator, n_candidates: int | None = None
    ) -> Candidates:
        batch = pool.take(rng.integers(len(pool), size=batch_size))
        if n_candidates is None:
            return batch
        if not 0 < n_candidates <= pool.k:
            raise ConfigError(f"n_candidates={n_candidates} must lie in [1, {pool.k}]")
        return batch.head(n_candidates)

    def run(candidates: Candidates) -> Candidates:
        return ranker.rank(candidates, min(n, candidates.k))

    return StageCall(name, _kind(ranker), _params(ranker), make_input, run, pool.k, n)


def retriever_n_in(retriever: Retriever) -> int:
    return int(getattr(retriever, "n_items_", 0))


def test_truth(split: Any, users: np.ndarray) -> list[np.ndarray]:
    """Each user's test items minus their train and validation history."""
    history = SeenItems.from_interactions(split.train).union(split.valid)
    by_user = split.test.items_by_user()
    out = []
    for u in users:
        items = by_user.get(int(u), np.empty(0, np.int64))
        seen = history.contains(np.full(1, u, np.int64), items[None, :])[0]
        out.append(items[~seen])
    return out


def build_pipeline(
    retrieval: Retriever,
    rankers_spec: Sequence[Any] = (),
    k: int = 200,
    final_n: int = 10,
) -> Pipeline:
    """A :class:`Pipeline` from instantiated stages.

    ``rankers_spec`` items are ``(ranker, n)`` pairs or mappings ``{"ranker": obj, "n": int}``
    (as Hydra gives ``pipeline.rankers``); ``n`` null means ``final_n``.
    """
    rankers = []
    for i, spec in enumerate(rankers_spec):
        if isinstance(spec, Mapping) or hasattr(spec, "keys"):
            if "ranker" not in spec:
                raise ConfigError(f"pipeline.rankers[{i}] needs a 'ranker' key")
            ranker, n = spec["ranker"], spec.get("n")
        else:
            ranker, n = spec
        rankers.append((ranker, final_n if n is None else int(n)))
    return Pipeline(retrieval, k=k, rankers=rankers, final_n=final_n)


# Parameters that change how a fitted stage serves, not what it learns: kept out of cache keys.
SERVING_ONLY = frozenset({"backend", "n_threads", "nprobe", "ef_search", "k_factor"})


def stage_config(stage: object) -> dict[str, Any]:
    """What determines a stage's learned state: its class and training parameters, and
    those of its embedding or teacher."""
    params = {k: v for k, v in _params(stage).items() if k not in SERVING_ONLY}
    config: dict[str, Any] = {
        "class": f"{type(stage).__module__}.{type(stage).__qualname__}",
        "version": getattr(stage, "artifact_version", 1),
    }
    for part in ("embedding", "teacher"):
        if hasattr(stage, part):
            params.pop(part, None)
            config[part] = stage_config(getattr(stage, part))
    config["params"] = params
    return config


def _fit_stage(
    cache: ArtifactCache | None,
    stage: object,
    config: dict[str, Any],
    data_fp: str,
    fit: Callable[[], Any],
) -> str:
    """Fit ``stage`` (through the cache when it can save and restore itself); its key."""
    if cache is None or not (hasattr(stage, "save") and hasattr(stage, "restore")):
        fit()
        return ArtifactCache.key(config, data_fp)
    key, _ = cache.fit_stage(stage, config, data_fp, fit)  # type: ignore[arg-type]
    return key


def _kind(stage: object) -> str:
    return str(getattr(stage, "name", type(stage).__name__))


def _params(stage: object) -> dict[str, Any]:
    get = getattr(stage, "get_params", None)
    return dict(get()) if get is not None else {}


def _describe(stage_name: str, stage: object, n: int) -> dict[str, Any]:
    return {"stage": stage_name, "kind": _kind(stage), "params": _params(stage), "n": n}


__all__ = [
    "Pipeline",
    "QualityReport",
    "StageCall",
    "build_pipeline",
    "test_truth",
]
