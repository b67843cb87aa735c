"""Interaction data: the synthetic default, MovieLens and generic file loaders, splits, features.

Every loader returns :class:`Interactions` (dense ids, unix-second timestamps, weights); Hydra
configs in ``conf/data/`` name these functions as ``_target_``.
"""

from recsys.data.features import FeatureTables, build_features
from recsys.data.interactions import Interactions, from_raw
from recsys.data.movielens import load_movielens
from recsys.data.split import Split, time_split
from recsys.data.synthetic import (
    DAILY_PROFILE,
    SyntheticWorld,
    generate_synthetic,
    synthetic_item_vectors,
    synthetic_world,
)
from recsys.data.tabular import load_interactions

__all__ = [
    "DAILY_PROFILE",
    "FeatureTables",
    "Interactions",
    "Split",
    "SyntheticWorld",
    "build_features",
    "from_raw",
    "generate_synthetic",
    "load_interactions",
    "load_movielens",
    "synthetic_item_vectors",
    "synthetic_world",
    "time_split",
]
