"""Shared fixtures: tiny models built in code, and the real detectors (cached, marked)."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import onnx
import pytest

from graphopt.backends.onnxruntime import run as ort_run


def _newest_ir_onnxruntime_reads() -> int:
    """The newest IR version the installed onnxruntime loads: onnx can be newer than it (onnx
    1.23 stamps IR 14, onnxruntime 1.30 reads up to 13)."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
    for ir in range(onnx.IR_VERSION, 8, -1):
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=ir)
        try:
            ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        except Exception:  # "Unsupported model IR version": try the one before
            continue
        return ir
    return 8


def _cap_test_models_ir_version() -> None:
    """Models the tests build with onnx.helper.make_model (no ir_version given) get the newest
    IR the installed onnxruntime reads, so the suite runs where onnx is ahead of onnxruntime.
    graphopt's own make_model calls always name an IR version (test_ort_probes checks that), so
    this cannot hide a library model an older onnxruntime refuses."""
    readable = _newest_ir_onnxruntime_reads()
    if readable >= onnx.IR_VERSION:
        return
    make_model = onnx.helper.make_model

    def capped(graph: onnx.GraphProto, **kwargs: object) -> onnx.ModelProto:
        model = make_model(graph, **kwargs)
        if "ir_version" not in kwargs:
            model.ir_version = readable
        return model

    onnx.helper.make_model = capped


_cap_test_models_ir_version()


def onnxruntime_loads_opset(opset: int) -> bool:
    """Whether the installed onnxruntime loads a model at default-domain `opset` (1.23.2, the
    newest for Python 3.10, stops at 23)."""
    from graphopt.passes.fuse_patterns import _onnxruntime_loads

    return _onnxruntime_loads(opset, 11)


# a test whose subject is an opset-24 op (Swish) running in onnxruntime
needs_onnxruntime_opset_24 = pytest.mark.skipif(
    not onnxruntime_loads_opset(24), reason="the installed onnxruntime loads no opset 24"
)


# What the installed onnxruntime does, measured (each probe runs once per process, on a model
# of a few nodes). onnxruntime 1.23.2, the newest for Python 3.10, differs from newer ones in
# each; a test whose oracle or subject is one of these conditions on the probe, not on a version.


def onnxruntime_fuses_conv_hardswish() -> bool:
    """Whether the installed onnxruntime has com.microsoft FusedConv's HardSwish activation
    (1.23.2 has not: ort-fusions then leaves layout_cdla's 94 Conv·HardSwish pairs unfused).
    graphopt's own probe, the one its fusedconv-hardswish rule checks."""
    from graphopt.patterns.checks import _ort_probe

    return _ort_probe("FusedConv:HardSwish")


def _ort_session(model: onnx.ModelProto | str, level: str = "disable"):  # type: ignore[no-untyped-def]
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = (
        ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if level == "all"
        else ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    )
    opts.log_severity_level = 4
    source = model if isinstance(model, str) else model.SerializeToString()
    return ort.InferenceSession(source, opts, providers=["CPUExecutionProvider"])


@functools.cache
def onnxruntime_rounds_float16_quantize() -> bool:
    """Whether the installed onnxruntime's float16 QuantizeLinear (opset 19) rounds x / scale to
    the nearest integer, as ONNX defines it. 1.23.2 truncates toward zero: x / scale = 1.75
    gives 1, not 2 (about half of all values one step off), so it cannot be the oracle of a
    float16 Q/DQ model's values."""
    from onnx import TensorProto, helper, numpy_helper

    x = np.array([0.1875, 0.4375, -0.4375, 0.625], np.float16)  # / 0.25: 0.75 1.75 -1.75 2.5
    graph = helper.make_graph(
        [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["y"])],
        "probe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT16, [4])],
        [helper.make_tensor_value_info("y", TensorProto.INT8, [4])],
        [
            numpy_helper.from_array(np.array(0.25, np.float16), "s"),
            numpy_helper.from_array(np.array(0, np.int8), "z"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)], ir_version=9)
    (y,) = _ort_session(model).run(None, {"x": x})
    return y.tolist() == [1, 2, -2, 2]


def xfail_unless_onnxruntime_rounds_float16_quantize() -> None:
    """Called where a test compares a float16 Q/DQ model's values in onnxruntime, after the
    assertions that do not need them: ends the test as xfailed where the installed onnxruntime's
    float16 QuantizeLinear truncates (1.23.2)."""
    if not onnxruntime_rounds_float16_quantize():
        pytest.xfail(
            "the installed onnxruntime's float16 QuantizeLinear truncates x / scale toward zero "
            "(about half the values one step off): no oracle for a float16 Q/DQ model's values"
        )


