"""Offline ranking metrics with binary relevance, vectorised over users.

Conventions (the usual ones in the recommender literature):

- ``recs`` is ``(U, k)`` int64, best first, ``-1`` as padding (never relevant).
- ``truth`` is the set of relevant items of each user, as a list of arrays.
- NDCG@k: DCG = sum over hits at rank r (1-based) of ``1 / log2(r + 1)``, divided by the DCG of
  an ideal list with ``min(|truth|, k)`` hits.
- recall@k: hits in the top k divided by ``|truth|`` (not capped at k).
- HR@k (hit rate): 1 when the top k holds at least one relevant item.
- MRR@k: ``1 / rank`` of the first hit in the top k, 0 without one.
- coverage: distinct recommended items divided by the catalogue size.

Users with an empty truth set are skipped (they carry no signal); each metric is the mean
over the remaining users.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from recsys.errors import DataError


def hit_matrix(recs: np.ndarray, truth: Sequence[np.ndarray], n_items: int) -> np.ndarray:
    """Boolean ``(U, k)``: is ``recs[u, j]`` in ``truth[u]``?"""
    recs = np.asarray(recs, dtype=np.int64)
    if recs.ndim != 2 or len(recs) != len(truth):
        raise DataError(f"recs shape {recs.shape} does not match {len(truth)} truth sets")
    lengths = np.fromiter((len(t) for t in truth), dtype=np.int64, count=len(truth))
    owners = np.repeat(np.arange(len(truth), dtype=np.int64), lengths)
    flat = np.concatenate([np.asarray(t, np.int64) for t in truth]) if len(truth) else owners
    keys = np.unique(owners * n_items + flat)
    query = np.arange(len(recs), dtype=np.int64)[:, None] * n_items + recs
    pos = np.minimum(np.searchsorted(keys, query), max(len(keys) - 1, 0))
    hits = keys[pos] == query if len(keys) else np.zeros(recs.shape, bool)
    return hits & (recs >= 0)


def per_user_metrics(
    recs: np.ndarray, truth: Sequence[np.ndarray], n_items: int, k: int = 10
) -> dict[str, np.ndarray]:
    """Each evaluated user's NDCG@k, recall@k, HR@k and reciprocal rank.

    Returns arrays of one value per user with a non-empty truth set, in input order, and
    ``"user_index"``: each value's row in ``recs`` (so two lists evaluated on the same
    users can be paired, e.g. for a bootstrap of their difference).
    """
    recs = np.asarray(recs, dtype=np.int64)[:, :k]
    n_true = np.fromiter((len(np.unique(t)) for t in truth), dtype=np.int64, count=len(truth))
    keep = n_true > 0
    if not keep.any():
        raise DataError("no user has a relevant item: nothing to evaluate")
    recs, n_true = recs[keep], n_true[keep]
    hits = hit_matrix(recs, [t for t, m in zip(truth, keep, strict=True) if m], n_items)
    discounts = 1.0 / np.log2(np.arange(2, recs.shape[1] + 2))
    ideal = np.cumsum(discounts)[np.minimum(n_true, recs.shape[1]) - 1]
    first = np.where(hits.any(1), hits.argmax(1) + 1, 0)
    return {
        f"ndcg@{k}": (hits * discounts).sum(1) / ideal,
        f"recall@{k}": hits.sum(1) / n_true,
        f"hr@{k}": hits.any(1).astype(np.float64),
        f"mrr@{k}": np.where(first > 0, 1.0 / np.maximum(first, 1), 0.0),
        "user_index": np.flatnonzero(keep),
    }


def ranking_metrics(
    recs: np.ndarray, truth: Sequence[np.ndarray], n_items: int, k: int = 10
) -> dict[str, float]:
    """NDCG@k, recall@k, HR@k, MRR@k, coverage and the number of users evaluated."""
    per_user = per_user_metrics(recs, truth, n_items, k)
    kept = np.asarray(recs, dtype=np.int64)[per_user.pop("user_index"), :k]
    out: dict[str, float] = {name: float(np.mean(v)) for name, v in per_user.items()}
    return {**out, "coverage": coverage(kept, n_items), "n_users": len(kept)}


def paired_bootstrap_relative(
    variant: Sequence[np.ndarray],
    source: Sequence[np.ndarray],
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """``mean(variant) / mean(source) - 1`` averaged over runs, with a paired bootstrap CI.

    ``variant[r]`` and ``source[r]`` are per-user values of run ``r`` (e.g. one training
    seed) on the same users in the same order. Each bootstrap replicate resamples the users
    of every run with replacement, the same draw for variant and source (paired), and
    averages the relative difference over runs. Runs with as many users get the same
    draw, so a fixed test set is resampled consistently across seeds. Returns
    ``(estimate, low, high)``: the percentile interval at ``level``.
    """
    if len(variant) != len(source) or not variant:
        raise ValueError("need one variant and one source array per run, at least one run")
    estimate, replicates = 0.0, np.zeros(n_boot)
    for run_v, run_s in zip(variant, source, strict=True):
        v, s = np.asarray(run_v, np.float64), np.asarray(run_s, np.float64)
        if v.shape != s.shape or v.ndim != 1 or len(v) == 0:
            raise ValueError(f"paired per-user arrays must match, got {v.shape} and {s.shape}")
        idx = np.random.default_rng(seed).integers(len(v), size=(n_boot, len(v)))
        estimate += v.mean() / s.mean() - 1
        replicates += v[idx].mean(1) / s[idx].mean(1) - 1
    runs = len(variant)
    tail = (1 - level) / 2
    low, high = np.quantile(replicates / runs, [tail, 1 - tail])
    return estimate / runs, float(low), float(high)


def coverage(recs: np.ndarray, n_items: int) -> float:
    """Fraction of the catalogue that appears in at least one list."""
    recs = np.asarray(recs)
    return float(len(np.unique(recs[recs >= 0])) / n_items)


def recall_against(found: np.ndarray, reference: np.ndarray) -> float:
    """Mean over rows of ``|found ∩ reference| / |reference|`` (padding ignored).

    With ``reference`` the exact top-k this is the usual ANN recall@k.
    """
    found = np.asarray(found, np.int64)
    reference = np.asarray(reference, np.int64)
    n_ref = (reference >= 0).sum(1)
    n_items = int(max(found.max(initial=0), reference.max(initial=0))) + 1
    hits = hit_matrix(found, [r[r >= 0] for r in reference], n_items).sum(1)
    ok = n_ref > 0
    return float(np.mean(hits[ok] / n_ref[ok])) if ok.any() else float("nan")
