"""Review of distillation targets (second adversarial review of graphopt.distill)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from graphopt.distill import DistillError, write_targets
from tests.test_distill import classifier

ONE = [{"x": np.ones((1, 4), np.float32)}]


def test_no_samples_is_a_distill_error(tmp_path):
    """An empty feed sequence (or a data folder whose every sample sits in the targets folder)
    failed on `assert manifest is not None`, no one-line error."""
    with pytest.raises(DistillError, match="no samples to run the teacher on"):
        write_targets(classifier(), [], tmp_path / "t")
    np.save(tmp_path / "a.npy", ONE[0]["x"])
    with pytest.raises(DistillError, match="every sample is inside the targets folder"):
        write_targets(classifier(), tmp_path, tmp_path)


def test_nothing_to_store_is_a_distill_error(tmp_path):
    """outputs=[] (the CLI's --outputs '') and no hints: onnxruntime's run([]) returns every
    output, and the writer crashed in zip() (ValueError)."""
    with pytest.raises(DistillError, match="nothing to store"):
        write_targets(classifier(), ONE, tmp_path / "t", outputs=[])


def test_logits_not_among_the_chosen_outputs_are_stored_and_names_count_once(tmp_path):
    """outputs=[peak], logits=[logits]: the logits were checked, then silently not stored (the
    targets held peak only); a name given twice made two files, one the manifest forgot."""
    from graphopt.backends.onnxruntime import run as ort_run
    from graphopt.distill import load_targets, softmax

    out = tmp_path / "t"
    manifest = write_targets(
        classifier(), ONE, out, outputs=["peak", "peak"], logits=["logits"], temperature=2.0
    )
    assert {k: v["kind"] for k, v in manifest["tensors"].items()} == {
        "peak": "raw",
        "logits": "soft",
    }
    assert sorted(p.name for p in out.iterdir()) == [
        "000_peak.npy",
        "001_logits.npy",
        "manifest.json",
    ]
    expected = ort_run(classifier(), ONE[0])
    targets = load_targets(out)
    np.testing.assert_allclose(targets["logits"], softmax(expected["logits"], 2.0), rtol=1e-6)
    np.testing.assert_array_equal(targets["peak"], expected["peak"])


def test_a_teacher_whose_external_weights_changed_is_not_resumed(tmp_path):
    """The manifest's teacher sha256 is its .onnx file's: with the weights kept as external
    data, a changed weight file left it unchanged, and a rerun resumed the old teacher's
    folder with the new teacher, mixing the two teachers' targets without a word."""
    import onnx

    from graphopt.distill import read_manifest

    def save(model: onnx.ModelProto, folder) -> str:
        """model as folder/t.onnx with its weights in folder/t.data (written anew)."""
        folder.mkdir(exist_ok=True)
        (folder / "t.data").unlink(missing_ok=True)  # onnx.save appends to a data file
        copy = onnx.ModelProto()
        copy.CopyFrom(model)  # (onnx.save moves the model's own weights out)
        onnx.save(
            copy, folder / "t.onnx", save_as_external_data=True, location="t.data", size_threshold=0
        )
        return str(folder / "t.onnx")

    teacher = classifier()
    path = save(teacher, tmp_path / "m")
    feeds = ONE * 3
    with pytest.raises(KeyboardInterrupt):

        def stop(done: int, total: int) -> None:
            if done == 1:
                raise KeyboardInterrupt

        write_targets(path, feeds, tmp_path / "t", checkpoint=1, progress=stop)
    assert read_manifest(tmp_path / "t")["done"] == 1
    retrained = classifier()
    w = onnx.numpy_helper.to_array(retrained.graph.initializer[1]) * 2
    retrained.graph.initializer[1].CopyFrom(onnx.numpy_helper.from_array(w, "w2"))
    before = (tmp_path / "m" / "t.onnx").read_bytes()
    path = save(retrained, tmp_path / "m")
    assert (tmp_path / "m" / "t.onnx").read_bytes() == before  # only t.data changed
    with pytest.raises(DistillError, match="another teacher"):
        write_targets(path, feeds, tmp_path / "t", checkpoint=1)
    # the same teacher and weights resume
    path = save(teacher, tmp_path / "m")
    assert write_targets(path, feeds, tmp_path / "t", checkpoint=1)["complete"]


def test_a_data_file_rewritten_under_its_name_is_not_resumed(tmp_path):
    """The manifest named the samples by file name only: a data file rewritten between the
    stopped run and the rerun (same name, other values) was resumed, and the folder mixed
    targets of the old and new data without a word."""
    import os

    data = tmp_path / "data"
    data.mkdir()
    for i in range(4):
        np.save(data / f"s{i}.npy", np.full((1, 4), i, np.float32))
    out = tmp_path / "t"

    def stop_at_two(done: int, total: int) -> None:
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_targets(classifier(), data, out, checkpoint=2, progress=stop_at_two)
    first = data / "s0.npy"
    stat = first.stat()
    np.save(first, np.full((1, 4), 9, np.float32))  # same size: only the time tells
    os.utime(first, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    with pytest.raises(DistillError, match=r"data files that changed since \(s0.npy\)"):
        write_targets(classifier(), data, out, checkpoint=2)


def _image_teacher(elem: int, dims: list[int]) -> onnx.ModelProto:
    """y = mean over the spatial axes of Cast<float>(x) (batch and channel axes kept)."""
    from onnx import helper

    channel_axis = len(dims) - 1 if dims[-1] in (1, 3) else len(dims) - 3
    axes = [a for a in range(len(dims) - 3, len(dims)) if a != channel_axis]
    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["x"], ["f"], to=onnx.TensorProto.FLOAT),
            helper.make_node("ReduceMean", ["f"], ["y"], axes=axes, keepdims=0),
        ],
        "img",
        [helper.make_tensor_value_info("x", elem, dims)],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


@pytest.mark.parametrize(
    "elem, dims, gray",
    [
        (2, [1, 8, 8, 3], False),  # uint8 NHWC: raw pixels
        (1, [1, 8, 8], True),  # float CHW gray, no batch axis: luma / 255
    ],
)
def test_an_image_folder_feeds_the_teacher_input_as_declared(tmp_path, elem, dims, gray):
    """distill fed every image as float32 NCHW (3 channels, /255): a uint8 NHWC teacher or a
    gray CHW one failed in onnxruntime. Now it feeds what quantization feeds
    (graphopt.quant.image_input)."""
    import shutil

    from graphopt.distill import load_targets
    from graphopt.realmodels import image_paths, load_image, preprocess

    photos = tmp_path / "photos"
    photos.mkdir()
    paths = sorted(image_paths()[:2])
    for p in paths:
        shutil.copy(p, photos / p.name)
    write_targets(_image_teacher(elem, dims), photos, tmp_path / "t")
    got = load_targets(tmp_path / "t")["y"]
    for i, p in enumerate(paths):
        nchw = preprocess(load_image(p), (8, 8), scale=1.0 if elem == 2 else 1 / 255, gray=gray)
        if elem == 2:
            pixels = np.clip(np.rint(nchw), 0, 255).astype(np.uint8).astype(np.float32)
            expected = pixels.mean(axis=(0, 2, 3))
        else:
            expected = nchw[0].mean(axis=(1, 2))
        np.testing.assert_allclose(got[i].reshape(-1), expected, rtol=1e-5)