def onnxruntime_fused_int8_conv_is_right() -> bool:
    """Whether the installed onnxruntime's fused int8 Conv (the QLinearConv ORT_ENABLE_ALL makes
    of a Q/DQ Conv: uint8 activations, int8 per-channel weights) computes what the Q/DQ Conv
    computes unfused, to one step. 1.23.2 and 1.24 on a CPU with AVX-512 VNNI / AMX-INT8 get a
    3-channel-in, 24-channel-out Conv wrong by up to ~190 steps (microsoft/onnxruntime#26324:
    1.23.1 on a Xeon 4th gen); 1.25 and later, and 1.23.2 on other CPUs, agree. graphopt's own
    probe, the one quantize warns on (`fused_int8_conv_problem`)."""
    from graphopt.backends.onnxruntime import fused_int8_conv_problem

    return fused_int8_conv_problem() is None


def onnxruntime_int8_level() -> str:
    """The onnxruntime optimization level a test takes an int8 Q/DQ model's values at: its
    default "all" (the fused int8 kernels: QLinearConv, QLinearMatMul, QGemm) where
    `onnxruntime_fused_int8_conv_is_right`, else "basic" (its rewrites that fuse no Q/DQ: what
    the model computes as written). Where they are wrong, a test also checks "all" on a
    `reduce_range` model where `onnxruntime_runs_seven_bit_int8_fused`: on a CPU without VNNI
    (1.32.0, a Xeon with AVX-512 BW) the u8·s8 kernels saturate on full-range int8 weights,
    tens of steps off, and are right with 7-bit ones."""
    return "all" if onnxruntime_fused_int8_conv_is_right() else "basic"


def onnxruntime_runs_seven_bit_int8_fused() -> bool:
    """Whether the installed onnxruntime's fused int8 Conv is right, to one step, with int8
    weights in [-64, 64] (quantize's `reduce_range`, `REDUCED_WEIGHT_MAX`)."""
    from graphopt.backends.onnxruntime import fused_int8_conv_problem
    from graphopt.quant.qdq import REDUCED_WEIGHT_MAX

    return fused_int8_conv_problem(REDUCED_WEIGHT_MAX) is None


@functools.cache
def onnxruntime_reads_sparse_external_data() -> bool:
    """Whether the installed onnxruntime loads a sparse initializer whose values and indices are
    in an external data file. 1.23.2 refuses it ("CopySparseData Sparse indices int64 data size
    does not match expected")."""
    import tempfile

    from onnx import TensorProto, helper, numpy_helper

    sparse = helper.make_sparse_tensor(
        numpy_helper.from_array(np.array([1.0, 2.0], np.float32), "sp"),
        numpy_helper.from_array(np.array([0, 2], np.int64), "sp_i"),
        [4],
    )
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "sp"], ["y"])],
        "probe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
        sparse_initializer=[sparse],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    stored = model.graph.sparse_initializer[0]
    blob = b""
    for tensor in (stored.values, stored.indices):
        offset = len(blob)
        blob += tensor.raw_data
        tensor.ClearField("raw_data")
        tensor.data_location = TensorProto.EXTERNAL
        for key, value in (
            ("location", "d.bin"),
            ("offset", offset),
            ("length", len(blob) - offset),
        ):
            tensor.external_data.add(key=key, value=str(value))
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "d.bin").write_bytes(blob)
        path = Path(folder, "m.onnx")
        path.write_bytes(model.SerializeToString())
        try:
            (y,) = _ort_session(str(path)).run(None, {"x": np.zeros(4, np.float32)})
        except Exception:  # onnxruntime's own error types
            return False
    return y.tolist() == [1.0, 0.0, 2.0, 0.0]


_FLOAT16_CONV_OVERRIDABLE_WEIGHT = """
import numpy as np, onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
half = TensorProto.FLOAT16
w = numpy_helper.from_array(np.ones((2, 1, 1, 1), np.float16), "w")
graph = helper.make_graph(
    [helper.make_node("Conv", ["x", "w"], ["y"])], "probe",
    [helper.make_tensor_value_info("x", half, [1, 1, 2, 2]),
     helper.make_tensor_value_info("w", half, [2, 1, 1, 1])],
    [helper.make_tensor_value_info("y", half, None)], [w])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)], ir_version=8)
opts = ort.SessionOptions()
opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
opts.log_severity_level = 4
ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
"""


