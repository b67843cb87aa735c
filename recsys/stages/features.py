"""Ranking features for (user, candidate item) pairs, computed from training data only.

Per pair: the user's features and the item's features from
:func:`recsys.data.features.build_features` (activity, recency, popularity, trend, category,
per-category affinity), the user's affinity to this item's category, and the request context
the retrieval stage provides: the retrieval score, its gap to the row's best score, and the
candidate's retrieval rank.
"""

from __future__ import annotations

from typing import Self

import numpy as np

from recsys.data.features import build_features
from recsys.data.interactions import Interactions
from recsys.stages.base import PAD, Candidates

CONTEXT_FEATURES = ("retrieval_score", "score_gap", "retrieval_rank")


class PairFeatures:
    """Builds the ``(B * k, F)`` float32 feature matrix of a candidate set."""

    def fit(self, train: Interactions) -> Self:
        tables = build_features(train)
        self.user_table_ = np.ascontiguousarray(tables.user_features, np.float32)
        self.item_table_ = np.ascontiguousarray(tables.item_features, np.float32)
        self.affinity_ = tables.user_category_affinity
        self.item_category_ = tables.item_category
        self.names_ = [*tables.pair_feature_names, *CONTEXT_FEATURES]
        return self

    @property
    def n_features(self) -> int:
        return len(self.names_)

    def transform(self, candidates: Candidates) -> np.ndarray:
        """Features of every (row, candidate) pair, row-major: shape ``(B * k, F)``."""
        users, items = candidates.users, candidates.items
        b, k = items.shape
        valid = items != PAD
        safe_items = np.where(valid, items, 0)
        scores = np.where(valid, candidates.scores, 0.0).astype(np.float32)
        out = np.empty((b, k, self.n_features), np.float32)
        nu, ni = self.user_table_.shape[1], self.item_table_.shape[1]
        out[:, :, :nu] = self.user_table_[users][:, None, :]
        out[:, :, nu : nu + ni] = self.item_table_[safe_items]
        col = nu + ni
        if self.affinity_ is not None and self.item_category_ is not None:
            out[:, :, col] = self.affinity_[users[:, None], self.item_category_[safe_items]]
            col += 1
        out[:, :, col] = scores
        out[:, :, col + 1] = scores - (scores[:, :1] if k else scores)
        out[:, :, col + 2] = np.arange(k, dtype=np.float32)
        return out.reshape(b * k, self.n_features)
