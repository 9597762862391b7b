"""quantize's refusals from optimize name the model's path, as optimize's do (H237).

A model whose training_info reads a node output of unknown type is refused (fc517fe), and
`graphopt.optimize(path)` / `graphopt optimize` name the path. quantize loaded the model to a
plain ModelProto before optimizing it (`quant.api.prepare`; the CLI handed it `loaded.model`),
so the same refusal said 'the given ModelProto: training_info reads ...' for a file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnx.helper as oh
import pytest
from onnx import numpy_helper

import graphopt
from graphopt.cli import main
from graphopt.errors import LoadError

SAID = "training_info reads tensor 't' of the inference graph, whose type is not known"
FEED = {"x": np.linspace(-1, 1, 3 * 8 * 8, dtype=np.float32).reshape(1, 3, 8, 8)}


def _model() -> onnx.ModelProto:
    """x -> my::Foo -> t -> Conv -> y; training_info reads t, whose type nothing gives."""
    weight = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "W")
    graph = oh.make_graph(
        [
            oh.make_node("Foo", ["x"], ["t"], name="a", domain="my"),
            oh.make_node("Conv", ["t", "W"], ["y"], name="c"),
        ],
        "g",
        [oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 8, 8])],
        [oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
        [weight],
    )
    opsets = [oh.make_opsetid("", 13), oh.make_opsetid("my", 1)]
    model = oh.make_model(graph, opset_imports=opsets, ir_version=8)
    algorithm = oh.make_graph(
        [oh.make_node("Identity", ["t"], ["u"], name="i")],
        "algorithm",
        [],
        [oh.make_tensor_value_info("u", onnx.TensorProto.FLOAT, [1, 3, 8, 8])],
    )
    model.training_info.add().algorithm.CopyFrom(algorithm)
    return model


@pytest.fixture
def path(tmp_path: Path) -> Path:
    path = tmp_path / "m.onnx"
    path.write_bytes(_model().SerializeToString())
    return path


@pytest.mark.parametrize("with_cache", [False, True], ids=["no-cache", "cache"])
def test_quantize_of_a_path_names_the_path(path: Path, with_cache: bool) -> None:
    cache = path.parent / "m.cache" if with_cache else None
    with pytest.raises(LoadError) as info:
        graphopt.quantize(str(path), [FEED], cache=cache)
    assert str(info.value).startswith(f"{path}: {SAID}"), str(info.value)
    assert cache is None or not cache.exists()


def test_quantize_of_a_proto_still_names_the_proto() -> None:
    with pytest.raises(LoadError) as info:
        graphopt.quantize(_model(), [FEED])
    assert str(info.value).startswith(f"the given ModelProto: {SAID}"), str(info.value)


def test_optimize_names_the_path_as_before(path: Path) -> None:
    """The control: optimize named it on the parent too."""
    with pytest.raises(LoadError) as info:
        graphopt.optimize(str(path))
    assert str(info.value).startswith(f"{path}: {SAID}"), str(info.value)


@pytest.mark.parametrize("with_cache", [False, True], ids=["no-cache", "cache"])
def test_the_cli_names_the_path(
    path: Path, capsys: pytest.CaptureFixture[str], with_cache: bool
) -> None:
    calib = path.parent / "calib"
    calib.mkdir()
    np.save(calib / "a.npy", FEED["x"])
    out = path.parent / "q.onnx"
    argv = ["quantize", str(path), "-o", str(out), "--calib", str(calib)]
    cache = path.parent / "q.cache"
    if with_cache:
        argv += ["--cache", str(cache)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err, err
    assert err.endswith(
        f"error: {path}: {SAID}: declare it in graph.value_info, or optimize a "
        "copy without training_info (del model.training_info[:])"
    ), err
    assert not out.exists() and not cache.exists()
