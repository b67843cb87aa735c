"""Rankers: LightGBM LambdaRank, and the popularity and keep-retrieval-order baselines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Self

import lightgbm as lgb
import numpy as np

from recsys.data.interactions import Interactions
from recsys.errors import ArtifactError, DataError
from recsys.stages.base import PAD, Candidates, RankerMixin
from recsys.stages.features import PairFeatures
from recsys.stages.history import SeenItems
from recsys.stages.onnx_backend import OrtScorer, check_backend, lightgbm_to_onnx


def candidate_labels(candidates: Candidates, valid: Interactions) -> np.ndarray:
    """``(B, k)`` float32: 1 where the candidate is among the user's validation items."""
    seen = SeenItems.from_interactions(valid).contains(candidates.users, candidates.items)
    return (seen & (candidates.items != PAD)).astype(np.float32)


def training_lists(
    features: PairFeatures, valid: Interactions, candidates: Candidates
) -> tuple[np.ndarray, np.ndarray, np.ndarray, Candidates]:
    """Feature rows, labels and group sizes of the candidate lists with at least one positive.

    Padding rows are dropped; lists without a positive carry no ranking signal and are
    skipped. Also returns the kept candidate sets.
    """
    labels = candidate_labels(candidates, valid)
    keep = labels.sum(1) > 0
    if not keep.any():
        raise DataError(
            "no validation item is among the retrieved candidates: cannot train a ranker "
            "(raise k or check the split)"
        )
    kept = candidates.take(np.flatnonzero(keep))
    x = features.transform(kept)
    real = (kept.items != PAD).reshape(-1)
    groups = (kept.items != PAD).sum(1)
    return x[real], labels[keep].reshape(-1)[real], groups, kept


class IdentityRanker(RankerMixin):
    """``none``: keep the retrieval order (score = retrieval score)."""

    name = "none"

    def fit(self, train: Interactions, valid: Interactions, candidates: Candidates) -> Self:
        return self

    def get_params(self) -> dict:
        return {}

    def score(self, candidates: Candidates) -> np.ndarray:
        return candidates.scores


class PopularityRanker(RankerMixin):
    """``popularity``: order candidates by training interaction count."""

    name = "popularity"

    def fit(self, train: Interactions, valid: Interactions, candidates: Candidates) -> Self:
        counts = np.bincount(train.items, minlength=train.n_items).astype(np.float32)
        self.log_count_ = np.log1p(counts)
        return self

    def get_params(self) -> dict:
        return {}

    def score(self, candidates: Candidates) -> np.ndarray:
        return self.log_count_[np.where(candidates.items == PAD, 0, candidates.items)]


class FeatureRanker(RankerMixin):
    """Shared parts of rankers that score pair features with a model ``(N, F) -> (N,)``."""

    n_threads: int
    backend: str
    features_: PairFeatures

    def _predict(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def score(self, candidates: Candidates) -> np.ndarray:
        """Model scores ``(B, k)`` float32 of every candidate."""
        x = self.features_.transform(candidates)
        scores = self._predict(x).reshape(candidates.items.shape).astype(np.float32)
        return np.where(candidates.items == PAD, -np.inf, scores).astype(np.float32)


def save_features(features: PairFeatures, path: Path) -> None:
    """Feature tables as ``.npy`` files (no pickle) plus their names as JSON."""
    arrays = {
        "user_table": features.user_table_,
        "item_table": features.item_table_,
        "affinity": features.affinity_,
        "item_category": features.item_category_,
    }
    for key, value in arrays.items():
        if value is not None:
            np.save(path / f"{key}.npy", value, allow_pickle=False)
    (path / "features.json").write_text(json.dumps(features.names_))


def load_features(path: Path) -> PairFeatures:
    """The inverse of :func:`save_features`; :class:`ArtifactError` if anything is off."""
    f = PairFeatures()
    try:
        f.user_table_ = np.load(path / "user_table.npy", allow_pickle=False)
        f.item_table_ = np.load(path / "item_table.npy", allow_pickle=False)
        f.affinity_ = f.item_category_ = None
        if (path / "affinity.npy").exists():
            f.affinity_ = np.load(path / "affinity.npy", allow_pickle=False)
            f.item_category_ = np.load(path / "item_category.npy", allow_pickle=False)
        f.names_ = json.loads((path / "features.json").read_text())
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"cannot load ranking features from {path}: {exc}") from exc
    return f


