"""optimize, distill-targets and split: errors that named no flag (or the wrong one), and a
flag that did nothing, found by running them on the real detector and on bad input. Every
test here failed before its fix.
"""

from __future__ import annotations

import os
from pathlib import Path

import onnx
import pytest

from graphopt.cli import main
from graphopt.distill import DistillError, write_targets
from graphopt.realmodels import fetch_model, image_paths
from tests.test_cli_review3 import one_line_error, typed_conv_model


@pytest.fixture(scope="module")
def detector() -> str:
    return str(fetch_model("common_det"))


@pytest.mark.parametrize("kind", ["missing", "folder"])
def test_optimize_names_the_inputs_flag_of_a_bad_feeds_file(tmp_path, capsys, detector, kind):
    """It said "a b\\nc.npz: cannot read input feeds: ..." (no flag, the path on two lines),
    and only after optimizing."""
    npz = tmp_path / "a b\nc.npz"
    if kind == "folder":
        npz.mkdir()
    out = tmp_path / "o.onnx"
    argv = ["optimize", detector, "-o", str(out), "--verify", "--inputs", str(npz)]
    assert main(argv) == 2
    one_line_error(capsys, f"--inputs {str(npz)!r}: cannot read input feeds: ")
    assert not out.exists()


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        # write_targets' argument names, said after the teacher was loaded; both named where
        # one was wrong
        (["--batch-size", "0"], "--batch-size must be 1 or more, got 0"),
        (["--checkpoint", "0"], "--checkpoint must be 1 or more, got 0"),
        (["--logits", "output", "--temperature", "0"], "--temperature must be > 0 and finite"),
        (["--logits", "output", "-T", "nan"], "--temperature must be > 0 and finite, got nan"),
    ],
)
def test_distill_names_the_flag(tmp_path, capsys, detector, extra, needle):
    data = tmp_path / "data"
    data.mkdir()
    image = image_paths()[0]  # a real image: the run would go ahead with a right option
    (data / image.name).write_bytes(image.read_bytes())
    out = tmp_path / "t"
    argv = ["distill-targets", detector, "--data", str(data), "-o", str(out), "--no-progress"]
    assert main([*argv, *extra]) == 2
    one_line_error(capsys, needle)
    assert not out.exists()


def test_write_targets_names_the_argument_that_is_wrong(tmp_path):
    with pytest.raises(DistillError, match=r"^checkpoint must be >= 1, got 0$"):
        write_targets(typed_conv_model(), [], tmp_path / "t", checkpoint=0)


def test_split_refuses_a_strip_prefix_no_output_has(tmp_path, capsys):
    """`split --outputs y --strip-prefix zz` renamed nothing and exited 0."""
    model = tmp_path / "m.onnx"
    onnx.save(typed_conv_model(), str(model))
    out = tmp_path / "s.onnx"
    argv = ["split", str(model), "-o", str(out), "--outputs", "y"]
    assert main([*argv, "--strip-prefix", "z\nz"]) == 2
    one_line_error(capsys, "--strip-prefix 'z\\nz': no output of --outputs starts with it (y)")
    assert not out.exists()
    assert main([*argv, "--strip-prefix", "zz"]) == 2
    capsys.readouterr()
    assert main(["split", str(model), "-o", str(out), "--outputs", "y"]) == 0
    assert [o.name for o in onnx.load(str(out)).graph.output] == ["y"]


@pytest.mark.parametrize(
    ("kind", "needle"),
    [
        ("device", "is not a regular file or folder (a character device)"),
        ("fifo", "is not a regular file or folder (a FIFO)"),
        ("dangling link", "no such file or folder"),
    ],
)
def test_distill_names_data_that_is_no_file_or_folder(tmp_path, capsys, detector, kind, needle):
    """A device or a FIFO as --data was said without the flag ("/dev/null: is not a regular
    file or folder ..."), after loading the teacher; a link to nothing too."""
    data = tmp_path / "d"
    if kind == "device":
        data = Path("/dev/null")
    elif kind == "fifo":
        os.mkfifo(data)
    else:
        data.symlink_to(tmp_path / "nowhere")
    out = tmp_path / "t"
    argv = ["distill-targets", detector, "--data", str(data), "-o", str(out), "--no-progress"]
    assert main(argv) == 2
    one_line_error(capsys, f"--data {data}: {needle}")
    assert not out.exists()
