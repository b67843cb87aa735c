"""Candidate retrieval: exact or approximate inner-product search over learned embeddings."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Self

import faiss
import numpy as np

from recsys.data.interactions import Interactions
from recsys.errors import ArtifactError, ConfigError
from recsys.stages.base import Candidates, check_users
from recsys.stages.embeddings import Embedding, PrecomputedEmbedding
from recsys.stages.history import SeenItems

_METRICS = {"ip": faiss.METRIC_INNER_PRODUCT, "l2": faiss.METRIC_L2}


class SeenFilterMixin:
    """Seen-item bookkeeping shared by retrievers: ``seen_`` and :meth:`add_history`."""

    seen_: SeenItems

    def add_history(self, inter: Interactions) -> None:
        """Also exclude the items of ``inter`` (history known at serving time, e.g. validation)."""
        self.seen_ = self.seen_.union(inter)


class FaissRetriever(SeenFilterMixin):
    """The ``k`` best unseen items by inner product of user and item embeddings.

    ``factory`` is any FAISS ``index_factory`` string (``"Flat"``, ``"HNSW32"``,
    ``"IVF256,Flat"``, ``"IVF1024,PQ16x8"``, ``"OPQ16,IVF1024,PQ16"``, ``"SQ8"``...);
    ``nprobe`` (IVF), ``ef_search`` (HNSW) and ``k_factor`` (a refine step, factory suffix
    ``,RFlat``: re-rank ``k_factor * k`` coded candidates by exact inner product) are
    search-time knobs and ``ef_construction`` a build-time one. Seen items are excluded by
    over-fetching and filtering.

    ``ip_to_l2`` indexes inner-product vectors through the standard MIPS-to-L2 reduction
    (items get an extra coordinate ``sqrt(M^2 - |x|^2)``, queries a 0, so the L2 ranking is
    the inner-product ranking); ``None`` means "for HNSW and IVF over uncompressed vectors"
    (PQ needs ``m`` to divide the dimension, and scalar codes lose precision on the extra
    coordinate): HNSW graphs and IVF cells built on raw inner products of vectors with a
    bias column find few of the true neighbours (measured in ``benchmarks/ann.py``).
    Scores returned are always inner products.
    """

    def __init__(
        self,
        embedding: Embedding,
        factory: str = "Flat",
        *,
        nprobe: int | None = None,
        ef_search: int | None = None,
        ef_construction: int | None = None,
        k_factor: int | None = None,
        metric: str = "ip",
        ip_to_l2: bool | None = None,
        n_threads: int = 1,
        train_size: int | None = 100_000,
        seed: int = 0,
    ) -> None:
        self.embedding = embedding
        self.factory = factory
        self.nprobe = nprobe
        self.ef_search = ef_search
        self.ef_construction = ef_construction
        self.k_factor = k_factor
        self.metric = metric
        self.ip_to_l2 = ip_to_l2
        self.n_threads = n_threads
        self.train_size = train_size
        self.seed = seed

    @property
    def name(self) -> str:
        return "faiss_" + re.sub(r"[^0-9a-z]+", "_", self.factory.lower()).strip("_")

    def get_params(self) -> dict:
        return {
            "factory": self.factory,
            "nprobe": self.nprobe,
            "ef_search": self.ef_search,
            "ef_construction": self.ef_construction,
            "k_factor": self.k_factor,
            "metric": self.metric,
            "ip_to_l2": self.ip_to_l2,
            "train_size": self.train_size,
            "seed": self.seed,
        }

    @property
    def is_exact(self) -> bool:
        return self.factory.strip() in ("Flat", "IDMap,Flat")

    def fit(self, train: Interactions) -> Self:
        """Train the embeddings (unless already trained), then build the index."""
        if self.metric not in _METRICS:
            raise ConfigError(f"metric must be one of {sorted(_METRICS)}, got {self.metric!r}")
        _check_nprobe(self.factory, self.nprobe)
        _check_k_factor(self.factory, self.k_factor)
        faiss.omp_set_num_threads(self.n_threads)
        if not hasattr(self.embedding, "item_embeddings_"):
            self.embedding.fit(train)
        self.user_vectors_ = np.ascontiguousarray(self.embedding.user_embeddings_, np.float32)
        self.item_vectors_ = items = np.ascontiguousarray(
            self.embedding.item_embeddings_, np.float32
        )
        start = time.perf_counter()
        self.index_ = build_index(
            self._indexed(items),
            self.factory,
            metric="l2" if self._l2() else self.metric,
            ef_construction=self.ef_construction,
            train_size=self.train_size,
            seed=self.seed,
        )
        self.build_seconds_ = time.perf_counter() - start
        self._set_search_params()
        self.n_items_ = len(items)
        self.seen_ = SeenItems.from_interactions(train)
        return self

    def _l2(self) -> bool:
        """Whether inner products are searched through the MIPS-to-L2 reduction."""
        if self.metric != "ip":
            return False
        if self.ip_to_l2 is None:  # graphs and IVF cells over exact (uncompressed) vectors
            return not self.is_exact and not re.search(r"PQ|SQ|LSH|RaBitQ", self.factory)
        return bool(self.ip_to_l2)

    def _indexed(self, items: np.ndarray) -> np.ndarray:
        """The vectors as stored in the index (augmented for the L2 reduction)."""
        if not self._l2():
            return items
        sq = np.einsum("ij,ij->i", items, items)
        self.max_sq_norm_ = float(sq.max()) if len(sq) else 0.0
        extra = np.sqrt(np.maximum(self.max_sq_norm_ - sq, 0.0))[:, None]
        return np.ascontiguousarray(np.hstack([items, extra]), np.float32)

    def _set_search_params(self) -> None:
        params = faiss.ParameterSpace()
        if self.nprobe is not None:
            params.set_index_parameter(self.index_, "nprobe", int(self.nprobe))
        if self.ef_search is not None:
            params.set_index_parameter(self.index_, "efSearch", int(self.ef_search))
        if self.k_factor is not None:
            params.set_index_parameter(self.index_, "k_factor_rf", float(self.k_factor))

    def exact(self) -> FaissRetriever:
        """An exact (``Flat``) retriever over the same embeddings and history."""
        items = self.item_vectors_
        emb = PrecomputedEmbedding(self.user_vectors_, items).fit()
        exact = FaissRetriever(emb, "Flat", metric=self.metric, n_threads=self.n_threads)
        exact.user_vectors_, exact.item_vectors_ = self.user_vectors_, items
        exact.n_items_, exact.seen_ = len(items), self.seen_
        exact.index_ = build_index(items, "Flat", metric=self.metric)
        return exact

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Raw index search (no seen-item filtering): ``(scores, items)`` of shape ``(B, k)``."""
        faiss.omp_set_num_threads(self.n_threads)
        queries = np.ascontiguousarray(queries, np.float32)
        if self._l2():
            padded = np.hstack([queries, np.zeros((len(queries), 1), np.float32)])
            dist, items = self.index_.search(padded, k)
            # |q - x'|^2 = |q|^2 + M^2 - 2 q.x  ->  q.x
            sq = np.einsum("ij,ij->i", queries, queries)[:, None]
            return ((sq + self.max_sq_norm_ - dist) / 2).astype(np.float32), items
        scores, items = self.index_.search(queries, k)
        if self.metric == "l2":
            scores = -scores
        return scores, items

    def retrieve(self, users: np.ndarray, k: int) -> Candidates:
        """The ``k`` best items each user has not seen in training, best first."""
        _check_k(k, self.n_items_)
        users = check_users(users, len(self.user_vectors_))
        fetch = min(k + self.seen_.max_count(users), self.n_items_)
        scores, items = self.search(self.user_vectors_[users], fetch)
        items, scores = self.seen_.filter_topk(users, items, scores, k)
        return Candidates(users, items, scores)

    def save(self, path: str | Path) -> None:
        """Index (FAISS binary format), vectors and history (``.npy``) into ``path``."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        faiss.write_index(self.index_, str(path / "index.faiss"))
        np.save(path / "user_vectors.npy", self.user_vectors_, allow_pickle=False)
        np.save(path / "item_vectors.npy", self.item_vectors_, allow_pickle=False)
        np.save(path / "seen_keys.npy", self.seen_.keys, allow_pickle=False)
        (path / "retriever.json").write_text(json.dumps(self.get_params()))

    def restore(self, path: str | Path) -> Self:
        """Read what :meth:`save` wrote; this object's search-time knobs (``nprobe``,
        ``ef_search``, ``n_threads``) apply."""
        path = Path(path)
        try:
            users = np.load(path / "user_vectors.npy", allow_pickle=False)
            items = np.load(path / "item_vectors.npy", allow_pickle=False)
            keys = np.load(path / "seen_keys.npy", allow_pickle=False)
            index = faiss.read_index(str(path / "index.faiss"))
        except (OSError, ValueError, RuntimeError) as exc:
            raise ArtifactError(f"cannot load retriever from {path}: {exc}") from exc
        self.user_vectors_, self.item_vectors_, self.index_ = users, items, index
        self.n_items_ = len(items)
        if self._l2():
            self.max_sq_norm_ = float(np.einsum("ij,ij->i", items, items).max())
        self.seen_ = SeenItems(keys, len(users), len(items))
        self._set_search_params()
        return self

    @classmethod
    def load(cls, path: str | Path, n_threads: int = 1) -> FaissRetriever:
        try:
            meta = json.loads((Path(path) / "retriever.json").read_text())
        except (OSError, ValueError) as exc:
            raise ArtifactError(f"cannot load retriever from {path}: {exc}") from exc
        empty = PrecomputedEmbedding(np.zeros((0, 1)), np.zeros((0, 1)))
        return cls(empty, n_threads=n_threads, **meta).restore(path)


def build_index(
    vectors: np.ndarray,
    factory: str,
    *,
    metric: str = "ip",
    ef_construction: int | None = None,
    train_size: int | None = 100_000,
    seed: int = 0,
) -> faiss.Index:
    """A FAISS index from a factory string, trained (on a seeded sample) where it needs it."""
    try:
        index = faiss.index_factory(vectors.shape[1], factory, _METRICS[metric])
    except RuntimeError as exc:
        text = str(exc).strip()
        reason = (text.split("failed:") if "failed:" in text else text.split(": "))[-1].strip()
        what = (
            "unknown FAISS factory string" if "could not parse" in text else "invalid FAISS index"
        )
        raise ConfigError(f"{what} {factory!r} for {vectors.shape[1]}-d vectors: {reason}") from exc
    if ef_construction is not None:
        hnsw = _find_hnsw(index)
        if hnsw is None:
            raise ConfigError(f"ef_construction given but {factory!r} has no HNSW graph")
        hnsw.efConstruction = int(ef_construction)
    nlist = _nlist(factory)
    if nlist is not None and nlist > len(vectors):
        raise ConfigError(f"IVF nlist={nlist} exceeds the {len(vectors)} items to index")
    if not index.is_trained:
        sample = vectors
        if train_size is not None and len(vectors) > train_size:
            rng = np.random.default_rng(seed)
            sample = vectors[np.sort(rng.choice(len(vectors), train_size, replace=False))]
        index.train(np.ascontiguousarray(sample))
    index.add(vectors)
    return index


def _find_hnsw(index: faiss.Index) -> faiss.HNSW | None:
    for candidate in (index, getattr(faiss.downcast_index(index), "index", None)):
        if candidate is None:
            continue
        down = faiss.downcast_index(candidate)
        if hasattr(down, "hnsw"):
            return down.hnsw
    return None


def _nlist(factory: str) -> int | None:
    match = re.search(r"IVF(\d+)", factory)
    return int(match.group(1)) if match else None


def _check_nprobe(factory: str, nprobe: int | None) -> None:
    if nprobe is None:
        return
    nlist = _nlist(factory)
    if nlist is None:
        raise ConfigError(f"nprobe={nprobe} given but {factory!r} is not an IVF index")
    if not 1 <= nprobe <= nlist:
        raise ConfigError(f"nprobe={nprobe} must lie in [1, nlist={nlist}]")


def _check_k_factor(factory: str, k_factor: int | None) -> None:
    if k_factor is None:
        return
    if not re.search(r",\s*RFlat\s*$", factory):
        raise ConfigError(f"k_factor={k_factor} given but {factory!r} has no ',RFlat' refine step")
    if k_factor < 1:
        raise ConfigError(f"k_factor must be at least 1, got {k_factor}")


def _check_k(k: int, n_items: int) -> None:
    if k <= 0:
        raise ConfigError(f"k must be positive, got {k}")
    if k > n_items:
        raise ConfigError(f"k={k} exceeds the catalogue of {n_items} items")


class PopularityRetriever(SeenFilterMixin):
    """Baseline: the ``k`` most popular (training count) unseen items, the same for everyone."""

    name = "popularity"
    is_exact = True

    def get_params(self) -> dict:
        return {}

    def fit(self, train: Interactions) -> Self:
        counts = np.bincount(train.items, minlength=train.n_items).astype(np.float32)
        self.order_ = np.argsort(-counts, kind="stable").astype(np.int64)
        self.scores_ = np.log1p(counts[self.order_])
        self.n_items_, self.n_users_ = train.n_items, train.n_users
        self.seen_ = SeenItems.from_interactions(train)
        return self

    def retrieve(self, users: np.ndarray, k: int) -> Candidates:
        _check_k(k, self.n_items_)
        users = check_users(users, self.n_users_)
        fetch = min(k + self.seen_.max_count(users), self.n_items_)
        items = np.broadcast_to(self.order_[:fetch], (len(users), fetch))
        scores = np.broadcast_to(self.scores_[:fetch], (len(users), fetch))
        items, scores = self.seen_.filter_topk(users, items, scores, k)
        return Candidates(users, items, scores)


def exact(embedding: Embedding, **kwargs: object) -> FaissRetriever:
    """``exact``: brute-force inner product (``Flat``)."""
    return FaissRetriever(embedding, "Flat", **kwargs)


def ivf(
    embedding: Embedding, nlist: int = 256, nprobe: int = 16, **kwargs: object
) -> FaissRetriever:
    """``ivf``: inverted lists over ``nlist`` k-means cells, ``nprobe`` of them searched."""
    return FaissRetriever(embedding, f"IVF{nlist},Flat", nprobe=nprobe, **kwargs)


def ivfpq(
    embedding: Embedding,
    *,
    nlist: int = 256,
    m: int = 16,
    nbits: int = 8,
    nprobe: int = 16,
    opq: bool = False,
    refine_k_factor: int | None = None,
    **kwargs: object,
) -> FaissRetriever:
    """``ivfpq``: IVF with product-quantised codes (``m`` sub-vectors of ``nbits`` bits),
    optionally preceded by an OPQ rotation. ``refine_k_factor`` adds a refine step: the
    ``refine_k_factor * k`` best coded candidates are re-ranked by exact inner product over
    the full vectors (kept beside the codes, so memory grows by the uncompressed vectors)."""
    # "np": no polysemous training, which FAISS does by default for IVF-PQ and which took 47 of
    # 50 s of an IVF-PQ build on tiny data while only speeding up Hamming-filtered search.
    factory = f"{f'OPQ{m},' if opq else ''}IVF{nlist},PQ{m}x{nbits}np"
    if refine_k_factor is not None:
        factory += ",RFlat"
    return FaissRetriever(embedding, factory, nprobe=nprobe, k_factor=refine_k_factor, **kwargs)


def hnsw(
    embedding: Embedding,
    m: int = 32,
    ef_construction: int = 100,
    ef_search: int = 64,
    **kwargs: object,
) -> FaissRetriever:
    """``hnsw``: a navigable small-world graph with ``m`` links per node."""
    return FaissRetriever(
        embedding, f"HNSW{m}", ef_search=ef_search, ef_construction=ef_construction, **kwargs
    )


def sq8(embedding: Embedding, **kwargs: object) -> FaissRetriever:
    """``sq8``: exhaustive search over 8-bit scalar-quantised vectors."""
    return FaissRetriever(embedding, "SQ8", **kwargs)
