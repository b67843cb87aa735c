"""recsys.sim sees only service-time models: it must not pull in the heavy stage libraries."""

import subprocess
import sys

FORBIDDEN = ("faiss", "lightgbm", "torch", "onnx", "onnxruntime", "hydra")


def test_sim_does_not_import_stage_libraries():
    code = (
        "import sys, pkgutil, importlib, recsys.sim\n"
        "for m in pkgutil.iter_modules(recsys.sim.__path__):\n"
        "    importlib.import_module('recsys.sim.' + m.name)\n"
        "import recsys.metrics_latency\n"
        f"print([m for m in {FORBIDDEN!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