@functools.cache
def onnxruntime_survives_float16_conv_with_overridable_weight() -> bool:
    """Whether the installed onnxruntime makes an ORT_ENABLE_ALL session of a float16 Conv whose
    weight is an initializer also listed as a graph input (IR >= 4: a default the caller may
    override) without crashing. 1.23.2 dies of a segmentation fault there (the same model
    with a plain input weight, or in float32, loads). Probed in a child process."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", _FLOAT16_CONV_OVERRIDABLE_WEIGHT], capture_output=True, timeout=120
    )
    return done.returncode == 0


@functools.cache
def onnxruntime_nested_if_load_is_exponential() -> bool:
    """Whether the installed onnxruntime's session creation time doubles with each level of If
    nested in If (1.23.2 verifies every subgraph again inside its parent's type inference:
    14 levels ~0.5 s, 31 levels hours; microsoft/onnxruntime#29617 memoized it). Measured as
    a ratio, 14 levels against 6: ~20x there, ~1x where it is linear; no test asserts on it."""
    import time

    from onnx import TensorProto, helper

    def nested(depth: int) -> bytes:
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
        body = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "b", [], [y])
        other = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "o", [], [y])
        for level in range(depth):
            node = helper.make_node("If", ["c"], ["y"], then_branch=body, else_branch=other)
            body = helper.make_graph([node], f"w{level}", [], [y])
        body.input.extend(
            [
                helper.make_tensor_value_info("x", TensorProto.FLOAT, [1]),
                helper.make_tensor_value_info("c", TensorProto.BOOL, []),
            ]
        )
        model = helper.make_model(body, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
        return model.SerializeToString()

    import onnxruntime as ort

    def seconds(depth: int) -> float:
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        opts.log_severity_level = 4
        source = nested(depth)
        start = time.perf_counter()
        ort.InferenceSession(source, opts, providers=["CPUExecutionProvider"])
        return time.perf_counter() - start

    seconds(2)  # the first session pays onnxruntime's start-up
    shallow, deep = seconds(6), seconds(14)
    return deep > 0.1 and deep > 8 * shallow


def assert_same_outputs(
    original: onnx.ModelProto,
    rewritten: onnx.ModelProto,
    feeds: dict[str, np.ndarray],
    rtol: float = 1e-4,
    atol: float = 1e-5,
) -> None:
    """Run both models in onnxruntime on `feeds` and compare every output (fp32 tolerances)."""
    a = ort_run(original, feeds)
    b = ort_run(rewritten, feeds)
    assert list(a) == list(b), "output names or order changed"
    for name in a:
        assert a[name].dtype == b[name].dtype, name
        assert a[name].shape == b[name].shape, name
        np.testing.assert_allclose(b[name], a[name], rtol=rtol, atol=atol, err_msg=name)


def cache_written(root: Path, model: str, *flags: str) -> Path:
    """Run `graphopt quantize MODEL -o ROOT/q.onnx --calib ROOT/calib FLAGS --cache ROOT/c.cache
    --no-progress` (exit 0) with two real photographs (chelsea.png, coffee.png) in ROOT/calib;
    the cache it wrote, its sidecar beside it. The sidecar tests' module fixtures."""
    import shutil

    from graphopt.cli import main
    from graphopt.realmodels import IMAGE_NAMES, image_paths

    folder = root / "calib"
    folder.mkdir()
    for path in image_paths(IMAGE_NAMES[1:3]):
        shutil.copy(path, folder)
    cache = root / "c.cache"
    argv = ["quantize", model, "-o", str(root / "q.onnx"), "--calib", str(folder), *flags]
    assert main([*argv, "--cache", str(cache), "--no-progress"]) == 0
    return cache


@pytest.fixture(scope="session")
def real_model():
    """`real_model("common_det")` → path of the cached real detector."""
    from graphopt.realmodels import fetch_model

    return fetch_model


@pytest.fixture(scope="session")
def real_feeds():
    """`real_feeds("layout_cdla", n)` → n feeds preprocessed from real photographs."""
    from graphopt.realmodels import model_inputs

    cache: dict = {}

    def get(name: str, count: int = 2):
        key = (name, count)
        if key not in cache:
            cache[key] = model_inputs(name, count)
        return cache[key]

    return get
