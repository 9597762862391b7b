"""Review 11 of multi-task merge/split and distillation targets: each test failed before its fix."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from graphopt.backends.onnxruntime import run as ort_run
from graphopt.distill import DistillError, load_targets, read_manifest, write_targets
from graphopt.multitask import MergeError, merge, split
from tests.test_distill import classifier

F = TensorProto.FLOAT


def vi(name: str, dims: list, elem: int = F) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, dims)


def model(
    nodes: list,
    inputs: list,
    outputs: list,
    initializers: list | None = None,
    opset: int = 17,
) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=initializers or [])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def test_an_output_that_is_its_input_merges_beside_an_input_of_that_name_kept_apart():
    """Model 1 reads x [1,4] (model 0's x is [1,3]: kept apart as m1_x) and returns x itself
    as an output, merged as m1_x too: merge refused with 'output name m1_x collides with an
    input'. The renamed input now takes a name no output has."""
    a = model([helper.make_node("Relu", ["x"], ["y"])], [vi("x", [1, 3])], [vi("y", [1, 3])])
    b = model(
        [helper.make_node("Relu", ["x"], ["z"])],
        [vi("x", [1, 4])],
        [vi("x", [1, 4]), vi("z", [1, 4])],
    )
    merged = merge([a, b])
    renamed = [i.name for i in merged.graph.input if i.name != "x"]
    assert len(renamed) == 1 and renamed[0] != "m1_x"
    x0 = np.array([[-1.0, 2.0, -3.0]], np.float32)
    x1 = np.array([[4.0, -5.0, 6.0, -7.0]], np.float32)
    got = ort_run(merged, {"x": x0, renamed[0]: x1})
    np.testing.assert_array_equal(got["m0_y"], np.maximum(x0, 0))
    np.testing.assert_array_equal(got["m1_x"], x1)
    np.testing.assert_array_equal(got["m1_z"], np.maximum(x1, 0))


def _passes_input_through(name: str, dims: list) -> onnx.ModelProto:
    """Returns its input `name` as an output, and Neg(name) as z."""
    return model(
        [helper.make_node("Neg", [name], ["z"])],
        [vi(name, dims)],
        [vi(name, dims), vi("z", dims)],
    )


@pytest.mark.parametrize(
    ("dims", "input_map"),
    [([1, 3], None), ([1, 4], None), ([1, 3], {1: {"img": "x"}})],
    ids=["same-input", "input-kept-apart", "input-mapped"],
)
def test_split_task_whose_output_is_its_input_gives_the_model_back(dims, input_map):
    """A task output that is the task's input directly is merged as Identity(input); split
    --task refused it: 'cannot rename back to ['x']: the name is taken in the split model'
    (the input has that name). The output is the input again, as in the task's own model."""
    a = model([helper.make_node("Relu", ["x"], ["y"])], [vi("x", [1, 3])], [vi("y", [1, 3])])
    name = "img" if input_map else "x"
    b = _passes_input_through(name, dims)
    task = split(merge([a, b], input_map=input_map), task="m1")
    assert [i.name for i in task.graph.input] == [name]
    assert [o.name for o in task.graph.output] == [name, "z"]
    assert [n.op_type for n in task.graph.node] == ["Neg"]
    x = np.arange(dims[1], dtype=np.float32)[None] - 1.5
    got = ort_run(task, {name: x})
    np.testing.assert_array_equal(got[name], x)
    np.testing.assert_array_equal(got["z"], -x)


def test_split_task_whose_output_is_an_input_merged_with_another_of_its_inputs():
    """Inputs p and q of a task both mapped to merged x, and q returned as an output: split
    --task declared q as an input (an alias of p) and wrote output q = Identity(p), which the
    checker refused ('q' has been used as output names multiple times). The output is input q."""
    a = model([helper.make_node("Relu", ["x"], ["y"])], [vi("x", [1, 3])], [vi("y", [1, 3])])
    b = model(
        [helper.make_node("Add", ["p", "q"], ["z"])],
        [vi("p", [1, 3]), vi("q", [1, 3])],
        [vi("q", [1, 3]), vi("z", [1, 3])],
    )
    task = split(merge([a, b], input_map={1: {"p": "x", "q": "x"}}), task="m1")
    assert [i.name for i in task.graph.input] == ["p", "q"]
    assert [o.name for o in task.graph.output] == ["q", "z"]
    x = np.array([[1.0, -2.0, 3.0]], np.float32)
    got = ort_run(task, {"p": x, "q": x})
    np.testing.assert_array_equal(got["q"], x)
    np.testing.assert_array_equal(got["z"], x + x)


def test_split_task_gives_back_its_own_metadata_props_and_doc_string():
    """Model 0 has author=alice (and a key m1_author of its own), model 1 author=bob: merge
    stored bob under m1_author, over model 0's own m1_author, and split --task m1 gave back
    author=alice, m1_author=bob and the merged model's doc string. Now no key is overwritten,
    and each task gets its own props and doc string back (a prop added to the merged model
    after the merge is kept)."""
    a = model([helper.make_node("Relu", ["x"], ["y"])], [vi("x", [1, 3])], [vi("y", [1, 3])])
    b = model([helper.make_node("Neg", ["x"], ["y"])], [vi("x", [1, 3])], [vi("y", [1, 3])])
    helper.set_model_props(a, {"author": "alice", "m1_author": "zzz", "license": "MIT"})
    helper.set_model_props(b, {"author": "bob", "license": "MIT"})
    a.doc_string, b.doc_string = "relu task", "neg task"
    merged = merge([a, b])
    props = {p.key: p.value for p in merged.metadata_props}
    assert props["author"] == "alice" and props["m1_author"] == "zzz"
    assert "bob" in props.values() and props["license"] == "MIT"
    merged.metadata_props.add(key="deployed", value="yes")
    for task, own, doc in (("m0", a, "relu task"), ("m1", b, "neg task")):
        back = split(merged, task=task)
        expected = {p.key: p.value for p in own.metadata_props} | {"deployed": "yes"}
        assert {p.key: p.value for p in back.metadata_props} == expected
        assert back.doc_string == doc


def _samples(count: int) -> list[dict[str, np.ndarray]]:
    return [{"x": np.full((1, 4), i - 1.5, np.float32)} for i in range(count)]


@pytest.mark.parametrize("change", ["cut-short", "dtype", "shape"])
def test_stored_files_that_disagree_with_the_manifest_are_refused(tmp_path, change):
    """A target file cut short (3 rows of 5), rewritten as float64 or reshaped since the run:
    load_targets returned it as it was beside the other tensors' 5 rows, so sample i of one
    tensor was no longer sample i of the others (and a resumed run wrote into a float64 file
    without a word). Both now say the file is not the manifest's."""
    out = tmp_path / "t"
    write_targets(classifier(), _samples(5), out)
    entry = read_manifest(out)["tensors"]["logits"]
    stored = np.load(out / entry["file"])
    changed = {
        "cut-short": stored[:3],
        "dtype": stored.astype(np.float64),
        "shape": stored.reshape(5, 3, 1),
    }[change]
    np.save(out / entry["file"], changed)
    with pytest.raises(DistillError, match="the manifest says"):
        load_targets(out)
    manifest = out / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"complete": true', '"complete": false'))
    text = manifest.read_text().replace('"done": 5', '"done": 2')
    manifest.write_text(text)
    with pytest.raises(DistillError, match="the manifest says"):
        write_targets(classifier(), _samples(5), out)


def _stopped_before_its_first_checkpoint(tmp_path, count: int, bad: int):  # type: ignore[no-untyped-def]
    """A data folder of `count` samples whose sample `bad` is no array: a first run stops on it
    before its first checkpoint (0 done); the bad sample is then removed. (data, out)"""
    data = tmp_path / "data"
    data.mkdir()
    for i in range(count):
        np.save(data / f"s{i}.npy", _samples(count)[i]["x"])
    (data / f"s{bad}.npy").write_bytes(b"not an array")
    out = tmp_path / "t"
    with pytest.raises(DistillError, match=rf"s{bad}\.npy"):
        write_targets(classifier(), data, out, checkpoint=64)
    (data / f"s{bad}.npy").unlink()
    return data, out


def test_a_run_stopped_before_its_first_checkpoint_starts_over_whatever_changed(tmp_path):
    """A bad sample stops the first run before its first checkpoint (nothing kept, the
    manifest says 0 done). Removing the sample, or choosing other outputs, and running again
    was refused: 'holds targets made with another sources than this run's; use another folder
    (or delete it)'. The rerun starts over, and the stopped run's files go."""
    data, out = _stopped_before_its_first_checkpoint(tmp_path, count=4, bad=2)
    assert read_manifest(out)["done"] == 0
    manifest = write_targets(classifier(), data, out, outputs=["peak"], checkpoint=64)
    assert manifest["complete"] and manifest["sources"] == ["s0.npy", "s1.npy", "s3.npy"]
    assert sorted(p.name for p in out.iterdir()) == ["000_peak.npy", "manifest.json"]
    expected = [ort_run(classifier(), {"x": np.load(data / f"s{i}.npy")}) for i in (0, 1, 3)]
    np.testing.assert_array_equal(
        load_targets(out)["peak"], np.concatenate([e["peak"] for e in expected])
    )


def test_split_task_gives_back_the_dynamic_batch_another_task_made_static():
    """Task a reads x [N,3], task b x [1,3]: the merged input is [1,3] (static dims win), and
    split --task a kept it: the task's model refused batch 4 ('Got: 4 Expected: 1'), and its
    value_info said h is [1,3]. The task's own input shape is declared again (and the value_info
    dropped: it held b's static shapes for the tensors a and b share)."""
    w = onnx.numpy_helper.from_array(np.array([[1.0, 2.0, 3.0]], np.float32), "w")

    def task(op: str, batch: int | str) -> onnx.ModelProto:
        m = model(
            [helper.make_node("Add", ["x", "w"], ["h"]), helper.make_node(op, ["h"], ["y"])],
            [vi("x", [batch, 3])],
            [vi("y", [batch, 3])],
            [w],
        )
        m.graph.value_info.append(vi("h", [batch, 3]))
        return m

    dynamic = task("Relu", "N")
    merged = merge([task("Neg", 1), dynamic])
    assert [d.dim_value for d in merged.graph.input[0].type.tensor_type.shape.dim] == [1, 3]
    back = split(merged, task="m1")
    dims = back.graph.input[0].type.tensor_type.shape.dim
    assert (dims[0].dim_param, dims[1].dim_value) == ("N", 3)
    assert not back.graph.value_info
    x = np.arange(12, dtype=np.float32).reshape(4, 3) - 6
    np.testing.assert_array_equal(ort_run(back, {"x": x})["y"], ort_run(dynamic, {"x": x})["y"])
    # with strip_prefix the inputs keep their merged names, and their own shapes too
    stripped = split(merged, task="m1", strip_prefix="m1_")
    expected = np.maximum(x + onnx.numpy_helper.to_array(w), 0)
    np.testing.assert_array_equal(ort_run(stripped, {"x": x})["y"], expected)


def test_a_subfolder_named_like_a_sample_file_is_no_sample(tmp_path):
    """data/a.npy and a folder data/more.npy/ holding b.npy: the folder was taken as a sample
    too, and the run stopped on it ('more.npy: cannot read: Is a directory')."""
    data = tmp_path / "data"
    (data / "more.npy").mkdir(parents=True)
    np.save(data / "a.npy", _samples(2)[0]["x"])
    np.save(data / "more.npy" / "b.npy", _samples(2)[1]["x"])
    manifest = write_targets(classifier(), data, tmp_path / "t")
    assert manifest["sources"] == ["a.npy", "more.npy/b.npy"]
    expected = [ort_run(classifier(), s)["peak"] for s in _samples(2)]
    np.testing.assert_array_equal(load_targets(tmp_path / "t")["peak"], np.concatenate(expected))


@pytest.mark.parametrize(("hint", "what"), [("x", "teacher input"), ("w1", "constant")])
def test_a_hint_that_is_an_input_or_a_weight_is_refused_in_one_line(tmp_path, hint, what):
    """expose-tensors exposes computed tensors only: a hint naming the teacher's input or a
    weight was left out, and the run failed on the first sample with onnxruntime's 'the
    teacher failed on feed 0: Invalid output name:x', as if the sample were at fault."""
    with pytest.raises(DistillError, match=f"hint {hint!r} is a {what}"):
        write_targets(classifier(), _samples(2), tmp_path / "t", hints=[hint])
    assert not (tmp_path / "t").exists()


def test_a_teacher_output_with_no_rows_on_the_first_sample_is_refused(tmp_path):
    """y = the rows of x above 100 (Compress): on samples with none, y has shape (0, 4), so 0
    rows per sample were assumed, and a run over such samples stored 0-row targets and said
    complete (exit 0)."""
    keep = onnx.numpy_helper.from_array(np.array(100, np.float32), "z")
    teacher = model(
        [
            helper.make_node("ReduceMax", ["x"], ["m"], axes=[1], keepdims=0),
            helper.make_node("Greater", ["m", "z"], ["c"]),
            helper.make_node("Compress", ["x", "c"], ["y"], axis=0),
        ],
        [vi("x", ["N", 4])],
        [vi("y", ["K", 4])],
        [keep],
        opset=13,
    )
    with pytest.raises(DistillError, match="has no rows on 1 sample"):
        write_targets(teacher, _samples(3), tmp_path / "t")


def test_float8_weights_of_two_formats_with_equal_bytes_are_not_shared():
    """Bytes 0x38 0x40 are [1, 2] as float8e4m3fn and [0.5, 1] as float8e4m3fnuz. Both read
    back as ml_dtypes arrays whose dtype.str is '<V1', so the two initializers got one key and
    the second task read the first one's tensor: its Cast gave [1, 2], not [0.5, 1] (int4,
    uint4 and float4e2m1 share '<V1' too)."""

    def task(elem: int) -> onnx.ModelProto:
        c = helper.make_tensor("c", elem, [2], vals=b"\x38\x40", raw=True)
        return model(
            [
                helper.make_node("Cast", ["c"], ["f"], to=F),
                helper.make_node("Mul", ["x", "f"], ["y"]),
            ],
            [vi("x", [2])],
            [vi("y", [2])],
            [c],
            opset=19,
        )

    fn, fnuz = task(TensorProto.FLOAT8E4M3FN), task(TensorProto.FLOAT8E4M3FNUZ)
    x = np.array([1.0, -3.0], np.float32)
    merged = merge([fn, fnuz])
    got = ort_run(merged, {"x": x})
    np.testing.assert_array_equal(got["m0_y"], ort_run(fn, {"x": x})["y"])
    np.testing.assert_array_equal(got["m1_y"], ort_run(fnuz, {"x": x})["y"])
    np.testing.assert_array_equal(got["m1_y"], x * [0.5, 1.0])


def test_split_with_strip_prefix_of_an_output_that_is_the_input_it_is_named_after():
    """split --task m1 --strip-prefix m1_ (or --outputs m1_x,m1_z --strip-prefix m1_) of a task
    returning its input x: the stripped output name x is the input's, and split refused
    ('cannot rename back to ['x']: the name is taken'). The output is the input x itself."""
    a = model([helper.make_node("Relu", ["x"], ["y"])], [vi("x", [1, 3])], [vi("y", [1, 3])])
    merged = merge([a, _passes_input_through("x", [1, 3])])
    x = np.array([[1.0, -2.0, 3.0]], np.float32)
    for task in (
        split(merged, task="m1", strip_prefix="m1_"),
        split(merged, ["m1_x", "m1_z"], strip_prefix="m1_"),
    ):
        assert [o.name for o in task.graph.output] == ["x", "z"]
        got = ort_run(task, {"x": x})
        np.testing.assert_array_equal(got["x"], x)
        np.testing.assert_array_equal(got["z"], -x)


def _custom(version: int, op: str = "Foo") -> onnx.ModelProto:
    m = model(
        [helper.make_node(op, ["x"], ["y"], domain="com.acme")], [vi("x", [3])], [vi("y", [3])]
    )
    m.opset_import.append(helper.make_opsetid("com.acme", version))
    return m


def test_ops_of_a_custom_domain_at_two_versions_are_refused():
    """Model 0 calls com.acme's Foo at version 1, model 1 imports com.acme at 2: the merged
    model imported com.acme 2 and model 0's Foo was run as version 2's without a word (a
    custom op library registers its kernels per version). Now a one-line MergeError; equal
    versions, and a model importing the domain without calling it, still merge."""
    with pytest.raises(MergeError, match=r"calls 'Foo' of domain 'com.acme' at version 1"):
        merge([_custom(1), _custom(2, "Bar")], check=False)
    assert len(merge([_custom(2), _custom(2, "Bar")], check=False).graph.node) == 2
    unused = model([helper.make_node("Relu", ["x"], ["y"])], [vi("x", [3])], [vi("y", [3])])
    unused.opset_import.append(helper.make_opsetid("com.acme", 1))
    merged = merge([unused, _custom(2)], check=False)
    assert {o.domain: o.version for o in merged.opset_import}["com.acme"] == 2


def test_data_that_is_no_sequence_of_feed_dicts_is_a_one_line_error(tmp_path):
    """write_targets(teacher, {"x": array}) (one feed dict, not a list of them) raised
    KeyError: 0; an array of samples 'dictionary update sequence element #0 has length 4';
    a list of arrays the same ValueError from dict()."""
    x = np.ones((1, 4), np.float32)
    for data, message in (
        ({"x": x}, "one feed dict"),
        (np.stack([x, x]), "an array"),
        ([x], "feed 0: is a ndarray, not a feed dict"),
    ):
        with pytest.raises(DistillError, match=message):
            write_targets(classifier(), data, tmp_path / "t")


def test_another_runs_targets_folder_inside_the_data_holds_no_samples(tmp_path):
    """Targets may be written inside the data folder; a second run into another folder there
    (another temperature, say) took the first run's target .npy files for samples: 'the
    teacher failed on t1/000_logits.npy' (or, where their shape fitted, stored the teacher's
    outputs on its own targets)."""
    data = tmp_path / "data"
    data.mkdir()
    for i, sample in enumerate(_samples(3)):
        np.save(data / f"s{i}.npy", sample["x"])
    first = write_targets(classifier(), data, data / "t1", logits=["logits"])
    second = write_targets(classifier(), data, data / "t2", logits=["logits"], temperature=4.0)
    assert first["sources"] == second["sources"] == ["s0.npy", "s1.npy", "s2.npy"]
    assert load_targets(data / "t2")["logits"].shape == (3, 3)


def test_outputs_that_differ_on_the_batch_axis_are_named_together(tmp_path):
    """A teacher returning a constant table t [3] before its logits [N, 3]: the first output's
    3 rows were taken as 3 rows per sample, and the run was refused as 'teacher output
    'logits' has shape (1, 3): no batch axis of 3', blaming the batched output. The error
    names both outputs and their axis 0."""
    teacher = classifier()
    teacher.graph.initializer.append(
        onnx.numpy_helper.from_array(np.arange(3, dtype=np.float32), "table")
    )
    teacher.graph.node.append(helper.make_node("Identity", ["table"], ["t"]))
    teacher.graph.output.insert(0, vi("t", [3]))
    with pytest.raises(DistillError, match=r"'t' has shape \(3,\), 'logits' has shape \(1, 3\)"):
        write_targets(teacher, _samples(2), tmp_path / "t")


def test_a_restart_that_cannot_remove_the_stopped_runs_files_is_one_line(tmp_path, monkeypatch):
    """The restart of a run stopped before its first checkpoint removes that run's files; a
    removal that fails (a read-only folder, a file held open on Windows) was a PermissionError
    traceback (the final reader's leftover, distill.py:667)."""
    from pathlib import Path

    data, out = _stopped_before_its_first_checkpoint(tmp_path, count=3, bad=1)
    real_unlink = Path.unlink

    def refuse(self: Path, missing_ok: bool = False) -> None:
        if self.parent == out:
            raise PermissionError(13, "Permission denied", str(self))
        real_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", refuse)
    with pytest.raises(DistillError, match=r"cannot remove the files of the run stopped .*"):
        write_targets(classifier(), data, out, checkpoint=64)
