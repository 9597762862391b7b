"""A hint computed from the teacher's constants only (the same for every sample) is stored
once, under the manifest's `constants` (`load_constants`), not per sample. It was stored as
every sample's rows (a copy each), or, of other rows than the samples', refused ('teacher
outputs differ on axis 0') or taken for the samples' rows at batch size 1."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from graphopt.cli import main
from graphopt.distill import (
    DistillError,
    load_constants,
    load_targets,
    remove_unkept,
    write_targets,
)

W = np.array([0.5, -1.0, 2.0, 3.0], np.float32)
TABLE = np.arange(12, dtype=np.float32).reshape(3, 4)


def _teacher() -> onnx.ModelProto:
    """y = x·w [n, 4]; hints: act = Relu(y) [n, 4] (per sample), scaled = 2w [4],
    row = [2w] [1, 4], table = T + w [3, 4] (constants only), rand [2, 4] (RandomUniform:
    no input, yet not the same each run)."""
    graph = helper.make_graph(
        [
            helper.make_node("Mul", ["x", "w"], ["y"]),
            helper.make_node("Relu", ["y"], ["act"]),
            helper.make_node("Mul", ["w", "two"], ["scaled"]),
            helper.make_node("Unsqueeze", ["scaled", "zero"], ["row"]),
            helper.make_node("Add", ["t", "w"], ["table"]),
            helper.make_node("RandomUniform", [], ["rand"], shape=[2, 4], seed=1.0),
        ],
        "s28_const",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])],
        [
            helper.make_tensor("w", TensorProto.FLOAT, [4], W),
            helper.make_tensor("two", TensorProto.FLOAT, [], [2.0]),
            helper.make_tensor("zero", TensorProto.INT64, [1], [0]),
            helper.make_tensor("t", TensorProto.FLOAT, [3, 4], TABLE.ravel()),
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _feeds(count: int = 5) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(2)
    return [{"x": rng.standard_normal((1, 4)).astype(np.float32)} for _ in range(count)]


@pytest.mark.parametrize("batch", [1, 2])
def test_constant_hints_are_stored_once(tmp_path, batch):
    feeds = _feeds()
    out = tmp_path / "t"
    hints = ["act", "scaled", "row", "table"]
    manifest = write_targets(_teacher(), feeds, out, hints=hints, batch_size=batch)
    assert sorted(manifest["tensors"]) == ["act", "y"]
    constants = manifest["constants"]
    assert sorted(constants) == ["row", "scaled", "table"]
    assert constants["table"]["shape"] == [3, 4] and constants["row"]["shape"] == [1, 4]
    assert all(entry["kind"] == "hint" for entry in constants.values())
    targets = load_targets(out)
    x = np.concatenate([f["x"] for f in feeds])
    np.testing.assert_allclose(targets["act"], np.maximum(x * W, 0), rtol=1e-6)
    once = load_constants(out)
    np.testing.assert_array_equal(once["scaled"], 2 * W)
    np.testing.assert_array_equal(once["row"], [2 * W])
    np.testing.assert_array_equal(once["table"], TABLE + W)


def test_a_hint_of_a_random_op_is_no_constant(tmp_path):
    manifest = write_targets(_teacher(), _feeds(), tmp_path / "t", outputs=[], hints=["rand"])
    assert "rand" in manifest["tensors"] and not manifest.get("constants")


def test_constant_hints_alone_are_refused(tmp_path):
    with pytest.raises(DistillError, match=r"'scaled'.*the same for every sample"):
        write_targets(_teacher(), _feeds(), tmp_path / "t", outputs=[], hints=["scaled"])
    assert not (tmp_path / "t" / "manifest.json").exists()


def test_a_run_resumes_with_its_constants(tmp_path):
    feeds = _feeds()
    out = tmp_path / "t"

    def stop(done: int, total: int) -> None:
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_targets(_teacher(), feeds, out, hints=["table"], checkpoint=2, progress=stop)
    manifest = write_targets(_teacher(), feeds, out, hints=["table"], batch_size=2)
    assert manifest["complete"] and list(manifest["constants"]) == ["table"]
    np.testing.assert_array_equal(load_constants(out)["table"], TABLE + W)


def test_a_folder_that_stored_a_constant_hint_per_sample_resumes_so(tmp_path):
    """A folder made before constants were stored once kept such a hint among its tensors,
    a copy per sample: a rerun goes on so (and old manifests, without 'constants', load)."""
    feeds = _feeds()
    out = tmp_path / "t"

    def stop(done: int, total: int) -> None:
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_targets(_teacher(), feeds, out, hints=["row"], checkpoint=2, progress=stop)
    manifest = json.loads((out / "manifest.json").read_text())
    entry = manifest.pop("constants")["row"]
    entry["shape"] = [5, 4]
    np.save(out / entry["file"], np.tile(2 * W, (5, 1)))
    manifest["tensors"]["row"] = entry
    (out / "manifest.json").write_text(json.dumps(manifest))
    assert load_constants(out) == {}
    write_targets(_teacher(), feeds, out, hints=["row"])
    np.testing.assert_array_equal(load_targets(out)["row"], np.tile(2 * W, (5, 1)))


def test_a_run_stopped_before_its_first_checkpoint_removes_its_constants(tmp_path):
    out = tmp_path / "t"

    def stop(done: int, total: int) -> None:
        if done == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_targets(_teacher(), _feeds(), out, hints=["table"], checkpoint=3, progress=stop)
    assert len(list(out.glob("*.npy"))) == 2
    assert remove_unkept(out)
    assert list(out.iterdir()) == []


def test_a_damaged_constants_entry_is_refused(tmp_path):
    out = tmp_path / "t"
    write_targets(_teacher(), _feeds(), out, hints=["table"])
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["constants"]["table"]["file"] = "../x.npy"
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DistillError, match="damaged manifest"):
        load_constants(out)


def test_the_command_lists_the_constants(tmp_path, capsys):
    teacher = tmp_path / "teacher.onnx"
    onnx.save(_teacher(), teacher)
    data = tmp_path / "data"
    data.mkdir()
    for i, feed in enumerate(_feeds(3)):
        np.save(data / f"s{i}.npy", feed["x"])
    argv = ["distill-targets", str(teacher), "--data", str(data), "-o", str(tmp_path / "t")]
    assert main([*argv, "--hints", "act,table", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "hint  table: <f4 [3, 4] -> " in printed and "once: the same for every sample" in printed
