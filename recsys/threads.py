"""Cap the thread pools of the numeric libraries.

On a small machine, FAISS (OpenMP), LightGBM (OpenMP) and torch (intra-op pool) each default to
one thread per core; several of them at once oversubscribe the cores and both slow serving and
distort profiled service times. Profiling and serving set an explicit budget here.
"""

from __future__ import annotations

import os


def set_threads(n_threads: int) -> None:
    """Use ``n_threads`` threads in FAISS, torch and OpenMP-based libraries of this process."""
    n = max(1, int(n_threads))
    os.environ["OMP_NUM_THREADS"] = str(n)
    try:
        import faiss

        faiss.omp_set_num_threads(n)
    except ImportError:  # pragma: no cover - faiss is a core dependency
        pass
    try:
        import torch

        torch.set_num_threads(n)
    except ImportError:  # pragma: no cover - torch is a core dependency
        pass