class LightGBMRanker(FeatureRanker):
    """LambdaRank gradient-boosted trees over user, item and retrieval features.

    ``backend`` is ``"native"`` (LightGBM's predictor) or ``"onnx"`` (ONNX Runtime on the
    converted model). ``n_threads`` is the serving thread count; ``fit_threads`` the training
    one (results are deterministic for a ``seed`` either way). A seeded ``holdout`` share of
    the lists picks the number of trees (early stopping on held-out NDCG@10 after
    ``patience`` rounds without gain; ``holdout=0`` trains all ``n_estimators``).
    """

    def __init__(
        self,
        *,
        n_estimators: int = 300,
        num_leaves: int = 31,
        learning_rate: float = 0.05,
        min_child_samples: int = 20,
        subsample: float = 1.0,
        colsample: float = 1.0,
        holdout: float = 0.2,
        patience: int = 50,
        backend: str = "native",
        n_threads: int = 1,
        fit_threads: int = 1,
        seed: int = 0,
    ) -> None:
        self.n_estimators = n_estimators
        self.num_leaves = num_leaves
        self.learning_rate = learning_rate
        self.min_child_samples = min_child_samples
        self.subsample = subsample
        self.colsample = colsample
        self.holdout = holdout
        self.patience = patience
        self.backend = backend
        self.n_threads = n_threads
        self.fit_threads = fit_threads
        self.seed = seed

    @property
    def name(self) -> str:
        return "lightgbm" if self.backend == "native" else f"lightgbm_{self.backend}"

    def get_params(self) -> dict:
        keys = ("n_estimators", "num_leaves", "learning_rate", "min_child_samples", "subsample")
        return {k: getattr(self, k) for k in (*keys, "colsample", "holdout", "patience", "backend")}

    def _lgb_params(self) -> dict:
        return {
            "objective": "lambdarank",
            "metric": "ndcg",
            "eval_at": [10],
            "num_leaves": self.num_leaves,
            "learning_rate": self.learning_rate,
            "min_data_in_leaf": self.min_child_samples,
            "bagging_fraction": self.subsample,
            "bagging_freq": 1 if self.subsample < 1.0 else 0,
            "feature_fraction": self.colsample,
            "num_threads": self.fit_threads,
            "seed": self.seed,
            "deterministic": True,
            "force_row_wise": True,
            "verbosity": -1,
        }

    def fit(self, train: Interactions, valid: Interactions, candidates: Candidates) -> Self:
        check_backend(self.backend, ("native", "onnx"))
        self.features_ = PairFeatures().fit(train)
        x, y, groups, _ = training_lists(self.features_, valid, candidates)
        names = _safe_names(self.features_.names_)
        fit_rows, hold_rows, fit_groups, hold_groups = self._split_lists(groups)
        data = lgb.Dataset(x[fit_rows], y[fit_rows], group=fit_groups, feature_name=names)
        sets, callbacks = [], []
        if len(hold_groups):
            sets = [lgb.Dataset(x[hold_rows], y[hold_rows], group=hold_groups, reference=data)]
            callbacks = [lgb.early_stopping(self.patience, first_metric_only=True, verbose=False)]
        self.booster_ = lgb.train(
            self._lgb_params(),
            data,
            num_boost_round=self.n_estimators,
            valid_sets=sets,
            callbacks=callbacks,
        )
        if self.booster_.best_iteration > 0:  # drop the trees grown after the best round
            text = self.booster_.model_to_string(num_iteration=self.booster_.best_iteration)
            self.booster_ = lgb.Booster(model_str=text)
        self._prepare_backend()
        return self

    def _split_lists(
        self, groups: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Row indices and group sizes of the training and held-out lists (seeded)."""
        n_hold = int(len(groups) * self.holdout) if len(groups) >= 10 else 0
        held = np.zeros(len(groups), bool)
        held[np.random.default_rng(self.seed).permutation(len(groups))[:n_hold]] = True
        row_held = np.repeat(held, groups)
        rows = np.arange(len(row_held))
        return rows[~row_held], rows[row_held], groups[~held], groups[held]

    def _prepare_backend(self) -> None:
        self.onnx_ = None
        if self.backend == "onnx":
            model = lightgbm_to_onnx(self.booster_, self.features_.n_features)
            self.onnx_ = OrtScorer(model, self.n_threads)

    def _predict(self, x: np.ndarray) -> np.ndarray:
        if self.onnx_ is not None:
            return self.onnx_(x)
        return self.booster_.predict(x, num_threads=self.n_threads)

    def save(self, path: str | Path) -> None:
        """LightGBM text model plus feature tables (``.npy``) and parameters (JSON)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.booster_.save_model(str(path / "model.txt"))
        save_features(self.features_, path)
        params = {**self.get_params(), "seed": self.seed, "fit_threads": self.fit_threads}
        (path / "ranker.json").write_text(json.dumps(params))

    def restore(self, path: str | Path) -> Self:
        """Read what :meth:`save` wrote; this object's ``backend`` and ``n_threads`` apply."""
        path = Path(path)
        try:
            self.booster_ = lgb.Booster(model_file=str(path / "model.txt"))
        except (OSError, ValueError, lgb.basic.LightGBMError) as exc:
            raise ArtifactError(f"cannot load LightGBM ranker from {path}: {exc}") from exc
        self.features_ = load_features(path)
        self._prepare_backend()
        return self

    @classmethod
    def load(
        cls, path: str | Path, n_threads: int = 1, backend: str | None = None
    ) -> LightGBMRanker:
        try:
            params = json.loads((Path(path) / "ranker.json").read_text())
        except (OSError, ValueError) as exc:
            raise ArtifactError(f"cannot load LightGBM ranker from {path}: {exc}") from exc
        if backend is not None:
            params["backend"] = backend
        return cls(**params, n_threads=n_threads).restore(path)


def _safe_names(names: list[str]) -> list[str]:
    return [n.replace(" ", "_").replace(":", "_") for n in names]
