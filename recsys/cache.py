"""Trained-stage artifacts cached by a hash of the config and data that produced them.

An entry is a directory ``<root>/<key>/`` holding the stage's own files (safe formats only:
LightGBM text, ONNX, torch ``state_dict``, ``.npy`` without pickle, FAISS index, JSON) and a
``manifest.json`` with the SHA-256 of each file. Entries are built in a temporary directory
and renamed into place, so a crash or an error never leaves a partial entry behind; a file
that no longer matches its manifest raises :class:`~recsys.errors.ArtifactError`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np

from recsys.data.interactions import Interactions
from recsys.errors import ArtifactError

T = TypeVar("T")
MANIFEST = "manifest.json"
# Part of every cache key: bump it when training code changes what a stage learns from the
# same config and data (a new loss, feature, default...), so older artifacts stop matching.
# A single stage can also carry its own ``artifact_version`` attribute (see
# ``recsys.pipeline.stage_config``) to invalidate only its artifacts.
ARTIFACT_VERSION = 2


class Cacheable(Protocol):
    """A stage that can write its learned state and read it back into itself."""

    def save(self, path: str | Path) -> None: ...

    def restore(self, path: str | Path) -> Any: ...


def default_root() -> Path:
    """``$RECSYS_CACHE_DIR``, else ``~/.cache/recsys``."""
    env = os.environ.get("RECSYS_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "recsys"


def stable_hash(config: Any) -> str:
    """SHA-256 of a canonical JSON rendering (sorted keys; tuples as lists; numpy as Python)."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=_jsonable)
    return hashlib.sha256(text.encode()).hexdigest()


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if hasattr(value, "__iter__") and not isinstance(value, (str, bytes)):
        return list(value)
    return repr(value)


def data_fingerprint(*parts: Interactions) -> str:
    """A hash of the interaction rows, id spaces and categories of ``parts``."""
    digest = hashlib.sha256()
    for inter in parts:
        digest.update(f"{inter.n_users},{inter.n_items},{len(inter)}".encode())
        for col in ("user", "item", "timestamp", "weight"):
            digest.update(np.ascontiguousarray(inter.frame[col].to_numpy()).tobytes())
        if inter.item_category is not None:
            digest.update(np.ascontiguousarray(inter.item_category).tobytes())
    return digest.hexdigest()


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class ArtifactCache:
    """Directory of artifacts keyed by :meth:`key` (config dict + data fingerprint)."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_root()

    @staticmethod
    def key(config: Mapping[str, Any], data: str = "", version: int | None = None) -> str:
        """A short stable key for a config, a data fingerprint and the artifact version
        (default :data:`ARTIFACT_VERSION`)."""
        version = ARTIFACT_VERSION if version is None else version
        return stable_hash({"config": config, "data": data, "artifact_version": version})[:32]

    def path(self, key: str) -> Path:
        return self.root / key

    def has(self, key: str) -> bool:
        return (self.path(key) / MANIFEST).is_file()

    def save(self, key: str, write: Callable[[Path], None], meta: Mapping | None = None) -> Path:
        """Run ``write(tmp_dir)``, add the manifest, and move the result to ``path(key)``.

        If ``write`` raises, nothing is left behind. If another process saved the same key
        meanwhile, its entry is kept (both are built from the same config and data).
        """
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".tmp-{key}-{uuid.uuid4().hex}"
        try:
            tmp.mkdir()
            write(tmp)
            files = {
                str(p.relative_to(tmp)): _file_digest(p)
                for p in sorted(tmp.rglob("*"))
                if p.is_file()
            }
            manifest = {"key": key, "created_at": time.time(), "files": files, "meta": meta or {}}
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, default=_jsonable))
            try:
                tmp.rename(self.path(key))
            except OSError:
                if not self.has(key):
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return self.path(key)

    def verify(self, key: str) -> Path:
        """The entry's directory after checking every file against its manifest."""
        path = self.path(key)
        try:
            manifest = json.loads((path / MANIFEST).read_text())
        except (OSError, ValueError) as exc:
            raise ArtifactError(
                f"artifact {key} is missing or has no valid manifest at {path}"
            ) from exc
        for name, digest in manifest["files"].items():
            file = path / name
            if not file.is_file():
                raise ArtifactError(f"artifact {key}: file {name} is missing (delete {path})")
            if _file_digest(file) != digest:
                raise ArtifactError(f"artifact {key}: file {name} is corrupt (delete {path})")
        return path

    def load(self, key: str, read: Callable[[Path], T]) -> T:
        """``read(path)`` of a verified entry; :class:`ArtifactError` if missing or corrupt."""
        return read(self.verify(key))

    def get_or_build(
        self,
        key: str,
        build: Callable[[], T],
        write: Callable[[T, Path], None],
        read: Callable[[Path], T],
        meta: Mapping | None = None,
    ) -> tuple[T, bool]:
        """The cached value of ``key`` (``read``) or a new one (``build``, then ``write``).

        Returns ``(value, hit)``.
        """
        if self.has(key):
            return self.load(key, read), True
        value = build()
        self.save(key, lambda tmp: write(value, tmp), meta)
        return value, False

    def fit_stage(
        self, stage: Cacheable, config: Mapping[str, Any], data: str, fit: Callable[[], Any]
    ) -> tuple[str, bool]:
        """Restore ``stage``'s learned state from the cache, or ``fit()`` it and store it.

        Returns ``(key, hit)``; the key identifies the stage for downstream keys.
        """
        key = self.key(config, data)

        def build() -> Cacheable:
            fit()
            return stage

        def read(path: Path) -> Cacheable:
            stage.restore(path)
            return stage

        _, hit = self.get_or_build(key, build, lambda s, p: s.save(p), read, meta=config)
        return key, hit
