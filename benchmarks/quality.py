"""Quality table: every retrieval x ranking pairing, offline metrics and per-request service time.

    .venv/bin/python benchmarks/quality.py                     # ml-latest-small and synthetic
    .venv/bin/python benchmarks/quality.py --datasets ml --quick
    .venv/bin/python benchmarks/quality.py --seeds 0 1 2          # every stage trained per seed

Writes ``<out>/quality_<dataset>.csv`` and ``.md`` (one row per pairing: NDCG/recall/HR/MRR@10,
coverage, retrieval recall@K (vs test items and vs exact search), and the measured single-
request service time of each stage, batch 1, one thread), ``<out>/backends_<dataset>.csv``
(native vs ONNX vs int8 ranker time per batch of candidate rows) and prints the issue's
targets as checks. Stages are trained once per dataset and seed and shared across pairings.

Each variant-vs-source check (ONNX and int8 vs fp32, distilled student vs teacher) and the
best pairing vs popularity report the relative NDCG@10 difference averaged over ``--seeds``,
its spread over seeds, and a paired bootstrap 95% CI over test users (the same users
resampled for both sides, see :func:`recsys.metrics_ranking.paired_bootstrap_relative`).
PASS/FAIL judges the seed mean against the target; the CI shows how much the test users
alone could move it. Per-user NDCG@10 of every pairing goes to
``<out>/per_user_<dataset>.parquet``.
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
from recsys.metrics_ranking import paired_bootstrap_relative
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


DESCRIPTIONS = {
    "ml": "ml-latest-small, per-user time split",
    "synthetic": "synthetic 3k x 10k x 150k, global time split",
}


def load_split(dataset: str, seed: int):
    """The dataset's split (synthetic data are generated with ``seed``) and its description."""
    if dataset == "ml":
        root = Path(os.environ.get("RECSYS_SHARED_DATA", "/work/shared/data"))
        inter = load_movielens(root / "ml-latest-small")
        return time_split(inter, 0.1, 0.1, mode="per_user"), DESCRIPTIONS[dataset]
    inter = generate_synthetic(3000, 10_000, 150_000, n_categories=20, dim=16, seed=seed)
    return time_split(inter, 0.1, 0.1), DESCRIPTIONS[dataset]


