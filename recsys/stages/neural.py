"""Neural rankers: an MLP over pair features (``small``/``large`` presets) and a distilled
student trained on a teacher ranker's scores; served by torch, ONNX Runtime or int8 ORT."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Self

import numpy as np
import torch
from torch import nn

from recsys.data.interactions import Interactions
from recsys.errors import ArtifactError, ConfigError, DataError
from recsys.stages.base import PAD, Candidates, Ranker
from recsys.stages.features import PairFeatures
from recsys.stages.onnx_backend import OrtScorer, check_backend, quantize_int8, torch_to_onnx
from recsys.stages.ranking import FeatureRanker, candidate_labels, load_features, save_features

PRESETS: dict[str, tuple[int, ...]] = {
    "small": (32,),
    "student": (64, 32),
    "medium": (128, 64),
    "large": (512, 256, 128),
}


class ScoreMLP(nn.Module):
    """``asinh`` squashing, standardisation, then a ReLU MLP to one score per row."""

    def __init__(self, n_features: int, hidden: tuple[int, ...], dropout: float = 0.0) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("scale", torch.ones(n_features))
        layers: list[nn.Module] = []
        width = n_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = h
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = (torch.asinh(x) - self.mean) * self.scale
        return self.net(z).squeeze(-1)


def _list_loss(scores: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Listwise softmax cross-entropy against a target distribution over each list.

    The softmax ignores a shift shared by a whole list, so a small penalty on each list's
    mean score keeps scores centred (otherwise a user-dependent offset drifts freely and
    swamps the within-list differences that int8 quantisation must preserve).
    """
    logp = torch.log_softmax(scores.masked_fill(~mask, -1e9), dim=1)
    list_mean = (scores * mask).sum(1) / mask.sum(1).clamp_min(1)
    return -(target * logp.masked_fill(~mask, 0.0)).sum(1).mean() + 1e-2 * list_mean.pow(2).mean()


