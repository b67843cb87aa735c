"""``neural_full``: the "large neural network" candidate generator teams run before a redesign.

A non-factorised model, an MLP over the concatenation of user features, item features and
user/item id embeddings, scores every item of the catalogue for every request. Its first
layer is split into a user and an item projection (the same function as one layer over the
concatenation), so the item half is computed once per catalogue, not once per request; every
later layer still runs on all ``n_items`` pairs, which is what makes this stage slow.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Self

import numpy as np
import torch
from torch import nn

from recsys.data.features import build_features
from recsys.data.interactions import Interactions
from recsys.errors import ArtifactError, ConfigError
from recsys.stages.base import PAD, Candidates, check_users
from recsys.stages.history import SeenItems
from recsys.stages.retrieval import SeenFilterMixin, _check_k

# Pairs scored per chunk while serving (bounds memory at ~chunk x hidden[0] floats).
_CHUNK_PAIRS = 1 << 17


def _standardise(table: np.ndarray) -> np.ndarray:
    z = np.arcsinh(table.astype(np.float32))
    return (z - z.mean(0)) / np.maximum(z.std(0), 1e-6)


class _PairMLP(nn.Module):
    def __init__(
        self, user_x: np.ndarray, item_x: np.ndarray, id_dim: int, hidden: tuple[int, ...]
    ) -> None:
        super().__init__()
        self.register_buffer("user_x", torch.from_numpy(user_x))
        self.register_buffer("item_x", torch.from_numpy(item_x))
        self.user_id = nn.Embedding(len(user_x), id_dim)
        self.item_id = nn.Embedding(len(item_x), id_dim)
        nn.init.normal_(self.user_id.weight, std=0.05)
        nn.init.normal_(self.item_id.weight, std=0.05)
        self.user_proj = nn.Linear(user_x.shape[1] + id_dim, hidden[0])
        self.item_proj = nn.Linear(item_x.shape[1] + id_dim, hidden[0], bias=False)
        layers: list[nn.Module] = []
        for a, b in itertools.pairwise(hidden):
            layers += [nn.Linear(a, b), nn.ReLU()]
        layers.append(nn.Linear(hidden[-1], 1))
        self.head = nn.Sequential(*layers)

    def users(self, u: torch.Tensor) -> torch.Tensor:
        return self.user_proj(torch.cat([self.user_x[u], self.user_id(u)], -1))

    def items(self, i: torch.Tensor) -> torch.Tensor:
        return self.item_proj(torch.cat([self.item_x[i], self.item_id(i)], -1))

    def pair_scores(self, user_h: torch.Tensor, item_h: torch.Tensor) -> torch.Tensor:
        """``(B, H)`` user and ``(B, m, H)`` or ``(m, H)`` item projections -> ``(B, m)``."""
        return self.head(torch.relu(user_h[:, None, :] + item_h)).squeeze(-1)


class NeuralFullRetriever(SeenFilterMixin):
    """Scores the whole catalogue with an MLP over user and item features (no ANN index).

    Trained with a sampled softmax: each training interaction against ``n_negatives``
    uniformly drawn items. ``hidden`` are the MLP widths; ``id_dim`` the id embedding size.
    """

    name = "neural_full"
    is_exact = True

    def __init__(
        self,
        *,
        hidden: tuple[int, ...] | list[int] = (128, 64),
        id_dim: int = 16,
        epochs: int = 3,
        batch_size: int = 512,
        n_negatives: int = 32,
        lr: float = 3e-3,
        n_threads: int = 1,
        fit_threads: int = 1,
        seed: int = 0,
    ) -> None:
        self.hidden = hidden
        self.id_dim = id_dim
        self.epochs = epochs
        self.batch_size = batch_size
        self.n_negatives = n_negatives
        self.lr = lr
        self.n_threads = n_threads
        self.fit_threads = fit_threads
        self.seed = seed

    def get_params(self) -> dict:
        keys = ("id_dim", "epochs", "batch_size", "n_negatives", "lr", "seed")
        return {"hidden": list(self.hidden), **{k: getattr(self, k) for k in keys}}

    def fit(self, train: Interactions) -> Self:
        if not self.hidden or self.n_negatives <= 0 or self.epochs < 0:
            raise ConfigError("neural_full needs hidden layers, n_negatives > 0, epochs >= 0")
        torch.set_num_threads(self.fit_threads)
        torch.manual_seed(self.seed)
        gen = torch.Generator().manual_seed(self.seed)
        tables = build_features(train)
        model = _PairMLP(
            _standardise(tables.user_features),
            _standardise(tables.item_features),
            self.id_dim,
            tuple(int(h) for h in self.hidden),
        )
        opt = torch.optim.Adam(model.parameters(), lr=self.lr)
        users = torch.from_numpy(train.users.astype(np.int64))
        items = torch.from_numpy(train.items.astype(np.int64))
        self.loss_history_: list[float] = []
        for _ in range(self.epochs):
            perm = torch.randperm(len(users), generator=gen)
            total = 0.0
            for lo in range(0, len(perm), self.batch_size):
                idx = perm[lo : lo + self.batch_size]
                neg = torch.randint(train.n_items, (len(idx), self.n_negatives), generator=gen)
                cand = torch.cat([items[idx, None], neg], 1)
                logits = model.pair_scores(model.users(users[idx]), model.items(cand))
                loss = nn.functional.cross_entropy(logits, torch.zeros(len(idx), dtype=torch.long))
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(idx)
            self.loss_history_.append(total / max(len(users), 1))
        self._finish(model.eval(), SeenItems.from_interactions(train))
        return self

    def save(self, path: str | Path) -> None:
        """``state_dict`` (torch, weights only), history (``.npy``) and sizes (JSON)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        torch.save(self.model_.state_dict(), path / "model.pt")
        np.save(path / "seen_keys.npy", self.seen_.keys, allow_pickle=False)
        shape = {"n_users": self.n_users_, "n_items": self.n_items_, **self.get_params()}
        (path / "neural_full.json").write_text(json.dumps(shape))

    def restore(self, path: str | Path) -> Self:
        """Read what :meth:`save` wrote into this (identically configured) retriever."""
        path = Path(path)
        try:
            state = torch.load(path / "model.pt", weights_only=True)
            keys = np.load(path / "seen_keys.npy", allow_pickle=False)
            user_x, item_x = state["user_x"].numpy(), state["item_x"].numpy()
            model = _PairMLP(user_x, item_x, self.id_dim, tuple(int(h) for h in self.hidden))
            model.load_state_dict(state)
        except Exception as exc:  # torch raises many exception types for a bad file
            raise ArtifactError(f"cannot load neural_full retriever from {path}: {exc}") from exc
        self._finish(model.eval(), SeenItems(keys, len(user_x), len(item_x)))
        return self

    def _finish(self, model: _PairMLP, seen: SeenItems) -> None:
        with torch.inference_mode():
            self.item_h_ = model.items(torch.arange(seen.n_items))
        self.model_, self.seen_ = model, seen
        self.n_items_, self.n_users_ = seen.n_items, seen.n_users

    def score_all(self, users: np.ndarray) -> np.ndarray:
        """``(B, n_items)`` float32 scores of every item for every user."""
        torch.set_num_threads(self.n_threads)
        out = np.empty((len(users), self.n_items_), np.float32)
        step = max(1, _CHUNK_PAIRS // self.n_items_)
        with torch.inference_mode():
            for lo in range(0, len(users), step):
                u = torch.from_numpy(users[lo : lo + step])
                out[lo : lo + step] = self.model_.pair_scores(self.model_.users(u), self.item_h_)
        return out

    def retrieve(self, users: np.ndarray, k: int) -> Candidates:
        """The ``k`` best-scoring unseen items of the whole catalogue, best first."""
        _check_k(k, self.n_items_)
        users = check_users(users, self.n_users_)
        scores = self.score_all(users)
        keys = self.seen_.keys
        lo = np.searchsorted(keys, users * self.n_items_)
        counts = np.searchsorted(keys, (users + 1) * self.n_items_) - lo
        rows = np.repeat(np.arange(len(users)), counts)
        # positions lo[r], lo[r] + 1, ... of every row's seen keys, without a Python loop
        pos = np.repeat(lo - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())
        cols = keys[pos] % self.n_items_
        scores[rows, cols] = -np.inf
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        top_scores = np.take_along_axis(scores, top, 1)
        order = np.argsort(-top_scores, axis=1, kind="stable")
        items = np.take_along_axis(top, order, 1).astype(np.int64)
        top_scores = np.take_along_axis(top_scores, order, 1)
        items[np.isneginf(top_scores)] = PAD
        return Candidates(users, items, top_scores)