def retrievers(emb: TwoTower, n_items: int, quick: bool, seed: int = 0) -> dict[str, object]:
    nlist = int(min(256, max(8, n_items // 40)))
    out = {
        "popularity": PopularityRetriever(),
        "exact": exact(emb),
        "hnsw": hnsw(emb, m=32, ef_construction=40, ef_search=64, seed=seed),
    }
    if not quick:
        out |= {
            "ivf": ivf(emb, nlist=nlist, nprobe=max(1, nlist // 16), seed=seed),
            "ivfpq": ivfpq(emb, nlist=nlist, m=16, nbits=8, nprobe=max(1, nlist // 16), seed=seed),
            "sq8": sq8(emb),
            "neural_full": NeuralFullRetriever(seed=seed),
        }
    return out


def with_backend(ranker, backend: str):
    """A copy of a fitted ranker served by another backend (same learned model)."""
    other = copy.copy(ranker)
    other.backend = backend
    other._prepare_backend()
    return other


def fit_rankers(
    split, candidates, quick: bool, seed: int = 0
) -> dict[str, list[tuple[object, int]]]:
    """Every ranking option fitted on ``candidates``: name -> the ``(ranker, n)`` cascade."""
    train, valid = split.train, split.valid
    fitted: dict[str, list[tuple[object, int]]] = {}

    def fit(ranker):
        return ranker.fit(train, valid, candidates)

    fitted["none"] = [(IdentityRanker(), FINAL_N)]
    fitted["popularity"] = [(fit(PopularityRanker()), FINAL_N)]
    lgbm = fit(LightGBMRanker(seed=seed))
    fitted["lightgbm"] = [(lgbm, FINAL_N)]
    fitted["lightgbm_onnx"] = [(with_backend(lgbm, "onnx"), FINAL_N)]
    fitted["mlp_small"] = [(fit(MLPRanker(preset="small", seed=seed)), FINAL_N)]
    if quick:
        return fitted
    large = fit(MLPRanker(preset="large", seed=seed))
    fitted["mlp_large"] = [(large, FINAL_N)]
    fitted["mlp_large_onnx"] = [(with_backend(large, "onnx"), FINAL_N)]
    fitted["mlp_large_int8"] = [(with_backend(large, "int8"), FINAL_N)]
    student = DistilledRanker(large, fit_teacher=False, seed=seed)
    fitted["distilled(mlp_large)"] = [(fit(student), FINAL_N)]
    pre = fit(LightGBMRanker(n_estimators=50, num_leaves=15, learning_rate=0.1, seed=seed))
    pre_n = min(50, candidates.k)
    second = LightGBMRanker(seed=seed).fit(train, valid, pre.rank(candidates, pre_n))
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


def run_seed(
    dataset: str, k: int, quick: bool, seed: int
) -> tuple[list[dict], list[pd.DataFrame], list[dict]]:
    """Train every stage with ``seed`` and evaluate every pairing.

    Returns the pairing rows, per-user NDCG@10 frames and ranker-backend speed rows.
    """
    split, description = load_split(dataset, seed)
    print(f"== {description}, seed {seed}: {split.to_dict()}", flush=True)
    start = time.perf_counter()
    emb = TwoTower(dim=64, epochs=10, seed=seed).fit(split.train)
    print(f"two-tower trained in {time.perf_counter() - start:.1f}s", flush=True)
    sample_users = split.test_users()[:200]
    rows, per_user, backend_rows = [], [], []
    for r_name, retriever in retrievers(emb, split.train.n_items, quick, seed).items():
        start = time.perf_counter()
        retriever.fit(split.train)
        candidates = retriever.retrieve(split.valid_users(), k)
        fitted = fit_rankers(split, candidates, quick, seed)
        retriever.add_history(split.valid)
        print(f"{r_name}: stages fitted in {time.perf_counter() - start:.1f}s", flush=True)
        retrieval_ms = None
        for rank_name, cascade in fitted.items():
            pipe = Pipeline(retriever, k=k, rankers=cascade, final_n=FINAL_N)
            report = pipe.evaluate(split)
            metrics = report.to_dict()
            keys = {"dataset": dataset, "seed": seed, "retrieval": r_name, "ranking": rank_name}
            per_user.append(
                pd.DataFrame(
                    {**keys, "user": report.per_user["user"], "ndcg@10": report.per_user["ndcg@10"]}
                )
            )
            calls = pipe.stage_callables(sample_users)
            if retrieval_ms is None:
                retrieval_ms = time_call(calls[0])
            ranking_ms = [time_call(c) for c in calls[1:]]
            rank_p50 = sum(m[0] for m in ranking_ms)
            rows.append(
                {
                    **keys,
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
                backend_rows += [
                    {"seed": seed, **r} for r in backend_speed(rank_name, calls[-1], k)
                ]
    return rows, per_user, backend_rows


def run_dataset(
    dataset: str, k: int, quick: bool, out: Path, seeds: list[int]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every seed of one dataset; writes its tables and returns (pairings, per-user NDCG)."""
    rows, per_user, backend_rows = [], [], []
    for seed in seeds:
        seed_rows, seed_users, seed_backends = run_seed(dataset, k, quick, seed)
        rows += seed_rows
        per_user += seed_users
        backend_rows += seed_backends
    table, users = pd.DataFrame(rows), pd.concat(per_user, ignore_index=True)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / f"quality_{dataset}.csv", index=False)
    users.to_parquet(out / f"per_user_{dataset}.parquet", index=False)
    (out / f"quality_{dataset}.md").write_text(
        f"# Quality: {DESCRIPTIONS[dataset]}, k={k}, final_n={FINAL_N}, mean over seeds {seeds}\n\n"
        + markdown(seed_summary(table))
        + "\n"
    )
    if backend_rows:
        pd.DataFrame(backend_rows).to_csv(out / f"backends_{dataset}.csv", index=False)
    return table, users


def seed_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Each pairing's metrics averaged over seeds, with the seeds' NDCG@10 spread (std)."""
    grouped = table.drop(columns=["dataset", "seed"]).groupby(["retrieval", "ranking"], sort=False)
    summary = grouped.mean(numeric_only=True)
    summary.insert(1, "ndcg@10_std", grouped["ndcg@10"].std(ddof=1).fillna(0.0))
    return summary.reset_index()


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


VARIANTS = (
    ("lightgbm_onnx", "lightgbm", 0.01),
    ("mlp_large_onnx", "mlp_large", 0.01),
    ("mlp_large_int8", "mlp_large", 0.01),
    ("distilled(mlp_large)", "mlp_large", 0.02),
)


def relative_check(users: pd.DataFrame, variant: tuple[str, str], source: tuple[str, str]) -> dict:
    """Relative NDCG@10 difference of two pairings: seed mean, seed spread, paired CI."""
    v, s = paired_ndcg(users, variant, source)
    per_seed = [a.mean() / b.mean() - 1 for a, b in zip(v, s, strict=True)]
    mean, low, high = paired_bootstrap_relative(v, s)
    return {
        "rel": mean,
        "ci": (low, high),
        "seed_std": float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else 0.0,
        "per_seed": per_seed,
    }


def paired_ndcg(
    users: pd.DataFrame, a: tuple[str, str], b: tuple[str, str]
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per-seed per-user NDCG@10 of two ``(retrieval, ranking)`` pairings, aligned on users."""
    out_a, out_b = [], []
    for _, rows in users.groupby("seed"):
        pick = [
            rows[(rows.retrieval == r) & (rows.ranking == k)].set_index("user")["ndcg@10"]
            for r, k in (a, b)
        ]
        both = pick[0].index.intersection(pick[1].index)
        out_a.append(pick[0].loc[both].to_numpy())
        out_b.append(pick[1].loc[both].to_numpy())
    return out_a, out_b


def check_targets(table: pd.DataFrame, users: pd.DataFrame) -> list[str]:
    """The issue's quality targets as PASS/FAIL lines, judged on the mean over seeds."""
    lines = []
    for dataset, group in table.groupby("dataset"):
        du = users[users.dataset == dataset]
        mean = group.groupby(["retrieval", "ranking"]).mean(numeric_only=True)
        n_seeds = group.seed.nunique()
        best = mean["ndcg@10"].idxmax()
        gain = relative_check(du, best, ("popularity", "none"))
        lines.append(
            f"[{dataset}] best {best} ndcg@10 {mean.loc[best, 'ndcg@10']:.4f} vs popularity "
            f"{mean.loc[('popularity', 'none'), 'ndcg@10']:.4f}: {_describe(gain, n_seeds)} "
            f"({'PASS' if gain['rel'] >= 0.30 else 'FAIL'} >= +30%)"
        )
        for retrieval in group.retrieval.unique():
            sub = mean.loc[retrieval]
            for variant, source, bound in VARIANTS:
                if variant not in sub.index or source not in sub.index:
                    continue
                check = relative_check(du, (retrieval, variant), (retrieval, source))
                speed = speed_ratio(group, retrieval, variant, source)
                distilled = variant.startswith("distilled")
                ok = check["rel"] >= -bound and (not distilled or speed <= 0.25)
                lines.append(
                    f"[{dataset}/{retrieval}] {variant} vs {source}: {_describe(check, n_seeds)}, "
                    f"time x{speed:.2f} ({'PASS' if ok else 'FAIL'} >= -{bound:.0%}"
                    f"{' at <= x0.25' if distilled else ''})"
                )
    return lines


def speed_ratio(group: pd.DataFrame, retrieval: str, variant: str, source: str) -> float:
    """Median over seeds of the variant's ranking time over its source's, each seed's pair
    timed minutes apart in one process: a seed timed while something else ran on the
    machine moves one ratio, not the verdict."""
    times = group[group.retrieval == retrieval].pivot_table(
        index="seed", columns="ranking", values="ranking_ms_p50"
    )
    return float((times[variant] / times[source]).median())


def _describe(check: dict, n_seeds: int) -> str:
    low, high = check["ci"]
    return (
        f"ndcg {check['rel']:+.2%} mean of {n_seeds} seed(s) (seed sd {check['seed_std']:.2%}; "
        f"paired bootstrap 95% CI [{low:+.2%}, {high:+.2%}])"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["ml", "synthetic"])
    parser.add_argument("--k", type=int, default=200)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--quick", action="store_true", help="3 retrievals x 5 rankings")
    parser.add_argument("--out", type=Path, default=Path("bench_out"))
    args = parser.parse_args()
    results = [run_dataset(d, args.k, args.quick, args.out, args.seeds) for d in args.datasets]
    table = pd.concat([t for t, _ in results], ignore_index=True)
    users = pd.concat([u for _, u in results], ignore_index=True)
    lines = check_targets(table, users)
    print("\n".join(lines))
    (args.out / "targets.txt").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
