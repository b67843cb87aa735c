import numpy as np
import onnx
import pytest
import torch

from recsys.errors import ConfigError
from recsys.stages.neural import ScoreMLP
from recsys.stages.onnx_backend import OrtScorer, dense_layers, quantize_int8, torch_to_onnx


@pytest.fixture(scope="module")
def fp32_model() -> bytes:
    torch.manual_seed(0)
    return torch_to_onnx(ScoreMLP(6, (16, 8)), 6)


def ops(model: bytes) -> list[str]:
    return [n.op_type for n in onnx.load_from_string(model).graph.node]


def scale_sizes(model: bytes) -> list[int]:
    graph = onnx.load_from_string(model).graph
    return sorted(
        int(np.prod(i.dims)) for i in graph.initializer if i.name.endswith("_scale") and i.dims
    )


def test_dense_layers_in_graph_order(fp32_model):
    assert len(dense_layers(fp32_model)) == 3  # 6 -> 16 -> 8 -> 1


def test_per_channel_gives_each_output_unit_its_scale(fp32_model):
    per_tensor = quantize_int8(fp32_model, per_channel=False)
    per_channel = quantize_int8(fp32_model, per_channel=True)
    assert max(scale_sizes(per_tensor), default=1) == 1
    assert {16, 8} <= set(scale_sizes(per_channel))


def test_fp32_layers_stay_unquantised_and_scores_stay_close(fp32_model):
    full = quantize_int8(fp32_model)
    edges = quantize_int8(fp32_model, fp32_layers=("first", "last"))
    # quantised layers become MatMulInteger; the kept ones stay float MatMul (Gemm split)
    assert (ops(full).count("MatMulInteger"), ops(full).count("MatMul")) == (3, 0)
    assert (ops(edges).count("MatMulInteger"), ops(edges).count("MatMul")) == (1, 2)
    x = np.random.default_rng(0).standard_normal((64, 6)).astype(np.float32)
    reference = OrtScorer(fp32_model)(x)
    for model in (full, edges):
        np.testing.assert_allclose(OrtScorer(model)(x), reference, atol=0.05)
    with pytest.raises(ConfigError, match="fp32_layers"):
        quantize_int8(fp32_model, fp32_layers=("middle",))
