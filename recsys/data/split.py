"""Time-based split into train / valid / test, with cold rows removed and counted.

Two modes: ``global`` cuts every user's history at the same two instants (no training row is
later than any evaluation row); ``per_user`` holds out the latest interactions of each user
(leave-last-out in time), which keeps every active user in the test set when a data set's
users are active in different periods (MovieLens: a global cut of ml-latest-small leaves
only 19 test users).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from recsys.data.interactions import Interactions
from recsys.errors import ConfigError, DataError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Split:
    """Train, validation and test interactions sharing one id space.

    ``valid_start`` and ``test_start`` are the cutoff timestamps (unix s): train holds rows
    before ``valid_start``, valid rows in ``[valid_start, test_start)``, test rows from
    ``test_start`` on. ``dropped`` counts the valid/test rows removed because their user
    (``*_cold_user``) or, for a known user, their item (``*_cold_item``) never occurs in train.
    """

    train: Interactions
    valid: Interactions
    test: Interactions
    valid_start: float
    test_start: float
    dropped: dict[str, int] = field(default_factory=dict)

    def test_users(self) -> np.ndarray:
        """Users with at least one test interaction, sorted (int64)."""
        return np.unique(self.test.users).astype(np.int64)

    def valid_users(self) -> np.ndarray:
        """Users with at least one validation interaction, sorted (int64)."""
        return np.unique(self.valid.users).astype(np.int64)

    def to_dict(self) -> dict[str, object]:
        """Sizes, cutoffs and drop counts, for logs and ``result.json``."""
        return {
            "train": len(self.train),
            "valid": len(self.valid),
            "test": len(self.test),
            "valid_start": self.valid_start,
            "test_start": self.test_start,
            "dropped": dict(self.dropped),
        }


def _check_fractions(valid_frac: float, test_frac: float) -> None:
    for key, value in (("valid_frac", valid_frac), ("test_frac", test_frac)):
        if not 0.0 < value < 1.0:
            raise ConfigError(f"time_split: {key} must lie in (0, 1), got {value}")
    if valid_frac + test_frac >= 1.0:
        raise ConfigError(
            f"time_split: valid_frac + test_frac must be < 1 (nothing left to train on), "
            f"got {valid_frac} + {test_frac}"
        )


def _warm_part(
    inter: Interactions, mask: np.ndarray, train: Interactions, part: str, dropped: dict[str, int]
) -> Interactions:
    """Rows of ``mask`` whose user and item both occur in ``train``; counts the rest."""
    known_user = np.zeros(inter.n_users, dtype=bool)
    known_user[train.users] = True
    known_item = np.zeros(inter.n_items, dtype=bool)
    known_item[train.items] = True
    user_ok = known_user[inter.users]
    item_ok = known_item[inter.items]
    dropped[f"{part}_cold_user"] = int((mask & ~user_ok).sum())
    dropped[f"{part}_cold_item"] = int((mask & user_ok & ~item_ok).sum())
    keep = mask & user_ok & item_ok
    if not keep.any():
        raise DataError(
            f"{inter.name}: the {part} part is empty after the time split "
            f"({int(mask.sum())} rows in its period, none with a user and item seen in train)"
        )
    return inter.subset(keep, name=f"{inter.name}/{part}")


SPLIT_MODES = ("global", "per_user")


def time_split(
    inter: Interactions,
    valid_frac: float = 0.1,
    test_frac: float = 0.1,
    mode: str = "global",
) -> Split:
    """Split by time, globally or per user (see the module docstring).

    ``mode="global"``: by two global time cutoffs, the ``1 - valid - test`` and ``1 - test``
    quantiles of the timestamps.

    Global cutoffs mean no training row is later than any evaluation row (no leakage from the
    future). Valid and test keep only users and items seen in train; removed rows are counted
    in :attr:`Split.dropped` and logged. Ties at a cutoff go to the later part.
    """
    _check_fractions(valid_frac, test_frac)
    if mode not in SPLIT_MODES:
        raise ConfigError(f"time_split: mode must be one of {SPLIT_MODES}, got {mode!r}")
    if mode == "per_user":
        return _per_user_split(inter, valid_frac, test_frac)
    ts = inter.timestamps
    valid_start, test_start = np.quantile(ts, [1.0 - valid_frac - test_frac, 1.0 - test_frac])
    train_mask = ts < valid_start
    if not train_mask.any():
        raise DataError(
            f"{inter.name}: the train part is empty after the time split "
            f"(all timestamps are >= the cutoff {valid_start})"
        )
    train = inter.subset(train_mask, name=f"{inter.name}/train")
    dropped: dict[str, int] = {}
    valid = _warm_part(inter, (ts >= valid_start) & (ts < test_start), train, "valid", dropped)
    test = _warm_part(inter, ts >= test_start, train, "test", dropped)
    if any(dropped.values()):
        log.info("%s: time split removed cold rows %s", inter.name, dropped)
    return Split(
        train=train,
        valid=valid,
        test=test,
        valid_start=float(valid_start),
        test_start=float(test_start),
        dropped=dropped,
    )


def _per_user_split(inter: Interactions, valid_frac: float, test_frac: float) -> Split:
    """Each user's latest ``test_frac`` rows to test and the ``valid_frac`` before to valid.

    Users with fewer than three interactions stay wholly in train; every user with three or
    more gives at least one test and one validation row. Cutoffs reported are the earliest
    validation and test timestamps.
    """
    frame = inter.frame
    # frame is sorted by time, so the cumulative count within a user is its rank in time.
    rank = frame.groupby("user", sort=False).cumcount().to_numpy()
    count = np.bincount(inter.users, minlength=inter.n_users)[inter.users]
    eligible = count >= 3
    n_test = np.maximum(1, np.floor(count * test_frac)).astype(np.int64)
    n_valid = np.maximum(1, np.floor(count * valid_frac)).astype(np.int64)
    test_mask = eligible & (rank >= count - n_test)
    valid_mask = eligible & ~test_mask & (rank >= count - n_test - n_valid)
    train_mask = ~(test_mask | valid_mask)
    train = inter.subset(train_mask, name=f"{inter.name}/train")
    dropped: dict[str, int] = {}
    valid = _warm_part(inter, valid_mask, train, "valid", dropped)
    test = _warm_part(inter, test_mask, train, "test", dropped)
    if any(dropped.values()):
        log.info("%s: per-user split removed cold rows %s", inter.name, dropped)
    ts = inter.timestamps
    return Split(
        train=train,
        valid=valid,
        test=test,
        valid_start=float(ts[valid_mask].min()),
        test_start=float(ts[test_mask].min()),
        dropped=dropped,
    )
