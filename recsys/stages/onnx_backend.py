"""ONNX export and ONNX Runtime scoring for rankers (fp32 and dynamic int8)."""

from __future__ import annotations

import contextlib
import logging
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from recsys.errors import ArtifactError, ConfigError

BACKENDS = ("native", "onnx", "int8")


def check_backend(backend: str, allowed: tuple[str, ...] = BACKENDS) -> None:
    if backend not in allowed:
        raise ConfigError(f"backend must be one of {list(allowed)}, got {backend!r}")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence exporter chatter (missing torchvision ops, quantiser pre-processing hints)."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(previous)


def lightgbm_to_onnx(booster: object, n_features: int) -> bytes:
    """A LightGBM booster as an ONNX model with input ``input`` of shape ``(N, n_features)``."""
    import onnxmltools
    from onnxmltools.convert.common.data_types import FloatTensorType

    model = onnxmltools.convert_lightgbm(
        booster, initial_types=[("input", FloatTensorType([None, n_features]))], zipmap=False
    )
    return model.SerializeToString()


def torch_to_onnx(module: object, n_features: int) -> bytes:
    """A torch module ``(N, F) -> (N,)`` exported with the dynamo exporter, dynamic batch."""
    import torch

    module.eval()
    example = (torch.zeros(4, n_features),)
    batch = torch.export.Dim("batch", min=1)
    with _quiet():
        program = torch.onnx.export(
            module, example, input_names=["input"], dynamic_shapes={"x": {0: batch}}, verbose=False
        )
    return program.model_proto.SerializeToString()


def dense_layers(model_bytes: bytes) -> list[str]:
    """Names of the matrix-multiply nodes (``Gemm``/``MatMul``), in graph order."""
    import onnx

    graph = onnx.load_from_string(model_bytes).graph
    return [n.name for n in graph.node if n.op_type in ("Gemm", "MatMul")]


def quantize_int8(
    model_bytes: bytes, per_channel: bool = True, fp32_layers: tuple[str, ...] = ()
) -> bytes:
    """Dynamic int8 quantisation (weights int8, activations uint8 per tensor at run time).

    ``per_channel`` gives each output unit of a weight matrix its own int8 scale (on
    ml-latest-small it kept slightly more of the fp32 top-10 than one scale per matrix);
    ``fp32_layers`` (``"first"``, ``"last"``) keeps those dense layers in fp32. Activations
    are quantised per tensor either way; ``reduce_range`` is left off (it only matters on
    CPUs without VNNI, where 8-bit products can saturate).
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    unknown = set(fp32_layers) - {"first", "last"}
    if unknown:
        raise ConfigError(f"fp32_layers may hold 'first' and 'last', got {sorted(unknown)}")
    layers = dense_layers(model_bytes)
    kept = {layers[0 if w == "first" else -1] for w in fp32_layers} if layers else set()
    # the quantiser first splits each Gemm into MatMul + Add named "<gemm>_MatMul"
    exclude = sorted(kept | {f"{name}_MatMul" for name in kept})
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(model_bytes)
        with _quiet():
            quantize_dynamic(
                str(src),
                str(dst),
                weight_type=QuantType.QInt8,
                per_channel=per_channel,
                nodes_to_exclude=exclude,
            )
        return dst.read_bytes()


class OrtScorer:
    """An ONNX Runtime session that maps a float32 ``(N, F)`` matrix to ``(N,)`` scores."""

    def __init__(self, model_bytes: bytes, n_threads: int = 1) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = n_threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(
                model_bytes, options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # ORT raises its own exception types
            raise ArtifactError(f"corrupt ONNX model: {str(exc).splitlines()[0]}") from exc
        self.model_bytes = model_bytes
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name

    def __call__(self, x: np.ndarray) -> np.ndarray:
        out = self.session.run([self.output_name], {self.input_name: x})[0]
        return np.asarray(out, np.float32).reshape(len(x))
