"""Tiny seeded data and quickly trained stages shared by the stage and pipeline tests."""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pytest

from recsys.data import Split, generate_synthetic, time_split
from recsys.data.interactions import Interactions
from recsys.stages.embeddings import TwoTower


@functools.cache
def make_small_split() -> Split:
    """300 users x 400 items, 12k interactions with categories and latent preferences."""
    inter = generate_synthetic(300, 400, 12_000, n_categories=8, dim=8, seed=0)
    return time_split(inter, 0.1, 0.1)


@functools.cache
def make_two_tower() -> TwoTower:
    """A two-tower model trained on :func:`make_small_split` (a few seconds, once)."""
    model = TwoTower(dim=16, epochs=5, batch_size=256, n_negatives=64, seed=0)
    return model.fit(make_small_split().train)


@pytest.fixture
def small_split() -> Split:
    return make_small_split()


@pytest.fixture
def trained_two_tower() -> TwoTower:
    return make_two_tower()


def interactions(pairs: list[tuple[int, int]], n_items: int | None = None) -> Interactions:
    """Interactions from ``(user, item)`` pairs, ids kept as given (time = row order)."""
    frame = pd.DataFrame(
        {
            "user": np.array([u for u, _ in pairs], np.int64),
            "item": np.array([i for _, i in pairs], np.int64),
            "timestamp": np.arange(len(pairs), dtype=np.float64),
            "weight": np.ones(len(pairs), np.float32),
        }
    )
    n_users = int(frame["user"].max()) + 1
    return Interactions(frame, n_users, n_items or int(frame["item"].max()) + 1, name="tiny")
