"""Per-user and per-item features from training interactions only (for the ranking stage).

Everything is computed from the interactions passed in, relative to their last timestamp
(``train_end``), so building from ``split.train`` cannot leak validation or test data. Users
and items without training interactions get zero counts and weights, and a recency equal to
the whole training span (as if last seen at its start); no value is NaN.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from recsys.data.interactions import Interactions

SECONDS_PER_DAY = 86_400.0


@dataclass(frozen=True)
class FeatureTables:
    """Feature matrices indexed by dense user / item id, with their column names.

    ``user_category_affinity`` is each user's share of training interactions per item
    category (rows sum to 1, or 0 for users without training data); it is also part of
    ``user_features``. It and ``item_category`` are ``None`` when the data has no categories.
    """

    user_features: np.ndarray  # (n_users, Fu) float32
    item_features: np.ndarray  # (n_items, Fi) float32
    user_feature_names: tuple[str, ...]
    item_feature_names: tuple[str, ...]
    train_end: float
    user_category_affinity: np.ndarray | None = None  # (n_users, n_categories) float32
    item_category: np.ndarray | None = None  # (n_items,) int64

    @property
    def pair_feature_names(self) -> tuple[str, ...]:
        """Column names of :meth:`pair_features`."""
        extra = ("user_item_category_affinity",) if self.item_category is not None else ()
        return self.user_feature_names + self.item_feature_names + extra

    def pair_features(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Features of (user, item) pairs, ``(n, Fu + Fi [+ 1])`` float32.

        ``users`` and ``items`` broadcast against each other (e.g. ``(B, 1)`` users with
        ``(B, k)`` candidates); the result has their broadcast shape plus a feature axis.
        The last column, when categories exist, is the user's affinity to the item's category.
        """
        users, items = np.broadcast_arrays(np.asarray(users), np.asarray(items))
        parts = [self.user_features[users], self.item_features[items]]
        if self.item_category is not None and self.user_category_affinity is not None:
            affinity = self.user_category_affinity[users, self.item_category[items]]
            parts.append(affinity[..., None])
        return np.concatenate(parts, axis=-1).astype(np.float32, copy=False)

    def user_frame(self) -> pd.DataFrame:
        """User features as a frame indexed by dense user id."""
        return pd.DataFrame(self.user_features, columns=list(self.user_feature_names))

    def item_frame(self) -> pd.DataFrame:
        """Item features as a frame indexed by dense item id."""
        return pd.DataFrame(self.item_features, columns=list(self.item_feature_names))


def _per_id_stats(
    ids: np.ndarray, ts: np.ndarray, weights: np.ndarray, n: int, *, start: float, end: float
) -> dict[str, np.ndarray]:
    """Count, log count, mean weight and recency (days before ``end``) of each id in ``[0, n)``;
    ids never seen count as last seen at ``start``."""
    count = np.bincount(ids, minlength=n).astype(np.float64)
    weight_sum = np.bincount(ids, weights=weights, minlength=n)
    last = np.full(n, start)
    np.maximum.at(last, ids, ts)
    return {
        "count": count,
        "log_count": np.log1p(count),
        "mean_weight": np.divide(weight_sum, count, out=np.zeros(n), where=count > 0),
        "recency_days": (end - last) / SECONDS_PER_DAY,
    }


def _category_affinity(train: Interactions, category: np.ndarray) -> np.ndarray:
    n_categories = int(category.max()) + 1
    keys = train.users * n_categories + category[train.items]
    counts = np.bincount(keys, minlength=train.n_users * n_categories).astype(np.float64)
    counts = counts.reshape(train.n_users, n_categories)
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)


def build_features(train: Interactions, recent_days: float = 7.0) -> FeatureTables:
    """Features of every user and item from ``train`` alone (pass the train part of a split).

    Items: ``item_count``, ``item_log_count``, ``item_count_recent`` (interactions in the last
    ``recent_days`` of train: what is trending), ``item_recency_days`` (days since the last
    interaction, at ``train_end``), ``item_mean_weight`` and ``item_category`` (code, if any).
    Users: ``user_count``, ``user_log_count``, ``user_mean_weight``, ``user_recency_days``
    and ``user_cat_affinity_<c>`` per category (if any).
    """
    ts = train.timestamps
    weights = train.frame["weight"].to_numpy(np.float64)
    train_end = float(ts.max())
    start = float(ts.min())
    items = _per_id_stats(train.items, ts, weights, train.n_items, start=start, end=train_end)
    users = _per_id_stats(train.users, ts, weights, train.n_users, start=start, end=train_end)
    recent = ts > train_end - recent_days * SECONDS_PER_DAY
    items["count_recent"] = np.bincount(train.items[recent], minlength=train.n_items)
    item_names = ["count", "log_count", "count_recent", "recency_days", "mean_weight"]
    item_cols = [items[k] for k in item_names]
    user_names = ["count", "log_count", "mean_weight", "recency_days"]
    user_cols = [users[k] for k in user_names]
    category = affinity = None
    if train.item_category is not None:
        category = np.asarray(train.item_category, dtype=np.int64)
        item_names.append("category")
        item_cols.append(category)
        affinity = _category_affinity(train, category)
        user_names += [f"cat_affinity_{c}" for c in range(affinity.shape[1])]
        user_cols += list(affinity.T)
    return FeatureTables(
        user_features=np.column_stack(user_cols).astype(np.float32),
        item_features=np.column_stack(item_cols).astype(np.float32),
        user_feature_names=tuple(f"user_{n}" for n in user_names),
        item_feature_names=tuple(f"item_{n}" for n in item_names),
        train_end=train_end,
        user_category_affinity=None if affinity is None else affinity.astype(np.float32),
        item_category=category,
    )
