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


def ranking_metrics(
    recs: np.ndarray, truth: Sequence[np.ndarray], n_items: int, k: int = 10
) -> dict[str, float]:
    """NDCG@k, recall@k, HR@k, MRR@k, coverage and the number of users evaluated."""
    recs = np.asarray(recs, dtype=np.int64)[:, :k]
    n_true = np.fromiter((len(np.unique(t)) for t in truth), dtype=np.int64, count=len(truth))
    keep = n_true > 0
    if not keep.any():
        raise DataError("no user has a relevant item: nothing to evaluate")
    recs, n_true = recs[keep], n_true[keep]
    hits = hit_matrix(recs, [t for t, m in zip(truth, keep, strict=True) if m], n_items)
    discounts = 1.0 / np.log2(np.arange(2, recs.shape[1] + 2))
    dcg = (hits * discounts).sum(1)
    ideal = np.cumsum(discounts)[np.minimum(n_true, recs.shape[1]) - 1]
    first = np.where(hits.any(1), hits.argmax(1) + 1, 0)
    rr = np.where(first > 0, 1.0 / np.maximum(first, 1), 0.0)
    return {
        f"ndcg@{k}": float(np.mean(dcg / ideal)),
        f"recall@{k}": float(np.mean(hits.sum(1) / n_true)),
        f"hr@{k}": float(np.mean(hits.any(1))),
        f"mrr@{k}": float(np.mean(rr)),
        "coverage": coverage(recs, n_items),
        "n_users": len(recs),
    }


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
