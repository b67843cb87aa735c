"""How fast the data layer scales: synthetic generation, split, features, ANN vectors.

    python benchmarks/data_scale.py [--out data_scale.md] [--quick]

Prints (and optionally writes) a markdown table: size, seconds and peak resident memory.
The full run generates 1M items with 3M interactions and a 1M x 64 vector catalogue.
"""

from __future__ import annotations

import argparse
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from recsys.data import build_features, generate_synthetic, synthetic_item_vectors, time_split


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


T = TypeVar("T")


def _timed(step: str, size: str, fn: Callable[[], T], rows: list[str]) -> T:
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    rows.append(f"| {step} | {size} | {seconds:.2f} | {_peak_rss_mb():.0f} |")
    print(rows[-1], flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="also write the table to this file")
    parser.add_argument("--quick", action="store_true", help="10x smaller sizes")
    args = parser.parse_args()
    scale = 10 if args.quick else 1
    n_users, n_items, n_inter = 200_000 // scale, 1_000_000 // scale, 3_000_000 // scale
    rows = ["| step | size | seconds | peak RSS MB |", "|---|---|---|---|"]
    print("\n".join(rows))
    size = f"{n_users:,} users, {n_items:,} items, {n_inter:,} interactions"
    inter = _timed(
        "generate_synthetic",
        size,
        lambda: generate_synthetic(n_users=n_users, n_items=n_items, n_interactions=n_inter),
        rows,
    )
    split = _timed("time_split", f"{n_inter:,} rows", lambda: time_split(inter), rows)
    train = split.train
    _timed("build_features", f"{len(train):,} train rows", lambda: build_features(train), rows)
    _timed(
        "synthetic_item_vectors",
        f"{n_items:,} x 64",
        lambda: synthetic_item_vectors(n_items, dim=64, n_clusters=1024),
        rows,
    )
    if args.out:
        tmp = args.out.with_suffix(args.out.suffix + ".tmp")
        tmp.write_text("\n".join(rows) + "\n")
        tmp.replace(args.out)  # atomic: a reader never sees half a table


if __name__ == "__main__":
    main()
