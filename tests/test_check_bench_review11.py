"""Review of `graphopt check` (the TensorRT rules), `graphopt bench` and the benchmark scripts.

Each test failed on the commit before its fix (checked by running it against the old file).
The benchmark scripts' logic is tested with fake timings and fake sessions: nothing here
asserts on time.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from graphopt.backends.trt_check import check_tensorrt

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))


def _qdq_reduce_model(initializers_as_inputs: bool) -> onnx.ModelProto:
    """x → Q → DQ → Relu → ReduceMean(axes) + Relu → y, every constant an initializer; with
    `initializers_as_inputs` they are also listed as graph inputs, as IR < 4 models and
    `torch.onnx.export(keep_initializers_as_inputs=True)` write them."""
    inits = [
        numpy_helper.from_array(np.array(0.1, np.float32), "s"),
        numpy_helper.from_array(np.array(0, np.int8), "zp"),
        numpy_helper.from_array(np.array([2, 3], np.int64), "axes"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "zp"], ["q"], name="q"),
        helper.make_node("DequantizeLinear", ["q", "s", "zp"], ["dq"], name="dq"),
        helper.make_node("Relu", ["dq"], ["r"], name="relu"),
        helper.make_node("ReduceMean", ["r", "axes"], ["m"], name="mean", keepdims=1),
        helper.make_node("Add", ["r", "m"], ["y"], name="add"),
    ]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])]
    if initializers_as_inputs:
        inputs += [helper.make_tensor_value_info(t.name, t.data_type, t.dims) for t in inits]
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])
    graph = helper.make_graph(nodes, "g", inputs, [y], inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    m.ir_version = 8
    return m


# -- check: what TensorRT's parser takes as a constant ----------------------------------------


def test_check_takes_initializers_listed_as_inputs_for_the_constants_tensorrt_imports():
    """TensorRT's parser imports every initializer as weights, also one the graph lists as an
    input (onnx-tensorrt's importInputs skips them). check took such a scale, zero point or
    axes for a runtime value: 5 errors ("scale 's' is not a constant", "ReduceMean axes must
    be a build-time constant") on a model TensorRT builds."""
    assert check_tensorrt(_qdq_reduce_model(initializers_as_inputs=False), 10) == []
    findings = check_tensorrt(_qdq_reduce_model(initializers_as_inputs=True), 10)
    assert [str(f) for f in findings] == []


def test_check_names_nodes_as_the_model_does_and_leaves_their_names_alone():
    """Indexing names a nameless node `Unique_1` and renames a repeated name (`Unique_3`):
    check reported those names, which no node in the file has, and wrote them into the
    caller's ModelProto. A nameless node is now told by its output, as is one whose name
    another node shares."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    nodes = [
        helper.make_node("Relu", ["x"], ["a"]),
        helper.make_node("Unique", ["a"], ["u"]),
        helper.make_node("Relu", ["u"], ["b"], name="dup"),
        helper.make_node("Unique", ["b"], ["y"], name="dup"),
        helper.make_node("Unique", ["b"], ["z"], name="own"),
    ]
    z = helper.make_tensor_value_info("z", TensorProto.FLOAT, None)
    graph = helper.make_graph(nodes, "g", [x], [y, z])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    found = [str(f) for f in check_tensorrt(m, 10)]
    assert [f.split(":", 2)[1] for f in found] == [
        " [unsupported-op] unnamed Unique node writing 'u'",
        " [unsupported-op] node 'dup' (Unique) writing 'y'",
        " [unsupported-op] node 'own' (Unique)",
    ], found
    assert [n.name for n in m.graph.node] == ["", "", "dup", "dup", "own"]


# -- benchmarks/bench_optimize.py ---------------------------------------------------------------


class _FakeBenchmark:
    """pytest-benchmark's `benchmark` fixture as far as `pedantic` goes: the warmup rounds
    call the target too (its `_raw_pedantic`), untimed."""

    def __init__(self) -> None:
        self.group = ""
        self.extra_info: dict = {}
        self.calls = 0

    def pedantic(self, target, args=(), kwargs=None, rounds=1, warmup_rounds=0, iterations=1):
        result = None
        for _ in range(warmup_rounds + rounds):
            for _ in range(iterations):
                self.calls += 1
                result = target(*args, **(kwargs or {}))
        return result


def test_bench_optimize_suite_leaves_its_warmup_round_out_of_the_summary(monkeypatch, tmp_path):
    """`benchmark.pedantic(pair.round, rounds=7, warmup_rounds=1)`: pytest-benchmark calls the
    target in its warmup round as well, so the cold first round went into the pair's medians
    and min–max (extra_info said 8 runs for the 7 it meant)."""
    import bench_optimize

    import graphopt.realmodels

    seconds = iter(range(1, 100))
    monkeypatch.setattr(graphopt.realmodels, "fetch_model", lambda name: tmp_path / "m.onnx")
    monkeypatch.setattr(bench_optimize, "floor_once", lambda src, dst: None)
    monkeypatch.setattr(bench_optimize, "graphopt_once", lambda src, dst: float(next(seconds)))
    bench = _FakeBenchmark()
    bench_optimize.test_optimize_vs_floor_interleaved(bench, "common_det", tmp_path)
    assert bench.extra_info["runs"] == 7
    # the optimize-alone seconds of the 7 timed rounds: the warmup's 1 is not among them
    assert bench.extra_info["optimize_alone_median_ms"] == 1e3 * float(np.median(range(2, 9)))


# -- benchmarks/compare_peers.py ----------------------------------------------------------------


def _two_output_model() -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 4]) for n in ("a", "b")]
    nodes = [helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Neg", ["x"], ["b"])]
    m = helper.make_model(
        helper.make_graph(nodes, "g", [x], outs), opset_imports=[helper.make_opsetid("", 13)]
    )
    m.ir_version = 8
    return m


def test_compare_peers_reports_a_peer_whose_output_is_unreadable_or_lacks_an_output(tmp_path):
    """A peer that wrote a file onnx cannot parse ended the whole comparison in node_facts'
    DecodeError, and one whose model dropped a graph output in max_rel_diff's IndexError:
    each is now that peer's result ("failed: ...", an infinite difference), the others'
    figures are kept."""
    import compare_peers

    src = tmp_path / "m.onnx"
    onnx.save(_two_output_model(), src)

    def garbage(src: Path, dst: Path) -> None:
        dst.write_bytes(b"\x0a\xff\xff not a model")

    def one_output(src: Path, dst: Path) -> None:
        m = onnx.load(str(src))
        del m.graph.output[1]
        onnx.save(m, dst)

    tools = {"original": compare_peers._copy, "garbage": garbage, "fewer": one_output}
    settings = compare_peers.Settings(runs=2, opt_runs=1, images=1, isolate=False)
    feeds = [{"x": np.array([[1.0, -2.0, 3.0, -4.0]], np.float32)}]
    result = compare_peers.compare_model("tiny", src, feeds, tmp_path, tools, settings)
    rows = result["tools"]
    assert rows["garbage"]["error"].startswith("failed: its output does not load")
    assert rows["fewer"]["max_diff"] == {"all": float("inf"), "disable": float("inf")}
    assert rows["original"]["max_diff"] == {"all": 0.0, "disable": 0.0}
    assert len(rows["original"]["latency"]["all"]["times_ms"]) > 0


# -- benchmarks/bench_quantize.py ---------------------------------------------------------------


def test_bench_quantize_reports_an_int8_model_onnxruntime_cannot_run(monkeypatch, tmp_path):
    """A configuration whose calibration succeeded but whose INT8 model onnxruntime cannot
    load or run (agreement's session) ended the whole run with a traceback, every row
    measured before it lost (the markdown is written at the end). It is now that row's
    'failed: ...', and the next configuration is measured."""
    import bench_quantize

    import graphopt.realmodels

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 4, 4])
    graph = helper.make_graph([helper.make_node("Sigmoid", ["x"], ["y"])], "g", [x], [y])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    src = tmp_path / "fp32.onnx"
    onnx.save(m, src)
    rng = np.random.default_rng(0)
    feeds = [{"x": rng.standard_normal((1, 1, 4, 4)).astype(np.float32)} for _ in range(3)]

    def spawn(**kw):
        if kw["tool"] == "ours" and kw["method"] == "minmax":
            Path(kw["out"]).write_bytes(src.read_bytes())  # a model that runs
        elif kw["tool"] == "ours":
            Path(kw["out"]).write_bytes(b"not onnx")  # calibration "succeeded", model broken
        return {"seconds": 1.0, "rss_mb": 10.0, "feeds": 2}

    confs = [
        {"label": "broken", "tool": "ours", "method": "entropy", "target": "onnxruntime"},
        {"label": "fine", "tool": "ours", "method": "minmax", "target": "onnxruntime"},
    ]
    monkeypatch.setattr(graphopt.realmodels, "fetch_model", lambda name: src)
    monkeypatch.setattr(bench_quantize, "split", lambda name: (feeds[:2], feeds[2:]))
    monkeypatch.setattr(bench_quantize, "spawn", spawn)
    monkeypatch.setattr(bench_quantize, "configurations", lambda name, keep_float: confs)
    monkeypatch.setattr(bench_quantize, "reference_size", lambda name, outs: "n pixels")
    lines = bench_quantize.bench("ppocr_det", 2, None, None)
    rows = [ln for ln in lines if ln.startswith("| broken") or ln.startswith("| fine")]
    assert len(rows) == 2, lines
    assert rows[0].startswith("| broken | failed: ") and "1.000 |" in rows[1], rows


# -- check: version-gated restrictions --------------------------------------------------------


def test_check_refuses_slice_axes_computed_at_runtime_before_tensorrt_10_3():
    """onnx-tensorrt's 10.1 GA matrix: Slice "`axes` must be an initializer"; tensor axes came
    with 10.3 GA (its changelog). check had no Slice rule, so `--target tensorrt=10.1` said
    0 errors for a Slice whose axes another node computes."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    inits = [
        numpy_helper.from_array(np.array([0], np.int64), "starts"),
        numpy_helper.from_array(np.array([2], np.int64), "ends"),
        numpy_helper.from_array(np.array([-1], np.int64), "neg"),
    ]
    nodes = [
        helper.make_node("Neg", ["neg"], ["axes"], name="axes_of"),  # axes = [1], computed
        helper.make_node("Slice", ["x", "starts", "ends", "axes"], ["y"], name="cut"),
    ]
    graph = helper.make_graph(nodes, "g", [x], [y], inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    old = [str(f) for f in check_tensorrt(m, "10.2")]
    assert len(old) == 1 and "node 'cut' (Slice): Slice axes must be a constant" in old[0], old
    assert check_tensorrt(m, "10.3") == [] and check_tensorrt(m, 10) == []
    constant_axes = onnx.ModelProto()
    constant_axes.CopyFrom(m)
    del constant_axes.graph.node[0]
    constant_axes.graph.initializer.append(numpy_helper.from_array(np.array([1], np.int64), "axes"))
    assert check_tensorrt(constant_axes, "10.0") == []


# -- graphopt bench -----------------------------------------------------------------------------


def test_bench_says_which_input_shapes_it_timed(tmp_path, capsys):
    """A model with dynamic dims, benched without --shapes, is timed at dims bench picks
    (1, and 224 for an image's height and width): the result said only '(batch 1)', so a
    text detector's latency at 224x224 read as its latency. The line and the JSON name the
    timed shapes now."""
    import json

    from graphopt.cli import main

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", "W"])
    k = helper.make_tensor_value_info("k", TensorProto.INT64, [])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x, k], [y])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    path = tmp_path / "dyn.onnx"
    onnx.save(m, path)
    argv = ["bench", str(path), "--runs", "2", "--warmup", "0", "--no-progress"]
    assert main(argv) == 0
    assert "(batch 1), synthetic inputs x 1x3x224x224, k scalar\n" in capsys.readouterr().out
    assert main([*argv, "--json", "--shapes", "x:2x3x16x8"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["shapes"] == {"x": [2, 3, 16, 8], "k": []} and result["batch"] == 2


def test_check_warns_but_does_not_refuse_an_opset_below_the_documented_range():
    """onnx-tensorrt's ModelImporter refuses no opset: it logs a warning below 7 and imports
    the rest ("TensorRT supports ONNX graphs generated with at least opset 7"); 9..24 is the
    range operators.md documents. check called an opset 7 or 8 model (the model zoo's
    ResNet-50 v1-7, say) an error, exit 1 under --errors-only for a model TensorRT builds."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="r")], "g", [x], [y])
    for opset, severity in ((7, "warning"), (8, "warning"), (9, None), (25, "warning")):
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
        m.ir_version = 8
        found = [(f.severity, f.rule) for f in check_tensorrt(m, 10)]
        assert found == ([(severity, "opset")] if severity else []), (opset, found)


def _one_node_model(node: onnx.NodeProto, inputs, inits=(), opset: int = 17) -> onnx.ModelProto:
    y = helper.make_tensor_value_info(node.output[0], TensorProto.FLOAT, None)
    graph = helper.make_graph([node], "g", list(inputs), [y], list(inits))
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def _errors(m: onnx.ModelProto) -> list[str]:
    return [f.message for f in check_tensorrt(m, 10) if f.severity == "error"]


def test_check_applies_the_parsers_static_checkers_it_missed():
    """onnx-tensorrt's onnxOpCheckers (10.1 GA) refuses a BatchNormalization with
    training_mode=1, an Einsum equation with capital subscripts (valid ONNX), and a Resize
    whose tf_half_pixel_for_nn goes with another nearest_mode than round_prefer_floor;
    check said 0 errors for each."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])
    bn_inits = [numpy_helper.from_array(np.ones(2, np.float32), n) for n in "sbmv"]
    bn = helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], name="bn")
    assert _errors(_one_node_model(bn, [x], bn_inits)) == []
    bn.attribute.append(helper.make_attribute("training_mode", 1))
    assert _errors(_one_node_model(bn, [x], bn_inits)) == [
        "BatchNormalization training_mode must be 0"
    ]

    einsum = helper.make_node("Einsum", ["x"], ["y"], name="e", equation="nchw->nhwc")
    assert _errors(_one_node_model(einsum, [x])) == []
    einsum = helper.make_node("Einsum", ["x"], ["y"], name="e", equation="NCHW->NHWC")
    assert len(found := _errors(_one_node_model(einsum, [x]))) == 1, found
    assert "lowercase subscripts only" in found[0]

    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")
    kw = {"mode": "nearest", "coordinate_transformation_mode": "tf_half_pixel_for_nn"}
    ok = helper.make_node("Resize", ["x", "", "scales"], ["y"], name="up", **kw)
    assert _errors(_one_node_model(ok, [x], [scales])) == []
    bad = helper.make_node(
        "Resize", ["x", "", "scales"], ["y"], name="up", nearest_mode="floor", **kw
    )
    assert len(found := _errors(_one_node_model(bad, [x], [scales]))) == 1, found
    assert "tf_half_pixel_for_nn takes nearest_mode 'round_prefer_floor' only" in found[0]


def test_bench_engine_refuses_shapes_for_a_name_that_is_no_engine_input():
    """bench --backend tensorrt --shapes imags:1x3x64x64 (a typo) was ignored for an engine
    with a static input: it timed the engine's own shape and said nothing, where the
    onnxruntime backend refuses a --shapes name that is no model input."""
    import types

    import pytest

    from graphopt.commands.bench import _engine_feeds
    from graphopt.errors import BackendError

    bindings = [
        types.SimpleNamespace(name="images", is_input=True, dtype=np.dtype(np.float32)),
        types.SimpleNamespace(name="out", is_input=False, dtype=np.dtype(np.float32)),
    ]
    engine = types.SimpleNamespace(get_tensor_shape=lambda name: (1, 3, 8, 8))
    runner = types.SimpleNamespace(bindings=bindings, engine=engine)
    assert _engine_feeds(runner, {"images": (1, 3, 8, 8)}, None)["images"].shape == (1, 3, 8, 8)
    with pytest.raises(BackendError, match=r"--shapes names imags, which are not engine inputs"):
        _engine_feeds(runner, {"imags": (1, 3, 64, 64)}, None)


def test_bench_quantize_budget_times_fp32_inference_not_the_session(monkeypatch, tmp_path):
    """The cost budget is "3 x (FP32 inference over the calibration set + one optimize)"
    (docstring, README, quantize.md), but the fp32 worker started its clock before importing
    onnxruntime, and the optimize worker before `import graphopt`: the budget came out larger,
    every "x budget" smaller. Imports are untimed now; making the session stays in the FP32
    term, as each calibration makes (and times) its own sessions. With a fake clock, an import
    of 2 s, a session that takes 5 s to build and runs of 1 s, the FP32 term is 5 + 3 s."""
    import argparse
    import contextlib
    import io
    import json
    import types

    import bench_quantize

    import graphopt.backends.onnxruntime as ort_backend

    clock = [0.0]
    monkeypatch.setattr(
        bench_quantize, "time", types.SimpleNamespace(perf_counter=lambda: clock[0])
    )

    class Session:
        def run(self, names, feed):
            clock[0] += 1.0

    def session(model, **kw):
        clock[0] += 5.0
        return Session()

    class SlowImport(types.ModuleType):
        def __getattr__(self, name):
            if name != "session":
                return getattr(ort_backend, name)
            clock[0] += 2.0
            return session

    import sys

    slow = SlowImport("graphopt.backends.onnxruntime")
    monkeypatch.setitem(sys.modules, "graphopt.backends.onnxruntime", slow)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.save(model, tmp_path / "m.onnx")
    calib = tmp_path / "calib"
    calib.mkdir()
    for i in range(3):
        np.save(calib / f"feed{i:03d}.npy", np.zeros((1, 2), np.float32))
    args = argparse.Namespace(
        tool="fp32", model=str(tmp_path / "m.onnx"), calib=str(calib), limit=0
    )
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        bench_quantize.worker(args)
    assert json.loads(out.getvalue())["seconds"] == 8.0


def test_check_refuses_resize_axes_other_than_iota_with_computed_scales():
    """The 10.15 matrix, Resize: "When `scales` is a tensor input, `axes` must be an iota
    vector of length rank(input)". check read no `axes` (Resize-18), so a Resize of H and W
    only (axes [2, 3]) with scales computed in the graph passed."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])
    s = helper.make_tensor_value_info("s", TensorProto.FLOAT, [2])

    def resize(axes, computed: bool) -> onnx.ModelProto:
        node = helper.make_node("Resize", ["x", "", "sc"], ["y"], name="up", axes=axes)
        if computed:
            scale = helper.make_node("Identity", ["s"], ["sc"], name="scales_of")
            y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
            graph = helper.make_graph([scale, node], "g", [x, s], [y])
            m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
            m.ir_version = 8
            return m
        n = len(axes)
        init = numpy_helper.from_array(np.full(n, 2, np.float32), "sc")
        return _one_node_model(node, [x], [init], opset=18)

    found = _errors(resize([2, 3], computed=True))
    assert len(found) == 1 and "TensorRT needs the axes 0..3 in order" in found[0], found
    assert _errors(resize([2, 3], computed=False)) == []
    assert _errors(resize([0, 1, 2, 3], computed=True)) == []


def test_check_applies_deform_convs_restrictions():
    """The matrix, DeformConv (10.1+): "`input` must have 1D or 2D spatial dimensions.
    `pads` for the beginning and end along each spatial axis must be the same". check had no
    DeformConv rule: asymmetric pads and a 3-D DeformConv passed."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 5, 5])
    w = numpy_helper.from_array(np.ones((2, 2, 3, 3), np.float32), "w")
    offset = helper.make_tensor_value_info("off", TensorProto.FLOAT, [1, 18, 5, 5])

    def deform(x_vi, weight, offset_vi, **attrs) -> onnx.ModelProto:
        node = helper.make_node("DeformConv", ["x", "w", "off"], ["y"], name="dcn", **attrs)
        return _one_node_model(node, [x_vi, offset_vi], [weight], opset=19)

    assert _errors(deform(x, w, offset, pads=[1, 1, 1, 1])) == []
    found = _errors(deform(x, w, offset, pads=[1, 1, 0, 0]))
    assert len(found) == 1 and "same begin and end padding" in found[0], found
    x3 = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 5, 5, 5])
    w3 = numpy_helper.from_array(np.ones((2, 2, 3, 3, 3), np.float32), "w")
    off3 = helper.make_tensor_value_info("off", TensorProto.FLOAT, [1, 81, 5, 5, 5])
    found = _errors(deform(x3, w3, off3))
    assert len(found) == 1 and "rank-5 input" in found[0], found


