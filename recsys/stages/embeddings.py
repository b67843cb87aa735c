"""User and item embeddings learned from training interactions, for vector retrieval.

:class:`TwoTower` is a small two-tower model in torch: a user tower (id embedding) and an item
tower (id plus category embedding), trained with a sampled softmax over in-batch and uniformly
sampled negatives (with the log-q correction for sampling bias) or with BPR. Its exported
vectors fold a per-item bias in one extra dimension, so an inner-product index ranks exactly
by the trained score, and a user without training history falls back to the item bias
(roughly popularity).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Protocol, Self

import numpy as np
import torch
from torch import nn

from recsys.data.interactions import Interactions
from recsys.errors import ArtifactError, ConfigError


class Embedding(Protocol):
    """Anything with learned user and item vectors whose inner product is the score."""

    user_embeddings_: np.ndarray
    item_embeddings_: np.ndarray

    def fit(self, train: Interactions) -> Self: ...


class PrecomputedEmbedding:
    """Given vectors (tests, benchmarks, vectors trained elsewhere); ``fit`` only checks sizes."""

    def __init__(self, user_embeddings: np.ndarray, item_embeddings: np.ndarray) -> None:
        self.user_embeddings = user_embeddings
        self.item_embeddings = item_embeddings

    def fit(self, train: Interactions | None = None) -> Self:
        users = np.ascontiguousarray(self.user_embeddings, dtype=np.float32)
        items = np.ascontiguousarray(self.item_embeddings, dtype=np.float32)
        if users.ndim != 2 or items.ndim != 2 or users.shape[1] != items.shape[1]:
            raise ConfigError(f"embedding shapes {users.shape} and {items.shape} do not match")
        if train is not None and (len(users) != train.n_users or len(items) != train.n_items):
            raise ConfigError(
                f"embeddings for {len(users)} users x {len(items)} items, data has "
                f"{train.n_users} x {train.n_items}"
            )
        self.user_embeddings_, self.item_embeddings_ = users, items
        return self


class _Towers(nn.Module):
    def __init__(self, n_users: int, cat: np.ndarray, log_q: np.ndarray, dim: int) -> None:
        super().__init__()
        n_items, n_categories = len(cat), int(cat.max()) + 1
        self.register_buffer("cat", torch.from_numpy(cat))
        self.register_buffer("log_q", torch.from_numpy(log_q.astype(np.float32)))
        # Sparse gradients: a step touches only the rows in the batch, not a 1M-row table.
        self.user = nn.Embedding(n_users, dim, sparse=True)
        self.item = nn.Embedding(n_items, dim, sparse=True)
        self.category = nn.Embedding(n_categories, dim, sparse=True)
        self.bias = nn.Embedding(n_items, 1, sparse=True)
        nn.init.normal_(self.user.weight, std=1e-3)
        nn.init.normal_(self.category.weight, std=0.1)
        # Item offsets start near zero: an item never trained on sits next to its category
        # vector (clustered, as side features place cold items), not at a random direction;
        # the small noise keeps such items distinct (no exact ties in a search).
        nn.init.normal_(self.item.weight, std=0.01)
        nn.init.zeros_(self.bias.weight)

    def users(self, u: torch.Tensor, normalize: bool) -> torch.Tensor:
        x = self.user(u)
        return nn.functional.normalize(x, dim=-1) if normalize else x

    def items(self, i: torch.Tensor, normalize: bool) -> torch.Tensor:
        x = self.item(i) + self.category(self.cat[i])
        return nn.functional.normalize(x, dim=-1) if normalize else x


class TwoTower:
    """Two-tower retrieval model trained on implicit feedback.

    Parameters: ``dim`` size of the exported vectors (the towers use ``dim - 1``, the last
    column holds the item bias); ``epochs``; ``batch_size``; ``lr`` (Adam);
    ``weight_decay``; ``temperature`` divides the cosine score when ``normalize``;
    ``loss`` is ``"softmax"`` (in-batch plus ``n_negatives`` shared uniform negatives;
    ``n_negatives >= n_items`` means the full softmax) or ``"bpr"`` (one uniform negative per
    positive); ``seed``; ``n_threads`` for torch.
    """

    name = "two_tower"
    #: Bumped whenever training changes, so cached embeddings of older code are not reused.
    artifact_version = 3

    def __init__(
        self,
        *,
        dim: int = 64,
        epochs: int = 10,
        batch_size: int = 512,
        lr: float = 0.01,
        weight_decay: float = 0.0,
        temperature: float = 0.1,
        loss: str = "softmax",
        n_negatives: int = 256,
        normalize: bool = True,
        seed: int = 0,
        n_threads: int = 1,
    ) -> None:
        self.dim = dim
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.temperature = temperature
        self.loss = loss
        self.n_negatives = n_negatives
        self.normalize = normalize
        self.seed = seed
        self.n_threads = n_threads

    def get_params(self) -> dict:
        return {k: getattr(self, k) for k in _PARAMS}

    def _check(self) -> None:
        if self.loss not in ("softmax", "bpr"):
            raise ConfigError(f"two-tower loss must be 'softmax' or 'bpr', got {self.loss!r}")
        if self.dim < 2 or self.epochs < 0 or self.batch_size <= 0 or self.temperature <= 0:
            raise ConfigError(
                "two-tower dim must be >= 2, batch_size and temperature > 0, epochs >= 0"
            )

    def fit(self, train: Interactions) -> Self:
        """Learn ``user_embeddings_`` and ``item_embeddings_`` (float32, ``dim`` columns)."""
        self._check()
        torch.set_num_threads(self.n_threads)
        gen = torch.Generator().manual_seed(self.seed)
        torch.manual_seed(self.seed)
        counts = np.bincount(train.items, minlength=train.n_items).astype(np.float64)
        log_q = np.log(np.maximum(counts, 1.0) / counts.sum())
        model = _Towers(train.n_users, _categories(train), log_q, self.dim - 1)
        opt = torch.optim.SparseAdam(list(model.parameters()), lr=self.lr)
        users = torch.from_numpy(train.users.astype(np.int64))
        items = torch.from_numpy(train.items.astype(np.int64))
        start = time.perf_counter()
        self.loss_history_: list[float] = []
        for _ in range(self.epochs):
            perm = torch.randperm(len(users), generator=gen)
            total = 0.0
            for lo in range(0, len(perm), self.batch_size):
                idx = perm[lo : lo + self.batch_size]
                loss = self._batch_loss(model, users[idx], items[idx], gen)
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(idx)
            self.loss_history_.append(total / max(len(users), 1))
        self.fit_seconds_ = time.perf_counter() - start
        self._export(model, train)
        return self

    def _scale(self) -> float:
        return 1.0 / self.temperature if self.normalize else 1.0

    def _batch_loss(
        self,
        model: _Towers,
        u: torch.Tensor,
        i: torch.Tensor,
        gen: torch.Generator,
    ) -> torch.Tensor:
        n_items = model.item.num_embeddings
        uvec = model.users(u, self.normalize) * self._scale()
        if self.loss == "bpr":
            j = torch.randint(n_items, (len(i),), generator=gen)
            pos = (uvec * model.items(i, self.normalize)).sum(-1) + model.bias(i)[:, 0]
            neg = (uvec * model.items(j, self.normalize)).sum(-1) + model.bias(j)[:, 0]
            return -nn.functional.logsigmoid(pos - neg).mean() + self._l2(model, u, i)
        if self.n_negatives >= n_items:  # full softmax: every item is a candidate
            cand = torch.arange(n_items)
            logits = uvec @ model.items(cand, self.normalize).T + model.bias(cand)[:, 0]
            return nn.functional.cross_entropy(logits, i) + self._l2(model, u, i)
        # Mixed negatives: in-batch items (popularity-sampled) and uniform items, each
        # corrected by the log of its sampling probability so the softmax is unbiased.
        uniform = torch.randint(n_items, (max(self.n_negatives, 0),), generator=gen)
        cand = torch.cat([i, uniform])
        correction = torch.cat(
            [
                model.log_q[i] + np.log(len(i)),
                torch.full((len(uniform),), np.log(len(uniform) or 1)),
            ]
        )
        if len(uniform):
            correction[len(i) :] -= np.log(n_items)
        logits = uvec @ model.items(cand, self.normalize).T + model.bias(cand)[:, 0]
        logits = logits - correction
        accidental = i[:, None] == cand[None, :]
        accidental[torch.arange(len(i)), torch.arange(len(i))] = False
        logits = logits.masked_fill(accidental, -1e9)
        return nn.functional.cross_entropy(logits, torch.arange(len(i))) + self._l2(model, u, i)

    def _l2(self, model: _Towers, u: torch.Tensor, i: torch.Tensor) -> torch.Tensor | float:
        """``weight_decay`` as an L2 penalty on the rows of this batch (sparse-friendly)."""
        if self.weight_decay <= 0:
            return 0.0
        rows = model.user(u).pow(2).sum(-1).mean() + model.item(i).pow(2).sum(-1).mean()
        return self.weight_decay * rows

    @torch.no_grad()
    def _export(self, model: _Towers, train: Interactions) -> None:
        uvec = model.users(torch.arange(train.n_users), self.normalize) * self._scale()
        ivec = model.items(torch.arange(train.n_items), self.normalize)
        # Users without training history get a zero vector: their scores are the item bias.
        has_history = np.bincount(train.users, minlength=train.n_users) > 0
        uvec[torch.from_numpy(~has_history)] = 0.0
        ones = torch.ones(train.n_users, 1)
        self.user_embeddings_ = torch.cat([uvec, ones], 1).numpy().astype(np.float32)
        # Items without training interactions have no evidence: their bias sits below every
        # trained item's by more than any inner-product term can make up, so they rank after
        # all items users were seen to choose (new items need their own cold-start path).
        bias = model.bias.weight.clone()
        trained = torch.from_numpy(np.bincount(train.items, minlength=train.n_items) > 0)
        if trained.any() and not trained.all():
            span = 2 * uvec.norm(dim=1).max() * ivec.norm(dim=1).max() + 1.0
            bias[~trained] = bias[trained].min() - span
        item = torch.cat([ivec, bias], 1).numpy().astype(np.float32)
        self.item_embeddings_ = np.ascontiguousarray(item)

    def save(self, path: str | Path) -> None:
        """Write the vectors (``.npy``, no pickle) and parameters (JSON) into directory ``path``."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        np.save(path / "user_embeddings.npy", self.user_embeddings_, allow_pickle=False)
        np.save(path / "item_embeddings.npy", self.item_embeddings_, allow_pickle=False)
        (path / "two_tower.json").write_text(json.dumps(self.get_params()))

    def restore(self, path: str | Path) -> Self:
        """Read the vectors written by :meth:`save` into this model."""
        path = Path(path)
        try:
            self.user_embeddings_ = np.load(path / "user_embeddings.npy", allow_pickle=False)
            self.item_embeddings_ = np.load(path / "item_embeddings.npy", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ArtifactError(f"cannot load two-tower embeddings from {path}: {exc}") from exc
        return self

    @classmethod
    def load(cls, path: str | Path) -> TwoTower:
        try:
            params = json.loads((Path(path) / "two_tower.json").read_text())
        except (OSError, ValueError) as exc:
            raise ArtifactError(f"cannot load two-tower embeddings from {path}: {exc}") from exc
        return cls(**params).restore(path)


_PARAMS = (
    "dim",
    "epochs",
    "batch_size",
    "lr",
    "weight_decay",
    "temperature",
    "loss",
    "n_negatives",
    "normalize",
    "seed",
    "n_threads",
)


def _categories(train: Interactions) -> np.ndarray:
    if train.item_category is None:
        return np.zeros(train.n_items, dtype=np.int64)
    cat = np.asarray(train.item_category, dtype=np.int64)
    return np.where(cat < 0, cat.max() + 1, cat)
