"""Tiny seeded data and quickly trained stages shared by the stage and pipeline tests."""

from __future__ import annotations

import numpy as np
import pytest

from recsys.data import Split, generate_synthetic, time_split
from recsys.data.interactions import Interactions, from_raw
from recsys.stages.embeddings import TwoTower


@pytest.fixture(scope="session")
def small_split() -> Split:
    """300 users x 400 items, 12k interactions with categories and latent preferences."""
    inter = generate_synthetic(300, 400, 12_000, n_categories=8, dim=8, seed=0)
    return time_split(inter, 0.1, 0.1)


@pytest.fixture(scope="session")
def trained_two_tower(small_split: Split) -> TwoTower:
    return TwoTower(dim=16, epochs=5, batch_size=256, n_negatives=64, seed=0).fit(
        small_split.train
    )


def interactions(pairs: list[tuple[int, int]], n_items: int | None = None) -> Interactions:
    """Interactions from ``(user, item)`` pairs with dense ids as given (time = row order)."""
    users = np.array([u for u, _ in pairs], np.int64)
    items = np.array([i for _, i in pairs], np.int64)
    inter = from_raw(users, items, np.arange(len(pairs), dtype=float))
    n_items = n_items or inter.n_items
    return Interactions(inter.frame, inter.n_users, n_items, name="tiny")