def test_bench_quantize_times_no_tool_import(monkeypatch, tmp_path):
    """The budget leaves imports untimed (749af45); so must the tools it is compared with:
    graphopt's calibration timed `from graphopt.quant.api import quantize_with_report` (and
    onnxruntime's `from onnxruntime.quantization import ...`) inside its span, a cost the
    budget no longer had. With a fake clock, an import that takes 5 s and a calibration of
    1 s, the calibration's seconds are the 1 s."""
    import argparse
    import contextlib
    import io
    import json
    import sys
    import types

    import bench_quantize

    clock = [0.0]
    monkeypatch.setattr(
        bench_quantize, "time", types.SimpleNamespace(perf_counter=lambda: clock[0])
    )

    report = types.SimpleNamespace(kept_float=[], seconds={})

    def quantize_with_report(model, feeds, **kw):
        clock[0] += 1.0
        return model, report

    class SlowImport(types.ModuleType):
        def __getattr__(self, name):
            if name != "quantize_with_report":
                raise AttributeError(name)
            clock[0] += 5.0
            return quantize_with_report

    monkeypatch.setitem(sys.modules, "graphopt.quant.api", SlowImport("graphopt.quant.api"))
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    onnx.save(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), tmp_path / "m.onnx"
    )
    calib = tmp_path / "calib"
    calib.mkdir()
    for i in range(3):
        np.save(calib / f"feed{i:03d}.npy", np.zeros((1, 2), np.float32))
    monkeypatch.setattr(bench_quantize, "SENSITIVITY_FEEDS", (0, 1))
    args = argparse.Namespace(
        tool="ours", model=str(tmp_path / "m.onnx"), calib=str(calib), limit=0,
        method="default", keep_float=0, samples=False, target="onnxruntime",
        out=str(tmp_path / "q.onnx"),
    )  # fmt: skip
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        bench_quantize.worker(args)
    assert json.loads(out.getvalue())["seconds"] == 1.0
