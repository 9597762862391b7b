"""A model-local function whose body (or a body inside it) has a default-domain node leaving out
(as "") an input its schema requires: onnx's shape inference crashed the process on one
(RegexFullMatch('') in a function the graph calls: `graphopt inspect` and the analyses of a
ModelProto died of a segmentation fault), optimize wrote the model out, which onnxruntime refuses
(or crashes on). Load checked the main graph and its bodies only; now it refuses a function's
node too, in one line naming the function, read at the opset the function imports (what onnx's
shape inference reads) and at the model's (what onnxruntime inlines the body at). An optional
input left out (Resize's roi, Clip's min) loads as before."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

import graphopt
from graphopt import cli
from graphopt.errors import LoadError
from graphopt.ir.model_io import load
from tests.child_process import run_python

_FEEDS = {"x": np.arange(4, dtype=np.float32).reshape(1, 1, 2, 2), "c": np.array(True)}


def _called(
    body: list[onnx.NodeProto],
    out: str,
    out_type: int,
    opset: int = 20,
    function_opset: int | None = 20,
    in_if: bool = False,
    called: bool = True,
) -> onnx.ModelProto:
    """A model whose graph calls function d::f(x, c) holding `body` (in an If's branches when
    `in_if`), which imports the default domain at `function_opset` (None: not at all)."""
    if in_if:
        branch = helper.make_graph(
            body, "b", [], [helper.make_tensor_value_info(out, out_type, None)]
        )
        body = [helper.make_node("If", ["c"], ["z"], then_branch=branch, else_branch=branch)]
        out = "z"
    imports = [] if function_opset is None else [helper.make_opsetid("", function_opset)]
    function = helper.make_function("d", "f", ["x", "c"], [out], body, imports)
    y = helper.make_tensor_value_info("y", out_type, None)
    if called:
        node = helper.make_node("f", ["x", "c"], ["y"], domain="d", name="call")
    else:  # (a shape, as onnx.checker wants of a graph output)
        node = helper.make_node("Identity", ["x"], ["y"])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 2, 2])
    graph = helper.make_graph(
        [node],
        "g",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 2, 2]),
            helper.make_tensor_value_info("c", TensorProto.BOOL, []),
        ],
        [y],
    )
    return helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", opset), helper.make_opsetid("d", 1)],
        functions=[function],
    )


def _regex(**kwargs) -> onnx.ModelProto:
    node = helper.make_node("RegexFullMatch", [""], ["r"], name="bad", pattern="a")
    return _called([node], "r", TensorProto.BOOL, **kwargs)


def _eye_like(**kwargs) -> onnx.ModelProto:
    node = helper.make_node("EyeLike", [""], ["r"], name="bad")
    return _called([node], "r", TensorProto.FLOAT, **kwargs)


def _resize(**kwargs) -> onnx.ModelProto:
    """Resize(x, '', scales): roi is required by Resize-11, optional from Resize-13."""
    scales = helper.make_tensor("sv", TensorProto.FLOAT, [4], [1, 1, 2, 2])
    body = [
        helper.make_node("Constant", [], ["s"], value=scales),
        helper.make_node("Resize", ["x", "", "s"], ["r"], name="rs", mode="nearest"),
    ]
    return _called(body, "r", TensorProto.FLOAT, **kwargs)


def _clip(**kwargs) -> onnx.ModelProto:
    """Clip(x, '', 1.5): min left out, which Clip-13 allows."""
    high = helper.make_tensor("hv", TensorProto.FLOAT, [], [1.5])
    body = [
        helper.make_node("Constant", [], ["hi"], value=high),
        helper.make_node("Clip", ["x", "", "hi"], ["r"], name="clip"),
    ]
    return _called(body, "r", TensorProto.FLOAT, **kwargs)


def _run(model: onnx.ModelProto) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, _FEEDS)[0]


@pytest.mark.parametrize(
    ("make", "op", "in_if"),
    [
        (_regex, "RegexFullMatch", False),
        (_eye_like, "EyeLike", False),
        (_regex, "RegexFullMatch", True),
        (_eye_like, "EyeLike", True),
    ],
)
def test_a_required_input_left_out_in_a_function_is_refused(
    tmp_path, capsys, make, op, in_if
) -> None:
    model = make(in_if=in_if)
    if op == "EyeLike":  # (onnxruntime's load crashes on RegexFullMatch(''))
        with pytest.raises(Exception, match="EyeLike"):
            _run(model)
    with pytest.raises(
        LoadError,
        match=rf"^the given ModelProto: function 'f' \(domain 'd'\): node 'bad' \({op}\) "
        r"leaves out its input 0 \(",
    ):
        graphopt.optimize(model)
    path = tmp_path / "m.onnx"
    path.write_bytes(model.SerializeToString())
    out = tmp_path / "o.onnx"
    assert cli.main(["optimize", str(path), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert f"{path}: function 'f' (domain 'd'): node 'bad' ({op}) leaves out its input 0" in err
    assert not out.exists()


def test_inspect_and_the_analyses_of_such_a_model_say_one_line_not_crash(tmp_path) -> None:
    # (in child processes: on the parent both died of a segmentation fault)
    path = tmp_path / "m.onnx"
    path.write_bytes(_regex().SerializeToString())
    inspect = ["-m", "graphopt", "inspect", str(path)]
    analyse = [
        "-c",
        "import sys, onnx, graphopt.analysis as a\n"
        "from graphopt.errors import LoadError\n"
        "try:\n"
        "    a.fuse_ops(onnx.load(sys.argv[1]))\n"
        "except LoadError as e:\n"
        "    sys.exit(f'LoadError: {e}')\n",
        str(path),
    ]
    for argv in (inspect, analyse):
        done = run_python(*argv, timeout=120)
        assert done.returncode in (1, 2), (argv[-1], done.returncode, done.stderr)
        assert "function 'f' (domain 'd'): node 'bad' (RegexFullMatch) leaves out its input 0" in (
            done.stderr
        )
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr


@pytest.mark.parametrize(
    ("make", "opset", "function_opset", "required_by"),
    [
        # the function's opset: what onnx's shape inference reads the body at (opset 13 has no
        # RegexFullMatch, and inference crashed); onnx.checker refuses the mismatch anyway
        (_regex, 13, 20, "RegexFullMatch-20"),
        (_resize, 13, 11, "Resize-11"),
        # the model's: what onnxruntime inlines the body at (it refuses this model)
        (_resize, 11, 13, "Resize-11"),
        # a function importing no default opset is read at the model's
        (_eye_like, 13, None, "EyeLike-9"),
    ],
)
def test_a_function_is_read_at_its_own_opset_and_the_models(
    make, opset, function_opset, required_by
) -> None:
    for in_if in (False, True):
        model = make(opset=opset, function_opset=function_opset, in_if=in_if)
        with pytest.raises(LoadError, match=rf"which {required_by} requires"):
            load(model)
    if (opset, function_opset) == (11, 13):
        with pytest.raises(Exception, match="input 1 is marked single"):
            _run(_resize(opset=11, function_opset=13))


def test_a_function_the_graph_does_not_call_is_checked_too() -> None:
    model = _regex(called=False)
    with pytest.raises(onnx.checker.ValidationError, match="marked single"):
        onnx.checker.check_model(model)
    with pytest.raises(LoadError, match=r"function 'f' \(domain 'd'\): node 'bad'"):
        graphopt.optimize(model)


@pytest.mark.parametrize("make", [_resize, _clip])
@pytest.mark.parametrize("in_if", [False, True])
def test_an_optional_input_left_out_in_a_function_loads_as_before(make, in_if) -> None:
    model = make(opset=13, function_opset=13, in_if=in_if)
    optimized = graphopt.optimize(model)
    np.testing.assert_allclose(_run(optimized), _run(model), rtol=1e-4, atol=1e-5)
