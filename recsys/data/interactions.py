"""The one in-memory form of interaction data that every later step reads."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from recsys.errors import DataError

COLUMNS = ("user", "item", "timestamp", "weight")


@dataclass(frozen=True)
class Interactions:
    """Timestamped user-item interactions with dense integer ids.

    ``frame`` has columns ``user`` and ``item`` (int64, dense ids in ``[0, n_users)`` and
    ``[0, n_items)``), ``timestamp`` (float64 unix seconds) and ``weight`` (float32), sorted by
    timestamp. ``item_category`` (int64, one per item) is optional side information; the
    synthetic generator and MovieLens (first genre) provide it. ``user_ids``/``item_ids`` map
    dense ids back to the raw ids of the source file.
    """

    frame: pd.DataFrame
    n_users: int
    n_items: int
    name: str = "interactions"
    item_category: np.ndarray | None = None
    user_ids: np.ndarray | None = field(default=None, repr=False)
    item_ids: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        missing = [c for c in COLUMNS if c not in self.frame.columns]
        if missing:
            raise DataError(f"interactions lack column(s) {missing}")
        if len(self.frame) == 0:
            raise DataError(f"{self.name}: no interactions")
        if self.n_users <= 0 or self.n_items <= 0:
            raise DataError(f"{self.name}: n_users and n_items must be positive")
        if self.item_category is not None and len(self.item_category) != self.n_items:
            raise DataError(
                f"{self.name}: item_category has {len(self.item_category)} entries "
                f"for {self.n_items} items"
            )

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def users(self) -> np.ndarray:
        return self.frame["user"].to_numpy()

    @property
    def items(self) -> np.ndarray:
        return self.frame["item"].to_numpy()

    @property
    def timestamps(self) -> np.ndarray:
        return self.frame["timestamp"].to_numpy()

    def subset(self, mask: np.ndarray, name: str | None = None) -> Interactions:
        """Rows selected by a boolean mask, keeping the id spaces (so splits stay aligned)."""
        return Interactions(
            frame=self.frame.loc[mask].reset_index(drop=True),
            n_users=self.n_users,
            n_items=self.n_items,
            name=name or self.name,
            item_category=self.item_category,
            user_ids=self.user_ids,
            item_ids=self.item_ids,
        )

    def items_by_user(self) -> dict[int, np.ndarray]:
        """Unique items of each user (for seen-item filtering and ground truth)."""
        grouped = self.frame.groupby("user", sort=True)["item"].unique()
        return {int(u): np.asarray(v, dtype=np.int64) for u, v in grouped.items()}


def from_raw(
    users: np.ndarray,
    items: np.ndarray,
    timestamps: np.ndarray,
    weights: np.ndarray | None = None,
    name: str = "interactions",
) -> Interactions:
    """Build :class:`Interactions` from raw ids of any hashable type, densifying them."""
    user_codes, user_ids = pd.factorize(pd.Series(users), sort=True)
    item_codes, item_ids = pd.factorize(pd.Series(items), sort=True)
    if (user_codes < 0).any() or (item_codes < 0).any():
        n_bad = int(((user_codes < 0) | (item_codes < 0)).sum())
        raise DataError(f"{name}: {n_bad} rows have a missing user or item id")
    frame = pd.DataFrame(
        {
            "user": user_codes.astype(np.int64),
            "item": item_codes.astype(np.int64),
            "timestamp": np.asarray(timestamps, dtype=np.float64),
            "weight": (
                np.ones(len(user_codes), np.float32)
                if weights is None
                else np.asarray(weights, dtype=np.float32)
            ),
        }
    )
    frame = frame.sort_values("timestamp", kind="stable").reset_index(drop=True)
    return Interactions(
        frame=frame,
        n_users=len(user_ids),
        n_items=len(item_ids),
        name=name,
        user_ids=np.asarray(user_ids),
        item_ids=np.asarray(item_ids),
    )
