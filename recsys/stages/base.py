"""What every stage exchanges: candidate sets, and the two small protocols stages follow."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Self, runtime_checkable

import numpy as np

from recsys.data.interactions import Interactions
from recsys.errors import ConfigError, DataError

PAD = -1


@dataclass(frozen=True)
class Candidates:
    """Candidate items for a batch of users, best first.

    ``items`` is ``(B, k)`` int64 with ``-1`` as padding (a user with fewer than ``k`` unseen
    items); ``scores`` is ``(B, k)`` float32, higher is better, ``-inf`` at padding.
    """

    users: np.ndarray
    items: np.ndarray
    scores: np.ndarray

    def __post_init__(self) -> None:
        if self.items.ndim != 2 or self.items.shape != self.scores.shape:
            raise DataError(
                f"candidates: items {self.items.shape} and scores {self.scores.shape} "
                "must be the same (B, k) shape"
            )
        if self.users.shape != (self.items.shape[0],):
            raise DataError(f"candidates: {len(self.users)} users for {len(self.items)} rows")

    @property
    def k(self) -> int:
        return int(self.items.shape[1])

    def __len__(self) -> int:
        return int(self.items.shape[0])

    def take(self, rows: np.ndarray) -> Candidates:
        """The candidate sets of the given rows."""
        return Candidates(self.users[rows], self.items[rows], self.scores[rows])

    def head(self, n: int) -> Candidates:
        """The first ``n`` candidates of every row (they are sorted best first)."""
        return Candidates(self.users, self.items[:, :n], self.scores[:, :n])


@runtime_checkable
class Retriever(Protocol):
    """Candidate generation: the ``k`` best unseen items of each user."""

    name: str

    def fit(self, train: Interactions) -> Self: ...

    def retrieve(self, users: np.ndarray, k: int) -> Candidates: ...


@runtime_checkable
class Ranker(Protocol):
    """Re-scores a candidate set; trained on candidates of validation users."""

    name: str

    def fit(self, train: Interactions, valid: Interactions, candidates: Candidates) -> Self: ...

    def score(self, candidates: Candidates) -> np.ndarray: ...

    def rank(self, candidates: Candidates, n: int) -> Candidates: ...


def top_n(candidates: Candidates, scores: np.ndarray, n: int) -> Candidates:
    """Keep the ``n`` best of each row by ``scores`` (padding always last), sorted best first."""
    if n <= 0:
        raise ConfigError(f"n must be positive, got {n}")
    if n > candidates.k:
        raise ConfigError(f"cannot keep n={n} of only {candidates.k} candidates")
    scores = np.where(candidates.items == PAD, -np.inf, scores).astype(np.float32)
    if n < candidates.k:
        part = np.argpartition(-scores, n - 1, axis=1)[:, :n]
    else:
        part = np.broadcast_to(np.arange(n), scores.shape).copy()
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-part_scores, axis=1, kind="stable")
    idx = np.take_along_axis(part, order, axis=1)
    return Candidates(
        candidates.users,
        np.take_along_axis(candidates.items, idx, axis=1),
        np.take_along_axis(scores, idx, axis=1),
    )


class RankerMixin:
    """``rank`` in terms of ``score``, shared by every ranker."""

    def score(self, candidates: Candidates) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def rank(self, candidates: Candidates, n: int) -> Candidates:
        """The top ``n`` candidates of each row by this ranker's score."""
        return top_n(candidates, self.score(candidates), n)


def check_users(users: np.ndarray, n_users: int) -> np.ndarray:
    """Users as an int64 vector of valid dense ids, or a :class:`DataError`."""
    users = np.asarray(users, dtype=np.int64).reshape(-1)
    if users.size and (users.min() < 0 or users.max() >= n_users):
        raise DataError(f"user ids must lie in [0, {n_users}); got {users.min()}..{users.max()}")
    return users
