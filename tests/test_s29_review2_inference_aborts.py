"""Review of graphopt.analysis.inference_aborts: models on which onnx's shape inference (and
onnxruntime's loader) still abort the process, or whose abort `inference_abort` does not see.

- A ceil-mode pool larger than its input, before a Slice: `runtime_shapes.inference_cuts`
  gives the pool's output to the next inference round as a graph input of onnxruntime's
  (negative) shape, where no node "may go negative" any more: shape_facts (inspect, optimize)
  aborts.
- The stem (`_risk_settles_alone`) is inferred without the model's value_info and declared
  graph-output shapes, which onnx's inference merges into what a node reads: the stem says
  "settles", the whole model aborts (load accepts it; bench, --verify, quantize abort).
- Producers `_may_go_negative` misses: Resize-10 (its scales are input 1), MaxUnpool (a
  transposed window), Split with a negative split size, STFT with a frame longer than the
  signal.
- fuse-patterns' opset upgrade (`optimize(..., upgrade_opset=True)`, check_nodes=False at
  load) hands such a model to onnx.version_converter, which runs onnx's inference: it aborts.
- onnxruntime's constant folding (any level above disable) turns pads computed from constants
  into an initializer, and its loader then aborts where onnx's inference of the model did not.

Everything that may abort runs in a child process.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphopt.analysis.inference_aborts import inference_abort
from tests.child_process import run_cli, run_code


def _int64(name: str, values: list[int] | int) -> onnx.TensorProto:
    return numpy_helper.from_array(np.array(values, np.int64), name)


def _float(name: str, values: np.ndarray | list[float]) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(values, np.float32), name)


def _sliced(
    nodes: list[onnx.NodeProto],
    inits: list[onnx.TensorProto],
    x: list[int | str],
    opset: int = 18,
    axis: int = 2,
    inputs: tuple[onnx.ValueInfoProto, ...] = (),
    value_info: tuple[onnx.ValueInfoProto, ...] = (),
    outputs: tuple[onnx.ValueInfoProto, ...] = (),
) -> onnx.ModelProto:
    """`nodes` make "p" from x; a Slice 'cut' of "p" on `axis` makes y."""
    inits = [*inits, _int64("st", [0]), _int64("en", [1]), _int64("ax", [axis])]
    nodes = [*nodes, helper.make_node("Slice", ["p", "st", "en", "ax"], ["y"], name="cut")]
    for k, node in enumerate(nodes):
        node.name = node.name or f"{node.op_type.lower()}{k}"
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x), *inputs],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None), *outputs],
        inits,
        value_info=list(value_info),
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


_FACTS = (
    "import sys, onnx\n"
    "from graphopt.analysis.shapes import shape_facts\n"
    "facts = shape_facts(onnx.load(sys.argv[1]))\n"
    "print('p', facts.shape('p'))\n"
)
_SESSION = (
    "import sys, onnx\n"
    "from graphopt.backends.onnxruntime import session\n"
    "from graphopt.errors import BackendError\n"
    "try:\n"
    "    session(onnx.load(sys.argv[1]))\n"
    "except BackendError as e:\n"
    "    print('refused:', e)\n"
)


def _ceil_pool() -> onnx.ModelProto:
    # onnx: ⌈(1 − 3)/1⌉ + 1 = −1; onnxruntime's ceil-mode formula differs from onnx's, so the
    # pool is cut out and its output fed to the next round as an input of shape [1, 3, −1, −1]
    pool = helper.make_node("MaxPool", ["x"], ["p"], kernel_shape=[3, 3], ceil_mode=1)
    return _sliced([pool], [], [1, 3, 1, 1])


def test_a_ceil_mode_pool_larger_than_its_input_does_not_abort_shape_facts(tmp_path) -> None:
    path = tmp_path / "m.onnx"
    onnx.save(_ceil_pool(), path)
    assert "a negative dimension (MaxPool 'maxpool0' makes it)" in inference_abort(_ceil_pool())
    done = run_code(_FACTS, str(path))
    assert done.returncode == 0, done.stderr[-300:]
    assert "-" not in done.stdout, done.stdout


def test_inspect_of_a_ceil_mode_pool_larger_than_its_input_does_not_abort(tmp_path) -> None:
    path = tmp_path / "m.onnx"
    onnx.save(_ceil_pool(), path)
    done = run_cli("inspect", str(path))
    assert done.returncode in (0, 2), done.stderr[-300:]


def _declared(where: str) -> onnx.ModelProto:
    """q = Reshape(x, shp) (shp a graph input: inference knows q's rank only), declared
    [1, 3, 1, 1] in value_info or as a graph output; an unpadded 3×3 MaxPool of q: [1, 3, −1, −1]
    in onnx's inference of the whole model, which merges the declaration into q."""
    q = helper.make_tensor_value_info("q", TensorProto.FLOAT, [1, 3, 1, 1])
    return _sliced(
        [
            helper.make_node("Reshape", ["x", "shp"], ["q"]),
            helper.make_node("MaxPool", ["q"], ["p"], kernel_shape=[3, 3]),
        ],
        [],
        [1, 3, 1, 1],
        inputs=(helper.make_tensor_value_info("shp", TensorProto.INT64, [4]),),
        value_info=(q,) if where == "value_info" else (),
        outputs=(q,) if where == "output" else (),
    )


@pytest.mark.parametrize("where", ["value_info", "output"])
def test_the_stem_reads_the_declared_shapes_the_model_infers_with(where: str) -> None:
    reason = inference_abort(_declared(where))
    assert reason.startswith("Slice 'cut' reads 'p' of shape [1, 3, -1, -1]"), reason


@pytest.mark.parametrize("where", ["value_info", "output"])
def test_a_session_of_a_model_whose_declared_shapes_make_the_dim_is_refused(
    tmp_path, where: str
) -> None:
    path = tmp_path / "m.onnx"
    onnx.save(_declared(where), path)
    done = run_code(_SESSION, str(path))
    assert done.returncode == 0, done.stderr[-300:]
    assert done.stdout.startswith("refused: onnxruntime cannot load the model: Slice 'cut'")


MISSED = {
    # Resize-10: (X, scales); scales is input 1, not 2
    "resize10": (
        [helper.make_node("Resize", ["x", "sc"], ["p"])],
        [_float("sc", [1, 1, -1, 1])],
        [1, 3, 4, 4],
        10,
        2,
    ),
    # MaxUnpool: out = (in − 1)·stride + kernel − pads, as ConvTranspose's
    "maxunpool": (
        [
            helper.make_node("MaxPool", ["x"], ["m", "i"], kernel_shape=[1, 1]),
            helper.make_node("MaxUnpool", ["m", "i"], ["p"], kernel_shape=[1, 1], pads=[5] * 4),
        ],
        [],
        [1, 3, 4, 4],
        18,
        2,
    ),
    # Split's split input, a negative size
    "split": (
        [helper.make_node("Split", ["x", "sp"], ["p", "rest"], axis=2)],
        [_int64("sp", [-1, 5])],
        [1, 3, 4, 4],
        18,
        2,
    ),
    # Split-2 to 12: the split attribute, a negative size
    "split11": (
        [helper.make_node("Split", ["x"], ["p", "rest"], axis=2, split=[-1, 5])],
        [],
        [1, 3, 4, 4],
        11,
        2,
    ),
    # DFT-17: dft_length (input 1), negative, is the output's dim on `axis`
    "dft": (
        [helper.make_node("DFT", ["x", "n"], ["p"], axis=1)],
        [_int64("n", -2)],
        [1, 4, 2],
        17,
        1,
    ),
    # Col2Im: image_shape (input 1), negative, is the output's spatial dims
    "col2im": (
        [helper.make_node("Col2Im", ["x", "image", "block"], ["p"])],
        [_int64("image", [-3, 5]), _int64("block", [1, 1])],
        [1, 3, 15],
        18,
        2,
    ),
    # AffineGrid: size (input 1), negative, is the grid's spatial dims
    "affinegrid": (
        [helper.make_node("AffineGrid", ["theta", "size"], ["p"])],
        [_float("theta", np.zeros((1, 2, 3))), _int64("size", [1, 3, -4, 4])],
        [1, 3, 4, 4],
        20,
        1,
    ),
    # STFT: (signal − frame_length)/frame_step + 1 frames: negative for a frame longer than
    # the signal (a short clip after --input-shape)
    "stft": (
        [helper.make_node("STFT", ["x", "step", "", "frame"], ["p"])],
        [_int64("step", 1), _int64("frame", 10)],
        [1, 4, 1],
        17,
        1,
    ),
}


@pytest.mark.parametrize("producer", sorted(MISSED))
def test_a_producer_that_makes_a_negative_dim_is_foreseen(tmp_path, producer: str) -> None:
    nodes, inits, x, opset, axis = MISSED[producer]
    model = _sliced(nodes, inits, x, opset=opset, axis=axis)
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    done = run_code(_FACTS, str(path))
    assert done.returncode == 0, done.stderr[-300:]
    assert inference_abort(model).startswith("Slice 'cut' reads 'p' of shape ["), producer


@pytest.mark.parametrize("computed", ["identity", "concat"])
def test_a_session_of_pads_onnxruntime_folds_is_refused(tmp_path, computed: str) -> None:
    if computed == "identity":
        nodes = [helper.make_node("Identity", ["pads0"], ["pads"])]
        inits = [_int64("pads0", [0, 0, -5, 0] * 2)]
    else:
        nodes = [helper.make_node("Concat", ["a", "b"], ["pads"], axis=0)]
        inits = [_int64("a", [0, 0, -5, 0]), _int64("b", [0, 0, -5, 0])]
    model = _sliced([*nodes, helper.make_node("Pad", ["x", "pads"], ["p"])], inits, [1, 3, 4, 4])
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    done = run_code(_SESSION, str(path))
    assert done.returncode == 0, done.stderr[-300:]
    assert done.stdout.startswith("refused: onnxruntime cannot load the model: Slice 'cut'")


_UPGRADE = (
    "import numpy as np, onnx, graphopt\n"
    "from onnx import helper, numpy_helper\n"
    "x = helper.make_tensor_value_info('x', onnx.TensorProto.FLOAT, [1, 4, 8, 8])\n"
    "y = helper.make_tensor_value_info('y', onnx.TensorProto.FLOAT, None)\n"
    "ints = {'pads': [0, 0, -10, 0] * 2, 'st': [0], 'en': [1], 'ax': [2]}\n"
    "inits = [numpy_helper.from_array(np.array(v, np.int64), n) for n, v in ints.items()]\n"
    "nodes = [\n"
    "    helper.make_node('Sigmoid', ['x'], ['t'], name='sg'),\n"
    "    helper.make_node('Mul', ['x', 't'], ['s'], name='mu'),\n"
    "    helper.make_node('Pad', ['s', 'pads'], ['p'], name='pad'),\n"
    "    helper.make_node('Slice', ['p', 'st', 'en', 'ax'], ['y'], name='cut'),\n"
    "]\n"
    "graph = helper.make_graph(nodes, 'g', [x], [y], inits)\n"
    "model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 13)], ir_version=8)\n"
    "out = graphopt.optimize(model, 'default', upgrade_opset=True)\n"
    "print([o.version for o in out.opset_import if o.domain in ('', 'ai.onnx')])\n"
)


def test_the_opset_upgrade_of_such_a_model_is_refused_not_an_abort() -> None:
    # x·σ(x) asks for Swish's opset 24; the converter would infer the Slice of the Pad's [1, 4,
    # −12, 8]
    done = run_code(_UPGRADE)
    assert done.returncode == 0, done.stderr[-300:]
    assert done.stdout.strip() == "[13]"
