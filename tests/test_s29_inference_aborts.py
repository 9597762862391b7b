"""A Slice of a tensor whose dims onnx's shape inference makes negative.

onnx's Slice inference (opset 10 on) aborts the process (libstdc++'s std::clamp assertion, onnx
issue #8481) where the sliced tensor has a negative dim, which inference makes from a window
larger than its input, negative pads, a negative Resize scale, TopK k, CenterCropPad shape or
RoiAlign size; onnxruntime's loader runs the same inference. graphopt aborted with it in
`inspect` and `optimize` (no message, exit 134). The crashing cases run in a child process here,
so the parent's behaviour fails a test instead of killing pytest.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import graphopt
from graphopt.analysis import inference_aborts
from graphopt.analysis.inference_aborts import guarded_inference, negative_slice, onnx_inference
from graphopt.errors import BackendError, PipelineError
from tests.child_process import one_line_refusal, run_cli, run_code


def _int64(name: str, values: list[int]) -> onnx.TensorProto:
    return numpy_helper.from_array(np.array(values, np.int64), name)


def _float(name: str, values: np.ndarray | list[float]) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(values, np.float32), name)


# producer of "p" from x [1, 3, 4, 4]: (nodes, initializers); each makes a negative dim on axis 2
PRODUCERS = {
    "pad": ([helper.make_node("Pad", ["x", "pads"], ["p"])], [_int64("pads", [0, 0, -3, 0] * 2)]),
    "conv": (
        [helper.make_node("Conv", ["x", "w"], ["p"])],
        [_float("w", np.zeros((2, 3, 7, 7)))],
    ),
    "dilated_conv": (
        [helper.make_node("Conv", ["x", "w"], ["p"], dilations=[3, 3])],
        [_float("w", np.zeros((2, 3, 3, 3)))],
    ),
    "maxpool": ([helper.make_node("MaxPool", ["x"], ["p"], kernel_shape=[7, 7])], []),
    "averagepool": ([helper.make_node("AveragePool", ["x"], ["p"], kernel_shape=[7, 7])], []),
    "convtranspose": (
        [helper.make_node("ConvTranspose", ["x", "wt"], ["p"], pads=[5, 5, 5, 5])],
        [_float("wt", np.zeros((3, 2, 1, 1)))],
    ),
    "resize": (
        [helper.make_node("Resize", ["x", "", "scales"], ["p"])],
        [_float("scales", [1, 1, -1, 1])],
    ),
    "topk": (
        [helper.make_node("TopK", ["x", "k"], ["p", "i"], axis=2)],
        [_int64("k", [-2])],
    ),
    "centercroppad": (
        [helper.make_node("CenterCropPad", ["x", "crop"], ["p"])],
        [_int64("crop", [1, 3, -2, 4])],
    ),
    "roialign": (
        [helper.make_node("RoiAlign", ["x", "rois", "batch"], ["p"], output_height=-2)],
        [_float("rois", [[0, 0, 1, 1]]), _int64("batch", [0])],
    ),
}


def _model(producer: str, slices: int = 1, opset: int = 18) -> onnx.ModelProto:
    nodes, inits = PRODUCERS[producer]
    nodes = list(nodes)
    inits = [*inits, _int64("st", [0]), _int64("en", [1]), _int64("ax", [2])]
    read = "p"
    for k in range(slices):
        out = "y" if k == slices - 1 else f"s{k}"
        nodes.append(helper.make_node("Slice", [read, "st", "en", "ax"], [out], name=f"cut{k}"))
        read = out
    for k, node in enumerate(nodes):
        node.name = node.name or f"{node.op_type.lower()}{k}"
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


@pytest.mark.parametrize("producer", sorted(PRODUCERS))
def test_shape_facts_of_a_slice_of_a_negative_dim_do_not_abort(
    tmp_path: Path, producer: str
) -> None:
    path = tmp_path / "m.onnx"
    onnx.save(_model(producer), path)
    code = (
        "import sys, onnx\n"
        "from graphopt.analysis.shapes import shape_facts\n"
        "facts = shape_facts(onnx.load(sys.argv[1]))\n"
        "print('p', facts.shape('p'), 'y', facts.shape('y'))\n"
    )
    done = run_code(code, str(path))
    assert done.returncode == 0, done.stderr[-300:]
    # the negative dim is no size to the facts, nor anything the Slice would have made of it
    p = done.stdout.split(" y ")[0]
    assert p.startswith("p (1, ") and "None" in p and "-" not in done.stdout, done.stdout


@pytest.mark.parametrize("producer", sorted(PRODUCERS))
def test_negative_slice_names_the_slice_and_the_node_that_made_the_dim(producer: str) -> None:
    nodes, _ = PRODUCERS[producer]
    reason = negative_slice(_model(producer))
    assert reason.startswith("Slice 'cut0' reads 'p' of shape [1, ")
    assert "a negative dimension" in reason
    assert f"({nodes[0].op_type} '{nodes[0].op_type.lower()}0' makes it)" in reason
    assert "\n" not in reason


def test_cli_refuses_the_model_in_one_line_and_writes_nothing(tmp_path: Path) -> None:
    path, out = tmp_path / "m.onnx", tmp_path / "o.onnx"
    onnx.save(_model("conv"), path)
    done = run_cli("optimize", str(path), "-o", str(out), "--verify")
    line = one_line_refusal(done)
    assert "Traceback" not in done.stderr
    assert "Slice 'cut0' reads 'p' of shape [1, 2, -2, -2]" in line
    assert "(Conv 'conv0' makes it)" in line
    # (a Slice of another axis than the negative one, or of computed starts, aborts neither)
    assert line.endswith("(onnx's shape inference and onnxruntime's loader can abort on it)")
    assert not out.exists()


def test_an_onnxruntime_session_of_such_a_model_is_a_backend_error() -> None:
    from graphopt.backends.onnxruntime import session

    with pytest.raises(BackendError, match=r"onnxruntime cannot load the model: Slice 'cut0'"):
        session(_model("maxpool"))


def _valid_at_risk(width: int | str = 8, sliced_first: bool = False) -> onnx.ModelProto:
    """An unpadded 3×3 Conv (a negative dim for inputs below 2) with two Slices after it, the
    second after the first: valid at the given width (2 or more). `sliced_first`: the Conv
    reads a Slice of x (channels 0:3 of 3) too."""
    nodes = [
        helper.make_node("Conv", ["x0", "w"], ["c"], name="conv"),
        helper.make_node("Slice", ["c", "st", "en", "ax"], ["s"], name="first"),
        helper.make_node("Relu", ["s"], ["r"], name="relu"),
        helper.make_node("Slice", ["r", "st", "en", "ax"], ["y"], name="second"),
    ]
    if sliced_first:
        nodes.insert(0, helper.make_node("Slice", ["x", "st", "three", "one"], ["x0"], name="pre"))
    else:
        nodes[0].input[0] = "x"
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, "h", width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [
            _float("w", np.ones((2, 3, 3, 3)) * 0.1),
            _int64("st", [0]),
            _int64("en", [2]),
            _int64("ax", [3]),
            _int64("three", [3]),
            _int64("one", [1]),
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def _dims(model: onnx.ModelProto) -> dict[str, list[int | str]]:
    g = model.graph
    return {
        vi.name: [
            d.dim_value if d.HasField("dim_value") else d.dim_param
            for d in vi.type.tensor_type.shape.dim
        ]
        for vi in [*g.value_info, *g.output]
    }


@pytest.mark.parametrize("sliced_first", [False, True])
def test_a_valid_model_at_risk_infers_every_slice_as_plain_inference_does(
    sliced_first: bool,
) -> None:
    model = _valid_at_risk(sliced_first=sliced_first)
    before = model.SerializeToString()
    calls: list[onnx.ModelProto] = []

    def infer(m: onnx.ModelProto) -> onnx.ModelProto:
        calls.append(m)
        return onnx_inference(m)

    guarded = guarded_inference(model, infer)
    if sliced_first:  # both Slices after the Conv hidden, the first given back, the second
        assert len(calls) == 3 and all(c.graph.name == "g" for c in calls)
    else:  # the Conv and what it reads inferred alone, then the whole model as it is
        assert [c.graph.name for c in calls] == ["stem", "g"] and calls[1] is model
        assert [n.name for n in calls[0].graph.node] == ["conv"]
    assert _dims(guarded) == _dims(onnx_inference(model))
    y = _dims(guarded)["y"]
    assert y[:2] == [1, 2] and y[3] == 2
    assert [n.domain for n in guarded.graph.node] == [""] * len(model.graph.node)
    assert [o.domain for o in guarded.opset_import] == [""]
    assert model.SerializeToString() == before  # the caller's model untouched
    assert negative_slice(model) == ""


def test_a_model_with_no_node_that_makes_a_negative_dim_infers_once_as_it_is() -> None:
    model = _valid_at_risk()
    conv = model.graph.node[0]
    conv.attribute.append(helper.make_attribute("pads", [1, 1, 1, 1]))  # 3×3, pad 1: never < 0
    calls: list[onnx.ModelProto] = []

    def infer(m: onnx.ModelProto) -> onnx.ModelProto:
        calls.append(m)
        return onnx_inference(m)

    guarded_inference(model, infer)
    assert calls == [model] and calls[0] is model


def test_optimize_with_input_shapes_too_small_is_a_pipeline_error() -> None:
    model = _valid_at_risk(width="w")
    # the model optimizes at a width that fits the window, and refuses one that does not
    graphopt.optimize(model, input_shapes={"x": [1, 3, 5, 5]}, opt_level=0)
    with pytest.raises(PipelineError) as caught:
        graphopt.optimize(model, input_shapes={"x": [1, 3, 1, 1]}, opt_level=0)
    text = str(caught.value)
    assert text.startswith("input_shapes: with the shapes of x, Slice 'first' reads 'c' of shape")
    assert "(Conv 'conv' makes it)" in text


def test_a_slice_in_a_body_of_a_model_at_risk_is_left_unknown_not_aborted(tmp_path: Path) -> None:
    body_slice = helper.make_node("Slice", ["p", "st", "en", "ax"], ["b"], name="inner")
    branch = helper.make_graph(
        [body_slice], "then", [], [helper.make_tensor_value_info("b", TensorProto.FLOAT, None)]
    )
    other = helper.make_graph(
        [helper.make_node("Identity", ["p"], ["e"])],
        "else",
        [],
        [helper.make_tensor_value_info("e", TensorProto.FLOAT, None)],
    )
    model = _model("pad")
    model.graph.node.pop()  # the main graph's Slice
    model.graph.node.append(
        helper.make_node("If", ["cond"], ["y"], then_branch=branch, else_branch=other, name="if")
    )
    model.graph.input.append(helper.make_tensor_value_info("cond", TensorProto.BOOL, []))
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    code = (
        "import sys, onnx\n"
        "from graphopt.analysis.shapes import shape_facts\n"
        "print(shape_facts(onnx.load(sys.argv[1])).shape('p'))\n"
    )
    done = run_code(code, str(path))
    assert done.returncode == 0, done.stderr[-300:]
    assert done.stdout.strip() == "(1, 3, None, 4)"


def test_the_three_detectors_are_not_at_risk() -> None:
    """The benchmark detectors hold no node that may make a negative dim before a Slice: no
    inference round and no scan of node attributes past the Slice test is added to them."""
    from graphopt.realmodels import fetch_model

    for name in ("common_det", "layout_cdla", "ppocr_det"):
        model = onnx.load(str(fetch_model(name)), load_external_data=False)
        assert not inference_aborts._at_risk(model), name


def _short_split(count: int = 2, outputs: int = 3) -> onnx.ModelProto:
    names = [f"o{i}" for i in range(outputs)]
    graph = helper.make_graph(
        [helper.make_node("Split", ["x"], names, axis=1, num_outputs=count, name="sp")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, None]) for n in names],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def test_a_short_split_is_named_and_refused_by_an_onnxruntime_session() -> None:
    from graphopt.backends.onnxruntime import session

    reason = inference_aborts.inference_abort(_short_split())
    assert reason.startswith("Split 'sp' splits into num_outputs=2 but has 3 outputs")
    with pytest.raises(BackendError, match=r"cannot load the model: Split 'sp' splits into"):
        session(_short_split(1, 3))
    # as many outputs as num_outputs, or more num_outputs (onnxruntime's own error): no abort
    assert inference_aborts.inference_abort(_short_split(3, 3)) == ""
    assert inference_aborts.inference_abort(_short_split(4, 3)) == ""


def test_verify_of_a_short_split_is_one_line_not_an_abort(tmp_path: Path) -> None:
    path, out = tmp_path / "m.onnx", tmp_path / "o.onnx"
    onnx.save(_short_split(), path)
    done = run_cli("optimize", str(path), "-o", str(out), "--verify")
    one_line_refusal(done)
    assert "Traceback" not in done.stderr
    assert "Split 'sp' splits into num_outputs=2 but has 3 outputs" in done.stderr
    assert not out.exists()


@pytest.mark.parametrize("kind", ["slice", "split"])
def test_inspect_reports_and_check_of_the_output_says_why(tmp_path: Path, kind: str) -> None:
    path, out = tmp_path / "m.onnx", tmp_path / "o.onnx"
    onnx.save(_model("pad") if kind == "slice" else _short_split(), path)
    want = "Slice 'cut0' reads 'p'" if kind == "slice" else "Split 'sp' splits into"
    inspected = run_cli("inspect", str(path))  # (a report of the model as it is)
    assert inspected.returncode == 0, inspected.stderr[-300:]
    assert "Slice 1" in inspected.stdout or "Split 1" in inspected.stdout
    checked = run_cli("optimize", str(path), "-o", str(out), "--check")
    assert "fails onnx.checker: " + want in one_line_refusal(checked)
    assert not out.exists()


def test_full_check_raises_the_checkers_error_with_the_reason() -> None:
    with pytest.raises(onnx.checker.ValidationError, match="Split 'sp' splits into"):
        inference_aborts.full_check(_short_split())
    inference_aborts.full_check(_short_split(3, 3))  # a valid model passes


def test_a_model_that_aborts_as_given_is_not_blamed_on_input_shapes() -> None:
    model = _model("pad")  # x [1, 3, 4, 4] padded by -3 on both ends of axis 2
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "n"
    # the model's own negative dim, whatever batch input_shapes fixes: named with the model,
    # not said to come of the given input shapes
    with pytest.raises(graphopt.GraphoptError) as caught:
        graphopt.optimize(model, input_shapes={"x": [2, 3, 4, 4]}, opt_level=0)
    assert str(caught.value).startswith("the given ModelProto: Slice 'cut0' reads 'p'")


@pytest.mark.parametrize("kind", ["slice", "split"])
def test_load_refuses_it_and_check_says_so_in_one_line(tmp_path: Path, kind: str) -> None:
    from graphopt.errors import LoadError
    from graphopt.ir import load

    model = _model("pad") if kind == "slice" else _short_split()
    want = "Slice 'cut0' reads 'p'" if kind == "slice" else "Split 'sp' splits into"
    with pytest.raises(LoadError, match=f"^the given ModelProto: {want}"):
        load(model)
    load(model, check_nodes=False)  # (optimize and inspect take it as it is)
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    done = run_cli("check", str(path))
    assert done.returncode == 2, done.stderr[-300:]
    assert done.stderr.strip().splitlines() == [f"graphopt check: error: {path}: " + _rest(done)]
    assert want in done.stderr


def _rest(done: subprocess.CompletedProcess[str]) -> str:
    return done.stderr.strip().split(": ", 3)[-1]


def test_loading_a_valid_model_at_risk_infers_only_its_stem(monkeypatch) -> None:
    from graphopt.ir import load

    real = onnx.shape_inference.infer_shapes
    calls: list[str] = []

    def counted(model: onnx.ModelProto, *args: object, **kwargs: object) -> onnx.ModelProto:
        calls.append(model.graph.name)
        return real(model, *args, **kwargs)

    monkeypatch.setattr(onnx.shape_inference, "infer_shapes", counted)
    load(_valid_at_risk())
    assert calls == ["stem"]
    calls.clear()
    load(_valid_at_risk(sliced_first=True))
    assert calls == ["g", "g", "g"]  # the Slices after the Conv hidden, given back one by one


def test_a_stem_inference_gives_up_on_settles_nothing() -> None:
    """Where inference gives up on the stem (`onnx_inference` hands the model back), its
    declared dims prove nothing: the Slices after the Conv are hidden and given back one by
    one, as without a stem."""
    model = _valid_at_risk()
    calls: list[str] = []

    def infer(m: onnx.ModelProto) -> onnx.ModelProto:
        calls.append(m.graph.name)
        return m if m.graph.name == "stem" else onnx_inference(m)

    guarded = guarded_inference(model, infer)
    assert calls == ["stem", "g", "g", "g"]
    assert _dims(guarded) == _dims(onnx_inference(model))
