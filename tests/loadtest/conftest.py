"""Fake stages with known, sleep-based service times for the load-test server."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest


def sleeper(batch_ms: float, per_item_ms: float = 0.0) -> Callable[[list], list]:
    """A stage whose batch of ``b`` takes ``batch_ms + per_item_ms * (b - 1)`` (sleeping)."""

    def run(payloads: list) -> list:
        time.sleep((batch_ms + per_item_ms * (len(payloads) - 1)) / 1000.0)
        return payloads

    return run


@pytest.fixture
def sleep_stage() -> Callable[..., Callable[[list], list]]:
    return sleeper
