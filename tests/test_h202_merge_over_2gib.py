"""merge and split check a model over 2 GiB from a file, as onnx asks.

Two models of 1.08 GB each (external data) merged into one of 2.16 GB: onnx.checker serializes a
ModelProto it is given in memory, protobuf refused the message ('EncodeError: Failed to
serialize proto'), and merge ended in that traceback (exit 1) after 38 s. A model over 2 GiB is
checked from a temporary copy with external data now (measured: the pair merged in 58 s, 9.5 GB
peak, written as merged.onnx + merged.onnx.data, and split back). Here the 2 GiB limit is lowered
to 4 kB (below the 8 kB of weights) and the in-memory checker fails as protobuf does past it, so that tiny models
take the path a large one takes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from google.protobuf.message import EncodeError
from onnx import parser

from graphopt.backends import onnxruntime as ort_backend
from graphopt.cli import main
from graphopt.errors import BackendError
from graphopt.ir import model_io
from graphopt.multitask import MergeError, merge, split
from tests.fusion_models import run_at

W = np.linspace(-2, 2, 2 * 1000, dtype=np.float32).reshape(2, 1000)


def _model(op: str) -> onnx.ModelProto:
    """x * W, then `op`: 8 kB of weights, a few hundred bytes without them."""
    model = parser.parse_model(
        '<ir_version: 8, opset_import: ["" : 13]>\n'
        f"g (float[2,1000] x) => (float[2,1000] y) {{ t = Mul(x, w) y = {op}(t) }}"
    )
    model.graph.initializer.append(onnx.numpy_helper.from_array(W, "w"))
    return model


@pytest.fixture
def two_gib_is_a_few_bytes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every model here counts as over 2 GiB, and onnx.checker refuses one in memory as protobuf
    does past 2 GiB; the paths it was given are listed."""
    checked: list[str] = []
    real = onnx.checker.check_model

    def checker(model: object, full_check: bool = False, **options: object) -> None:
        if isinstance(model, onnx.ModelProto):
            raise EncodeError("Failed to serialize proto")
        checked.append(str(model))
        real(model, full_check=full_check, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(model_io, "TWO_GIB", 4096)  # 8 kB of weights: 'over 2 GiB'
    monkeypatch.setattr(onnx.checker, "check_model", checker)
    return checked


def test_merge_and_split_check_a_large_model_from_a_file(two_gib_is_a_few_bytes: list[str]) -> None:
    merged = merge([_model("Neg"), _model("Abs")])
    back = split(merged, task="m1_")
    assert len(two_gib_is_a_few_bytes) == 2  # the merged model, then the split one
    x = np.random.default_rng(202).standard_normal((2, 1000)).astype(np.float32)
    np.testing.assert_array_equal(run_at(back, {"x": x}, "disable")["y"], np.abs(x * W))


def test_a_large_model_the_checker_refuses_is_still_refused(
    two_gib_is_a_few_bytes: list[str],
) -> None:
    from graphopt.multitask.errors import check_model

    bad = _model("Neg")
    bad.graph.node[1].input[0] = "nowhere"  # a tensor nothing defines
    with pytest.raises(MergeError, match=r"^the merged model fails onnx.checker: .*nowhere"):
        check_model(bad, "merged")
    assert len(two_gib_is_a_few_bytes) == 1


def test_split_types_an_undeclared_output_of_a_large_model_from_a_file(
    two_gib_is_a_few_bytes: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """split --outputs of a tensor without a declared type infers it: onnx's infer_shapes
    refused a model over 2 GiB in memory (EncodeError, a traceback; measured on the 2.16 GB
    merged pair, split --outputs s). It is inferred from a temporary file now (34 s there)."""
    real = onnx.shape_inference.infer_shapes

    def infer_shapes(model: object, *args: object, **options: object) -> onnx.ModelProto:
        if isinstance(model, onnx.ModelProto) and model.ByteSize() >= model_io.TWO_GIB:
            raise EncodeError("Failed to serialize proto")
        return real(model, *args, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(onnx.shape_inference, "infer_shapes", infer_shapes)
    part = split(merge([_model("Neg"), _model("Abs")]), ["t"])
    assert [o.name for o in part.graph.output] == ["t"]
    assert part.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    x = np.random.default_rng(202).standard_normal((2, 1000)).astype(np.float32)
    np.testing.assert_array_equal(run_at(part, {"x": x}, "disable")["t"], x * W)


def test_merge_verify_runs_a_large_merged_model_from_a_file(
    two_gib_is_a_few_bytes: list[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """merge --verify made an onnxruntime session of the merged model in memory, which
    onnxruntime refuses past 2 GiB ('it is over 2 GiB, which onnxruntime takes only from a file
    with external data, not in memory': the 2.16 GB pair could be merged, not verified). It is
    run from a temporary file now; onnxruntime's refusal is mimicked past the lowered limit."""
    real = ort_backend.session
    ran: list[str] = []

    def session(model: object, **options: object) -> object:
        if isinstance(model, onnx.ModelProto) and model.ByteSize() >= model_io.TWO_GIB:
            raise BackendError(
                "onnxruntime cannot load the model: it is over 2 GiB, which onnxruntime takes "
                "only from a file with external data, not in memory"
            )
        ran.append("file" if isinstance(model, str | Path) else "memory")
        return real(model, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(ort_backend, "session", session)
    for name, op in (("a", "Neg"), ("b", "Abs")):
        onnx.save(_model(op), tmp_path / f"{name}.onnx")
    out = tmp_path / "m.onnx"
    argv = ["merge", str(tmp_path / "a.onnx"), str(tmp_path / "b.onnx"), "-o", str(out)]
    assert main([*argv, "--verify"]) == 0
    assert "verify: b_y: max abs diff 0\n" in capsys.readouterr().out
    assert ran == ["file", "file", "file"]  # the merged model, then each model
