"""Which items each user has already seen, for excluding them from recommendations."""

from __future__ import annotations

import numpy as np

from recsys.data.interactions import Interactions
from recsys.stages.base import PAD


class SeenItems:
    """A sorted set of ``user * n_items + item`` keys: fast vectorised membership tests."""

    def __init__(self, keys: np.ndarray, n_users: int, n_items: int) -> None:
        self.keys = np.unique(np.asarray(keys, dtype=np.int64))
        self.n_users = n_users
        self.n_items = n_items
        users = self.keys // n_items
        self.counts = np.bincount(users, minlength=n_users).astype(np.int64)

    @classmethod
    def from_interactions(cls, inter: Interactions) -> SeenItems:
        keys = inter.users.astype(np.int64) * inter.n_items + inter.items.astype(np.int64)
        return cls(keys, inter.n_users, inter.n_items)

    def union(self, inter: Interactions) -> SeenItems:
        """These seen items plus those of ``inter`` (same id spaces)."""
        more = inter.users.astype(np.int64) * self.n_items + inter.items.astype(np.int64)
        return SeenItems(np.concatenate([self.keys, more]), self.n_users, self.n_items)

    def max_count(self, users: np.ndarray) -> int:
        """The most items any of ``users`` has seen (how far a search must over-fetch)."""
        return int(self.counts[users].max()) if len(users) else 0

    def contains(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Boolean ``(B, m)``: has ``users[b]`` seen ``items[b, j]``? Padding counts as seen."""
        query = users[:, None] * self.n_items + items
        pos = np.searchsorted(self.keys, query)
        pos = np.minimum(pos, len(self.keys) - 1)
        found = self.keys[pos] == query if len(self.keys) else np.zeros(query.shape, bool)
        return found | (items < 0)

    def filter_topk(
        self, users: np.ndarray, items: np.ndarray, scores: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Drop seen items from sorted search results and keep the first ``k`` of each row."""
        drop = self.contains(users, items)
        order = np.argsort(drop, axis=1, kind="stable")[:, :k]
        out_items = np.take_along_axis(items, order, axis=1)
        out_scores = np.take_along_axis(scores, order, axis=1).astype(np.float32)
        dropped = np.take_along_axis(drop, order, axis=1)
        out_items[dropped] = PAD
        out_scores[dropped] = -np.inf
        if out_items.shape[1] < k:  # catalogue smaller than the request: pad
            pad = k - out_items.shape[1]
            out_items = np.pad(out_items, ((0, 0), (0, pad)), constant_values=PAD)
            out_scores = np.pad(out_scores, ((0, 0), (0, pad)), constant_values=-np.inf)
        return out_items, out_scores
