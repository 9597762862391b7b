"""NAME:DIMS dims (`backends.tensorrt.parse_shapes`: --shapes, --input-shape, --macs-shape's
NAME:DIMS form) are ASCII decimal digits within an int64. Python's int() took '1_0' (as 10),
'+1', ' 1' and full-width digits, and a dim beyond int64 was taken as given:
`graphopt check m.onnx --shapes x:9999999999999999999999x3` said "0 errors"."""

from __future__ import annotations

import onnx
import pytest
from onnx import TensorProto, helper

from graphopt.backends.tensorrt import parse_shapes
from graphopt.cli import main
from graphopt.errors import BackendError

INT64_MAX = 2**63 - 1


@pytest.mark.parametrize(
    "spec",
    ["x:1_0x3", "x:+1x3", "x:１x3", "x:1x٣", "x:1x3,1x3,2_0x3", "x:1x3²"],
    ids=["underscore", "plus", "fullwidth", "arabic-indic", "underscore-max", "superscript"],
)
def test_a_dim_that_is_not_ascii_digits_is_refused(spec: str) -> None:
    with pytest.raises(BackendError, match=r"dimensions must be integers .*joined by 'x'"):
        parse_shapes([spec])


@pytest.mark.parametrize(
    "spec",
    [f"x:{2**63}x3", "x:9999999999999999999999x3", f"x:1x3,1x3,{'9' * 5000}x3"],
    ids=["2**63", "22 digits", "5000 digits"],
)
def test_a_dim_beyond_int64_is_refused(spec: str) -> None:
    with pytest.raises(BackendError, match="is too large") as caught:
        parse_shapes([spec], "--input-shape")
    assert str(caught.value).startswith("bad --input-shape")
    assert "\n" not in str(caught.value)


def test_dims_within_int64_are_read() -> None:
    assert parse_shapes([f"x:{INT64_MAX}x003"])["x"].opt == (INT64_MAX, 3)
    got = parse_shapes(["x:1X3,2x3,4x3"])["x"]
    assert (got.min, got.opt, got.max) == ((1, 3), (2, 3), (4, 3))
    with pytest.raises(BackendError, match="need 0 < min"):  # a negative dim: as before
        parse_shapes(["x:-1x3"])


@pytest.mark.parametrize("dims", ["9999999999999999999999x3", "1_0x3"])
def test_check_refuses_such_shapes(tmp_path, capsys, dims: str) -> None:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
    )
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    assert main(["check", str(path), "--shapes", f"x:{dims}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"bad --shapes 'x:{dims}'" in err, err
