"""Fixtures for the data tests: where the shared real data lives, and tiny hand-made data."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from recsys.data import Interactions, from_raw


def shared_data_dir() -> Path:
    """``$RECSYS_SHARED_DATA``, else ``../shared/data`` beside the repository."""
    env = os.environ.get("RECSYS_SHARED_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2].parent / "shared" / "data"


@pytest.fixture(scope="session")
def ml_latest_small() -> Path:
    path = shared_data_dir() / "ml-latest-small"
    if not (path / "ratings.csv").is_file():
        pytest.skip(f"MovieLens latest-small not found at {path} (set RECSYS_SHARED_DATA)")
    return path


def tiny(rows: list[tuple[str, str, float]], weights: list[float] | None = None) -> Interactions:
    """Interactions from ``(user, item, timestamp)`` rows with readable raw ids."""
    users, items, ts = zip(*rows, strict=True)
    return from_raw(
        np.array(users), np.array(items), np.array(ts, dtype=float), weights, name="tiny"
    )