class MLPRanker(FeatureRanker):
    """A feed-forward ranker trained with a listwise softmax loss on validation lists.

    ``preset`` ``"small"`` (one hidden layer of 32), ``"medium"`` (128-64) or ``"large"``
    (512-256-128, the "large neural ranker" baseline); ``hidden`` overrides the preset.
    ``backend`` is ``"native"`` (torch), ``"onnx"`` (ONNX Runtime, fp32) or ``"int8"`` (ORT
    after dynamic int8 quantisation of the weights; ``int8_fp32_layers`` names the dense
    layers, ``"first"`` and/or ``"last"``, that stay fp32 there). Training holds out
    ``holdout`` of the lists and keeps the epoch with the best held-out loss (stopping after
    ``patience`` epochs without improvement): validation lists are few, and a large net
    overfits them.
    """

    kind = "mlp"

    def __init__(
        self,
        *,
        preset: str = "small",
        hidden: tuple[int, ...] | list[int] | None = None,
        epochs: int = 30,
        lists_per_batch: int = 32,
        lr: float = 3e-3,
        weight_decay: float = 1e-5,
        dropout: float = 0.0,
        holdout: float = 0.2,
        patience: int = 5,
        backend: str = "native",
        int8_fp32_layers: tuple[str, ...] | list[str] = ("first", "last"),
        n_threads: int = 1,
        fit_threads: int = 1,
        seed: int = 0,
    ) -> None:
        self.preset = preset
        self.hidden = hidden
        self.epochs = epochs
        self.lists_per_batch = lists_per_batch
        self.lr = lr
        self.weight_decay = weight_decay
        self.dropout = dropout
        self.holdout = holdout
        self.patience = patience
        self.backend = backend
        self.int8_fp32_layers = tuple(int8_fp32_layers)
        self.n_threads = n_threads
        self.fit_threads = fit_threads
        self.seed = seed

    @property
    def name(self) -> str:
        base = f"{self.kind}_{self.preset}" if self.hidden is None else self.kind
        return base if self.backend == "native" else f"{base}_{self.backend}"

    def get_params(self) -> dict[str, Any]:
        keys = ("preset", "hidden", "epochs", "lists_per_batch", "lr", "weight_decay", "dropout")
        params = {k: getattr(self, k) for k in (*keys, "holdout", "patience", "backend", "seed")}
        params["hidden"] = list(self.layers())
        params["int8_fp32_layers"] = list(self.int8_fp32_layers)
        return params

    def layers(self) -> tuple[int, ...]:
        if self.hidden is not None:
            return tuple(int(h) for h in self.hidden)
        if self.preset not in PRESETS:
            raise ConfigError(f"MLP preset must be one of {sorted(PRESETS)}, got {self.preset!r}")
        return PRESETS[self.preset]

    # -- training -------------------------------------------------------------------------

    def fit(self, train: Interactions, valid: Interactions, candidates: Candidates) -> Self:
        check_backend(self.backend)
        self.features_ = PairFeatures().fit(train)
        labels = candidate_labels(candidates, valid)
        keep = labels.sum(1) > 0
        if not keep.any():
            raise DataError("no validation item is among the retrieved candidates")
        target = labels[keep] / labels[keep].sum(1, keepdims=True)
        self._train(candidates.take(np.flatnonzero(keep)), target)
        return self

    def _train(self, lists: Candidates, target: np.ndarray) -> None:
        """Fit the network so that softmax(scores) of each list approaches ``target``."""
        torch.set_num_threads(self.fit_threads)
        torch.manual_seed(self.seed)
        gen = torch.Generator().manual_seed(self.seed)
        b, k = lists.items.shape
        x = torch.from_numpy(self.features_.transform(lists).reshape(b, k, -1))
        mask = torch.from_numpy(lists.items != PAD)
        y = torch.from_numpy(target.astype(np.float32))
        model = ScoreMLP(x.shape[-1], self.layers(), self.dropout)
        z = torch.asinh(x[mask])
        model.mean.copy_(z.mean(0))
        std = z.std(0)
        # A feature constant on the training lists carries nothing learnable; scaling it by
        # 1/0 would turn any other value at serving time into a huge activation.
        model.scale.copy_(torch.where(std > 1e-4, 1.0 / std.clamp_min(1e-4), 0.0))
        opt = torch.optim.Adam(model.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        order = torch.randperm(b, generator=gen)
        n_hold = int(b * self.holdout) if b >= 10 else 0
        hold, fit = order[:n_hold], order[n_hold:]
        self.loss_history_: list[float] = []
        self.holdout_history_: list[float] = []
        best, best_state, stale = float("inf"), None, 0
        for _ in range(self.epochs):
            model.train()
            self.loss_history_.append(self._epoch(model, opt, x[fit], y[fit], mask[fit], gen))
            if n_hold == 0:
                continue
            model.eval()
            with torch.no_grad():
                held = float(_list_loss(model(x[hold]), y[hold], mask[hold]))
            self.holdout_history_.append(held)
            if held < best - 1e-4:
                best, stale = held, 0
                best_state = {key: v.clone() for key, v in model.state_dict().items()}
            else:
                stale += 1
                if stale >= self.patience:
                    break
        if best_state is not None:
            model.load_state_dict(best_state)
        self.model_ = model.eval()
        self._prepare_backend()

    def _epoch(
        self,
        model: ScoreMLP,
        opt: torch.optim.Optimizer,
        x: torch.Tensor,
        y: torch.Tensor,
        mask: torch.Tensor,
        gen: torch.Generator,
    ) -> float:
        """One pass over the lists in shuffled mini-batches; the mean training loss."""
        perm = torch.randperm(len(x), generator=gen)
        total = 0.0
        for lo in range(0, len(x), self.lists_per_batch):
            idx = perm[lo : lo + self.lists_per_batch]
            loss = _list_loss(model(x[idx]), y[idx], mask[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        return total / max(len(x), 1)

    def _prepare_backend(self, onnx_bytes: bytes | None = None) -> None:
        self.onnx_ = None
        if self.backend == "native":
            return
        if onnx_bytes is None:
            onnx_bytes = torch_to_onnx(self.model_, self.features_.n_features)
            if self.backend == "int8":
                # Per-channel weight scales. The first layer stays fp32 by default: its input,
                # the standardised features, is quantised with one uint8 scale per tensor at
                # run time, and on ml-latest-small those features span about -7..+24 standard
                # deviations, so narrow features lost most of their resolution (behind
                # popularity retrieval int8 kept 94-98% of the fp32 top-10 of test users'
                # candidates, 97-99% with the first layer in fp32, at about the same speed:
                # 33x512 is a small share of the 512-256-128 net's multiply-adds). The 1-unit
                # output layer stays fp32 too (free, and scores are not rounded to 8 bits).
                onnx_bytes = quantize_int8(
                    onnx_bytes, per_channel=True, fp32_layers=self.int8_fp32_layers
                )
        self.onnx_ = OrtScorer(onnx_bytes, self.n_threads)

    def _predict(self, x: np.ndarray) -> np.ndarray:
        if self.onnx_ is not None:
            return self.onnx_(x)
        torch.set_num_threads(self.n_threads)
        with torch.inference_mode():
            return self.model_(torch.from_numpy(x)).numpy()

    # -- artifacts ------------------------------------------------------------------------

    def save(self, path: str | Path) -> None:
        """``state_dict`` (torch, loaded with ``weights_only=True``), the ONNX model of a
        non-native backend (``model_<backend>.onnx``), feature tables (``.npy``) and
        parameters (JSON)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        torch.save(self.model_.state_dict(), path / "model.pt")
        if self.onnx_ is not None:
            (path / f"model_{self.backend}.onnx").write_bytes(self.onnx_.model_bytes)
        save_features(self.features_, path)
        (path / "ranker.json").write_text(json.dumps(self._init_params()))

    def _init_params(self) -> dict[str, Any]:
        keys = ("preset", "hidden", "epochs", "lists_per_batch", "lr", "weight_decay", "dropout")
        extra = ("holdout", "patience", "backend", "fit_threads", "seed")
        params = {k: getattr(self, k) for k in (*keys, *extra)}
        params["hidden"] = None if self.hidden is None else list(self.layers())
        params["int8_fp32_layers"] = list(self.int8_fp32_layers)
        return params

    def restore(self, path: str | Path) -> Self:
        """Read what :meth:`save` wrote; this object's ``backend`` and ``n_threads`` apply
        (a stored ONNX model of that backend is used, otherwise it is exported again)."""
        path = Path(path)
        self.features_ = load_features(path)
        try:
            state = torch.load(path / "model.pt", weights_only=True)
            model = ScoreMLP(self.features_.n_features, self.layers(), self.dropout)
            model.load_state_dict(state)
        except Exception as exc:  # torch raises many exception types for a bad file
            raise ArtifactError(f"cannot load MLP ranker from {path}: {exc}") from exc
        self.model_ = model.eval()
        onnx_file = path / f"model_{self.backend}.onnx"
        self._prepare_backend(onnx_file.read_bytes() if onnx_file.exists() else None)
        return self

    @classmethod
    def load(cls, path: str | Path, n_threads: int = 1, backend: str | None = None) -> MLPRanker:
        try:
            params = json.loads((Path(path) / "ranker.json").read_text())
        except (OSError, ValueError) as exc:
            raise ArtifactError(f"cannot load MLP ranker from {path}: {exc}") from exc
        if backend is not None:
            params["backend"] = backend
        return MLPRanker(**params, n_threads=n_threads).restore(path)


class DistilledRanker(MLPRanker):
    """A small MLP student trained to reproduce a teacher ranker's ordering.

    The student learns, list by list, the softmax of the teacher's scores (at
    ``temperature``) on every candidate list it is given (the candidates of the retriever
    it will serve behind), labelled or not, mixed with the validation labels at weight
    ``alpha``. ``fit_teacher=False`` reuses a teacher that is already fitted.

    Defaults (``preset="student"``: 64-32, ``alpha=0``, ``temperature=0.5``, 100 epochs,
    patience 10) come from ml-latest-small with the large MLP as teacher, chosen by how much
    of the teacher's top-10 the student reproduces on test users' candidates (no test
    labels): the earlier 32-unit student with ``alpha=0.5``, ``temperature=1`` and 40 epochs
    kept 80% of it behind popularity retrieval, this one 94%; mixing in the few validation
    labels pulled the student away from the teacher.
    """

    kind = "distilled"

    def __init__(
        self,
        teacher: Ranker,
        *,
        preset: str = "student",
        temperature: float = 0.5,
        alpha: float = 0.0,
        fit_teacher: bool = True,
        epochs: int = 100,
        patience: int = 10,
        **kwargs: Any,
    ) -> None:
        super().__init__(preset=preset, epochs=epochs, patience=patience, **kwargs)
        self.teacher = teacher
        self.temperature = temperature
        self.alpha = alpha
        self.fit_teacher = fit_teacher

    def get_params(self) -> dict[str, Any]:
        teacher = getattr(self.teacher, "name", type(self.teacher).__name__)
        extra = {"teacher": teacher, "alpha": self.alpha, "temperature": self.temperature}
        return {**super().get_params(), **extra}

    def fit(self, train: Interactions, valid: Interactions, candidates: Candidates) -> Self:
        check_backend(self.backend)
        if self.temperature <= 0 or not 0.0 <= self.alpha <= 1.0:
            raise ConfigError("distillation needs temperature > 0 and alpha in [0, 1]")
        if self.fit_teacher:
            self.teacher.fit(train, valid, candidates)
        self.features_ = PairFeatures().fit(train)
        real = candidates.items != PAD
        teacher = np.where(real, self.teacher.score(candidates), -np.inf) / self.temperature
        soft = np.exp(teacher - teacher.max(1, keepdims=True))
        soft /= soft.sum(1, keepdims=True)
        labels = candidate_labels(candidates, valid)
        hard = labels / np.maximum(labels.sum(1, keepdims=True), 1.0)
        has_label = labels.sum(1, keepdims=True) > 0
        target = np.where(has_label, (1 - self.alpha) * soft + self.alpha * hard, soft)
        self._train(candidates, target)
        return self

    def to_mlp(self) -> MLPRanker:
        """The student alone, as a plain :class:`MLPRanker` (for saving and serving)."""
        student = MLPRanker(
            preset=self.preset,
            hidden=self.hidden,
            backend=self.backend,
            int8_fp32_layers=self.int8_fp32_layers,
            n_threads=self.n_threads,
            seed=self.seed,
        )
        student.model_, student.features_, student.onnx_ = self.model_, self.features_, self.onnx_
        return student
