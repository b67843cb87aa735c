"""The quality benchmark's target checks on hand-made per-user NDCG (no training)."""

import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from quality import check_targets, seed_summary


def frames(ratios: dict[str, float], seeds=(0, 1)) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-user NDCG of each ranking = the source's times a constant ratio, every seed."""
    rows, users = [], []
    times = {"none": 0.02, "mlp_large": 1.0, "mlp_large_int8": 0.3, "distilled(mlp_large)": 0.2}
    for seed in seeds:
        base = np.random.default_rng(seed).uniform(0.01, 0.2, 50)
        for ranking, ratio in ratios.items():
            ndcg = base * ratio
            keys = {"dataset": "ml", "seed": seed, "retrieval": "popularity", "ranking": ranking}
            users.append(pd.DataFrame({**keys, "user": np.arange(50), "ndcg@10": ndcg}))
            rows.append({**keys, "ndcg@10": ndcg.mean(), "ranking_ms_p50": times[ranking]})
    return pd.DataFrame(rows), pd.concat(users, ignore_index=True)


def test_verdicts_follow_the_seed_mean_and_the_bounds():
    table, users = frames(
        {
            "none": 1.0,
            "mlp_large": 1.5,
            "mlp_large_int8": 1.5 * 0.995,
            "distilled(mlp_large)": 1.5 * 0.97,
        }
    )
    lines = check_targets(table, users)
    best, int8, distilled = lines
    assert best.startswith("[ml] best ('popularity', 'mlp_large')") and "+50.00%" in best
    assert "PASS" in best
    assert "ndcg -0.50%" in int8 and "[-0.50%, -0.50%]" in int8 and "(PASS" in int8
    assert "ndcg -3.00%" in distilled and "time x0.20" in distilled and "(FAIL" in distilled


def test_seed_summary_averages_seeds_and_reports_their_spread():
    table, _ = frames({"none": 1.0, "mlp_large": 1.5})
    summary = seed_summary(table).set_index(["retrieval", "ranking"])
    expected = table[table.ranking == "none"]["ndcg@10"]
    assert summary.loc[("popularity", "none"), "ndcg@10"] == expected.mean()
    assert summary.loc[("popularity", "none"), "ndcg@10_std"] == expected.std(ddof=1)
