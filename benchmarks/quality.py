"""Quality table: every retrieval x ranking pairing, offline metrics and per-request service time.

    .venv/bin/python benchmarks/quality.py                     # ml-latest-small and synthetic
    .venv/bin/python benchmarks/quality.py --datasets ml --quick

Writes ``<out>/quality_<dataset>.csv`` and ``.md`` (one row per pairing: NDCG/recall/HR/MRR@10,
coverage, retrieval recall@K (vs test items and vs exact search), and the measured single-
request service time of each stage, batch 1, one thread), ``<out>/backends_<dataset>.csv``
(native vs ONNX vs int8 ranker time per batch of candidate rows) and prints the issue's
targets as checks. Stages are trained once per dataset and shared across pairings.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recsys.data import generate_synthetic, load_movielens, time_split
from recsys.pipeline import Pipeline
from recsys.stages.embeddings import TwoTower
from recsys.stages.neural import DistilledRanker, MLPRanker
from recsys.stages.neural_retrieval import NeuralFullRetriever
from recsys.stages.ranking import IdentityRanker, LightGBMRanker, PopularityRanker
from recsys.stages.retrieval import (
    PopularityRetriever,
    exact,
    hnsw,
    ivf,
    ivfpq,
    sq8,
)

FINAL_N = 10


def load_split(dataset: str, seed: int):
    if dataset == "ml":
        root = Path(os.environ.get("RECSYS_SHARED_DATA", "/work/shared/data"))
        inter = load_movielens(root / "ml-latest-small")
        return time_split(inter, 0.1, 0.1, mode="per_user"), "ml-latest-small, per-user time split"
    inter = generate_synthetic(3000, 10_000, 150_000, n_categories=20, dim=16, seed=seed)
    return time_split(inter, 0.1, 0.1), "synthetic 3k x 10k x 150k, global time split"


def retrievers(emb: TwoTower, n_items: int, quick: bool) -> dict[str, object]:
    nlist = int(min(256, max(8, n_items // 40)))
    out = {
        "popularity": PopularityRetriever(),
        "exact": exact(emb),
        "hnsw": hnsw(emb, m=32, ef_construction=40, ef_search=64),
    }
    if not quick:
        out |= {
            "ivf": ivf(emb, nlist=nlist, nprobe=max(1, nlist // 16)),
            "ivfpq": ivfpq(emb, nlist=nlist, m=16, nbits=8, nprobe=max(1, nlist // 16)),
            "sq8": sq8(emb),
            "neural_full": NeuralFullRetriever(seed=0),
        }
    return out


def with_backend(ranker, backend: str):
    """A copy of a fitted ranker served by another backend (same learned model)."""
    other = copy.copy(ranker)
    other.backend = backend
    other._prepare_backend()
    return other


def fit_rankers(split, candidates, quick: bool) -> dict[str, list[tuple[object, int]]]:
    """Every ranking option fitted on ``candidates``: name -> the ``(ranker, n)`` cascade."""
    train, valid = split.train, split.valid
    fitted: dict[str, list[tuple[object, int]]] = {}

    def fit(ranker):
        return ranker.fit(train, valid, candidates)

    fitted["none"] = [(IdentityRanker(), FINAL_N)]
    fitted["popularity"] = [(fit(PopularityRanker()), FINAL_N)]
    lgbm = fit(LightGBMRanker(seed=0))
    fitted["lightgbm"] = [(lgbm, FINAL_N)]
    fitted["lightgbm_onnx"] = [(with_backend(lgbm, "onnx"), FINAL_N)]
    fitted["mlp_small"] = [(fit(MLPRanker(preset="small", seed=0)), FINAL_N)]
    if quick:
        return fitted
    large = fit(MLPRanker(preset="large", seed=0))
    fitted["mlp_large"] = [(large, FINAL_N)]
    fitted["mlp_large_onnx"] = [(with_backend(large, "onnx"), FINAL_N)]
    fitted["mlp_large_int8"] = [(with_backend(large, "int8"), FINAL_N)]
    student = DistilledRanker(large, fit_teacher=False, epochs=40, seed=0)
    fitted["distilled(mlp_large)"] = [(fit(student), FINAL_N)]
    pre = fit(LightGBMRanker(n_estimators=50, num_leaves=15, learning_rate=0.1, seed=0))
    pre_n = min(50, candidates.k)
    second = LightGBMRanker(seed=0).fit(train, valid, pre.rank(candidates, pre_n))
    fitted[f"cascade(lgbm_small->{pre_n}, lightgbm)"] = [(pre, pre_n), (second, FINAL_N)]
    return fitted


def time_call(call, batch_size: int = 1, repeats: int = 40, n_candidates: int | None = None):
    """Median and p90 of ``call.run`` at ``batch_size`` (ms), after a short warm-up."""
    rng = np.random.default_rng(0)
    if n_candidates is None:
        inputs = [call.make_input(batch_size, rng) for _ in range(8)]
    else:
        inputs = [call.make_input(batch_size, rng, n_candidates=n_candidates) for _ in range(8)]
    for x in inputs[:3]:
        call.run(x)
    samples = []
    for i in range(repeats):
        start = time.perf_counter()
        call.run(inputs[i % len(inputs)])
        samples.append((time.perf_counter() - start) * 1e3)
    return float(np.median(samples)), float(np.quantile(samples, 0.9))


def run_dataset(dataset: str, k: int, quick: bool, out: Path, seed: int) -> pd.DataFrame:
    split, description = load_split(dataset, seed)
    print(f"== {description}: {split.to_dict()}", flush=True)
    start = time.perf_counter()
    emb = TwoTower(dim=64, epochs=10, seed=seed).fit(split.train)
    print(f"two-tower trained in {time.perf_counter() - start:.1f}s", flush=True)
    sample_users = split.test_users()[:200]
    rows, backend_rows = [], []
    for r_name, retriever in retrievers(emb, split.train.n_items, quick).items():
        start = time.perf_counter()
        retriever.fit(split.train)
        candidates = retriever.retrieve(split.valid_users(), k)
        fitted = fit_rankers(split, candidates, quick)
        retriever.add_history(split.valid)
        print(f"{r_name}: stages fitted in {time.perf_counter() - start:.1f}s", flush=True)
        retrieval_ms = None
        for rank_name, cascade in fitted.items():
            pipe = Pipeline(retriever, k=k, rankers=cascade, final_n=FINAL_N)
            metrics = pipe.evaluate(split).to_dict()
            calls = pipe.stage_callables(sample_users)
            if retrieval_ms is None:
                retrieval_ms = time_call(calls[0])
            ranking_ms = [time_call(c) for c in calls[1:]]
            rank_p50 = sum(m[0] for m in ranking_ms)
            rows.append(
                {
                    "dataset": dataset,
                    "retrieval": r_name,
                    "ranking": rank_name,
                    **metrics,
                    "retrieval_ms_p50": retrieval_ms[0],
                    "retrieval_ms_p90": retrieval_ms[1],
                    "ranking_ms_p50": rank_p50,
                    "ranking_ms_p90": sum(m[1] for m in ranking_ms),
                    "request_ms_p50": retrieval_ms[0] + rank_p50,
                }
            )
            print(
                f"  {r_name:12s} {rank_name:34s} ndcg@10 {metrics['ndcg@10']:.4f} "
                f"R@k {metrics['retrieval_recall@k']:.3f} vsExact "
                f"{metrics['retrieval_recall_vs_exact@k']:.3f} "
                f"ms {retrieval_ms[0]:.3f}+{rank_p50:.3f}",
                flush=True,
            )
            if r_name == "exact":
                backend_rows += backend_speed(rank_name, calls[-1], k)
    table = pd.DataFrame(rows)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / f"quality_{dataset}.csv", index=False)
    (out / f"quality_{dataset}.md").write_text(
        f"# Quality: {description}, k={k}, final_n={FINAL_N}, seed={seed}\n\n"
        + markdown(table.drop(columns=["dataset"]))
        + "\n"
    )
    if backend_rows:
        pd.DataFrame(backend_rows).to_csv(out / f"backends_{dataset}.csv", index=False)
    return table


def markdown(frame: pd.DataFrame) -> str:
    """A GitHub-style table (floats to 4 decimals) without extra dependencies."""
    cells = [[f"{v:.4f}" if isinstance(v, float) else str(v) for v in row] for row in frame.values]
    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in cells])


def backend_speed(rank_name: str, call, k: int) -> list[dict]:
    """Ranker time per batch of ``batch_size x candidates`` rows (native vs ONNX vs int8)."""
    if not rank_name.startswith(("lightgbm", "mlp_large")):
        return []
    rows = []
    for batch_size, n_candidates in ((1, 10), (1, 100), (1, k), (4, k), (16, k)):
        p50, p90 = time_call(call, batch_size, repeats=30, n_candidates=n_candidates)
        rows.append(
            {
                "ranking": rank_name,
                "batch_size": batch_size,
                "n_candidates": n_candidates,
                "rows": batch_size * n_candidates,
                "ms_p50": p50,
                "ms_p90": p90,
            }
        )
    return rows


def check_targets(table: pd.DataFrame) -> None:
    """Print the issue's quality targets as PASS/FAIL lines."""
    for dataset, group in table.groupby("dataset"):
        t = group.set_index(["retrieval", "ranking"])
        pop = t.loc[("popularity", "none"), "ndcg@10"]
        best = t["ndcg@10"].idxmax()
        gain = t.loc[best, "ndcg@10"] / pop - 1
        print(
            f"[{dataset}] best {best} ndcg@10 {t.loc[best, 'ndcg@10']:.4f} vs popularity "
            f"{pop:.4f}: {gain:+.1%} ({'PASS' if gain >= 0.30 else 'FAIL'} >= +30%)"
        )
        for retrieval in t.index.get_level_values(0).unique():
            sub = t.loc[retrieval]
            for variant, source in (
                ("lightgbm_onnx", "lightgbm"),
                ("mlp_large_onnx", "mlp_large"),
                ("mlp_large_int8", "mlp_large"),
                ("distilled(mlp_large)", "mlp_large"),
            ):
                if variant in sub.index and source in sub.index:
                    rel = sub.loc[variant, "ndcg@10"] / sub.loc[source, "ndcg@10"] - 1
                    speed = sub.loc[variant, "ranking_ms_p50"] / sub.loc[source, "ranking_ms_p50"]
                    bound = 0.02 if variant.startswith("distilled") else 0.01
                    ok = rel >= -bound and (not variant.startswith("distilled") or speed <= 0.25)
                    print(
                        f"[{dataset}/{retrieval}] {variant} vs {source}: ndcg {rel:+.2%}, "
                        f"time x{speed:.2f} ({'PASS' if ok else 'FAIL'})"
                    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["ml", "synthetic"])
    parser.add_argument("--k", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="3 retrievals x 5 rankings")
    parser.add_argument("--out", type=Path, default=Path("bench_out"))
    args = parser.parse_args()
    tables = [run_dataset(d, args.k, args.quick, args.out, args.seed) for d in args.datasets]
    check_targets(pd.concat(tables))


if __name__ == "__main__":
    main()
