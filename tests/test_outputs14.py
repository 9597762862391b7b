"""Every command that writes files refuses an output it cannot write before its long work
(loading, merging, running a teacher, building an engine), in one line, exit 2, with nothing
left behind: `graphopt.commands._common.check_writable` (and `check_writable_folder`).

The CLI runs in a subprocess on an input that cannot be loaded: a refusal that comes only after
loading names the input, not the output. A folder that takes no new file is a read-only bind
mount in a mount namespace of its own (`unshare -m`; root ignores permission bits), else /proc.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphopt.cli import main
from graphopt.errors import SaveError

LONG = "x" * 300
RO_SCRIPT = 'mount --bind "$1" "$1" && mount -o remount,ro,bind "$1" "$1" && shift && exec "$@"'


@functools.cache
def read_only_mounts() -> bool:
    """Whether this process can make a read-only bind mount in a namespace of its own."""
    if shutil.which("unshare") is None:
        return False
    with tempfile.TemporaryDirectory() as folder:
        probe = Path(folder) / "probe"
        try:
            done = subprocess.run(
                ["unshare", "-m", "sh", "-c", RO_SCRIPT, "sh", folder, "touch", str(probe)],
                capture_output=True,
                timeout=30,
            )
        except (OSError, subprocess.SubprocessError):
            return False
        return done.returncode != 0 and b"Read-only file system" in done.stderr


def _model() -> onnx.ModelProto:
    w = np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], name="conv", pads=[1, 1, 1, 1])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])],
        [numpy_helper.from_array(w, "w")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def _save_with_external_data(path: Path) -> None:
    data = path.with_name(path.name + ".data")
    onnx.save(_model(), path, save_as_external_data=True, location=data.name, size_threshold=0)
    assert data.is_file()


class Place:
    """tmp_path with an unloadable model `bad.onnx` (any refusal after loading names it), a
    real one `m.onnx`, a data folder `data/`, a file `afile`, a folder `afolder/` and a folder
    `ro/` that takes no new file (read-only in the command's namespace; /proc without one)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "bad.onnx").write_bytes(b"this is no onnx model")
        onnx.save(_model(), root / "m.onnx")
        (root / "data").mkdir()
        np.save(root / "data" / "a.npy", np.zeros((1, 3, 8, 8), np.float32))
        (root / "afile").write_text("x")
        (root / "afolder").mkdir()
        (root / "afolder" / "keep.txt").write_text("k")
        (root / "ro").mkdir()
        (root / "ro" / "keep.txt").write_text("r")
        self.mounts = read_only_mounts()
        self.capsys: pytest.CaptureFixture[str]
        self.ro = root / "ro" if self.mounts else Path("/proc")

    def output(self, case: str, name: str) -> str:
        return str(
            {
                "long": self.root / f"{LONG}.onnx",
                "missing": self.root / "nope" / name,
                "below a file": self.root / "afile" / name,
                "folder": self.root / "afolder",
                "file": self.root / "afile",
                "read-only": self.ro / f"graphopt-h118-{name}",
            }[case]
        )

    def snapshot(self) -> dict[str, bytes | None]:
        return {
            str(p.relative_to(self.root)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(self.root.rglob("*"))
        }

    def run(self, argv: list[str]) -> tuple[int, str]:
        """(exit status, stderr) of `graphopt ARGV` run in this folder: in a process of its own,
        in a mount namespace where `ro/` is read-only, when ARGV names `ro/`; else through
        `graphopt.cli.main` here (an exception escaping it fails the test)."""
        if not any(str(self.ro) in a for a in argv):
            self.capsys.readouterr()
            code = main(argv)
            return code, self.capsys.readouterr().err
        command = [sys.executable, "-m", "graphopt", *argv]
        if self.mounts:
            command = ["unshare", "-m", "sh", "-c", RO_SCRIPT, "sh", str(self.ro), *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=self.root)
        return done.returncode, done.stderr


@pytest.fixture
def place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Place:
    monkeypatch.chdir(tmp_path)
    place = Place(tmp_path)
    place.capsys = capsys
    return place


PROBLEM = {
    "long": "File name too long",
    "missing": "does not exist",
    "below a file": "is not a folder",
    "folder": "is a folder; give a file name",
    "file": "is a file, not a folder",
    "read-only": "cannot write in folder",
}


def refused(place: Place, argv: list[str], option: str, path: str, case: str) -> None:
    """The command exits 2 with one line naming `option`, `path` and the problem, and leaves
    the folder as it was."""
    before = place.snapshot()
    code, err = place.run(argv)
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    assert f"{option} {path}" in lines[0] and PROBLEM[case] in lines[0], lines[0]
    assert place.snapshot() == before


FILE_CASES = ["long", "missing", "below a file", "folder", "read-only"]


@pytest.mark.parametrize("case", FILE_CASES)
def test_optimize_output(place: Place, case: str) -> None:
    out = place.output(case, "o.onnx")
    refused(place, ["optimize", "bad.onnx", "-o", out], "-o", out, case)


@pytest.mark.parametrize("case", ["long", "below a file", "file", "read-only"])
def test_optimize_dump_dir(place: Place, case: str) -> None:
    dumps = place.output(case, "dumps")
    argv = ["optimize", "bad.onnx", "-o", "o.onnx", "--dump-dir", dumps]
    refused(place, argv, "--dump-dir", dumps, case)


def test_optimize_dump_dir_of_an_earlier_run_is_refused_before_loading(place: Place) -> None:
    (place.root / "afolder" / "01-fold-constants.onnx").write_bytes(b"an earlier dump")
    before = place.snapshot()
    dumps = str(place.root / "afolder")
    code, err = place.run(["optimize", "bad.onnx", "-o", "o.onnx", "--dump-dir", dumps])
    assert code == 2 and err.strip() == (
        f"graphopt optimize: error: --dump-dir {dumps}: holds the dumps of an earlier run "
        "(01-fold-constants.onnx, ...); give an empty or new folder"
    ), err
    assert place.snapshot() == before


def test_optimize_output_naming_a_folder(place: Place) -> None:
    # "out/" is Path "out": it passed the check, and the save refused it after the run
    before = place.snapshot()
    code, err = place.run(["optimize", "bad.onnx", "-o", "out/"])
    assert code == 2 and err.strip() == (
        "graphopt optimize: error: -o out/ names a folder; give a file name"
    ), err
    assert place.snapshot() == before


def test_optimize_data_file_name_too_long(place: Place) -> None:
    # a 252-byte name fits, its data file's 257 bytes do not: said at the save, after the run
    out = str(place.root / ("y" * 252))
    argv = ["optimize", "bad.onnx", "-o", out, "--external-data", "yes"]
    refused(place, argv, "-o's data file", out + ".data", "long")


def test_optimize_data_file_of_an_external_data_input_is_checked_before_optimizing(
    place: Place,
) -> None:
    _save_with_external_data(place.root / "ext.onnx")
    out = str(place.root / ("y" * 252))
    refused(place, ["optimize", "ext.onnx", "-o", out], "-o's data file", out + ".data", "long")


def test_quantize_data_file_of_an_external_data_input_is_checked_before_calibrating(
    place: Place,
) -> None:
    # the model is saved as the input was, with <out>.data: its name too long was said after
    # calibrating (here the empty --calib folder would say 'no calibration files' first)
    _save_with_external_data(place.root / "ext.onnx")
    (place.root / "calib").mkdir()
    out = str(place.root / ("q" * 252))
    argv = ["quantize", "ext.onnx", "--calib", "calib", "-o", out, "--no-progress"]
    refused(place, argv, "-o's data file", out + ".data", "long")


@pytest.mark.parametrize("case", FILE_CASES)
def test_merge_output(place: Place, case: str) -> None:
    out = place.output(case, "o.onnx")
    refused(place, ["merge", "bad.onnx", "m.onnx", "-o", out], "-o", out, case)


@pytest.mark.parametrize("case", ["long", "read-only"])
def test_merge_report(place: Place, case: str) -> None:
    # read-only: the merged model was written, then the report refused (exit 2, a model left)
    report = place.output(case, "r.json")
    argv = ["merge", "bad.onnx", "m.onnx", "-o", "o.onnx", "--report", report]
    refused(place, argv, "--report", report, case)


@pytest.mark.parametrize("case", FILE_CASES)
def test_split_output(place: Place, case: str) -> None:
    out = place.output(case, "o.onnx")
    refused(place, ["split", "bad.onnx", "--outputs", "y", "-o", out], "-o", out, case)


@pytest.mark.parametrize("case", ["long", "below a file", "file", "read-only"])
def test_distill_targets_folder(place: Place, case: str) -> None:
    out = place.output(case, "targets")
    argv = ["distill-targets", "bad.onnx", "--data", "data", "-o", out, "--no-progress"]
    refused(place, argv, "-o", out, case)


def test_distill_targets_into_the_data_folder(place: Place) -> None:
    # the targets went into --data, and the next run (the resume too) found no samples there
    before = place.snapshot()
    argv = ["distill-targets", "m.onnx", "--data", "data", "-o", "data/", "--no-progress"]
    code, err = place.run(argv)
    assert code == 2 and err.strip() == (
        "graphopt distill-targets: error: -o data/ is the --data folder; give another folder"
    ), err
    assert place.snapshot() == before


@pytest.mark.parametrize("case", ["long", "below a file", "read-only"])
def test_build_engine(place: Place, case: str) -> None:
    # (a missing folder is made) before TensorRT's import: without it, that was all it said
    out = place.output(case, "e.plan")
    refused(place, ["build", "bad.onnx", "-o", out], "-o", out, case)


@pytest.mark.parametrize(("flag", "extra"), [("--timing-cache", []), ("--cache", ["--int8"])])
def test_build_caches_in_a_folder_that_takes_no_file(
    place: Place, flag: str, extra: list[str]
) -> None:
    # written after the build (the calibration cache after calibrating)
    cache = place.output("read-only", "c.cache")
    argv = ["build", "bad.onnx", "-o", "e.plan", *extra, flag, cache]
    refused(place, argv, flag, cache, "read-only")


def test_build_sidecar_name_too_long(place: Place) -> None:
    # the engine's 252-byte name fits, the sidecar's 257 do not: a traceback (and an engine
    # written without its sidecar where TensorRT is)
    out = str(place.root / ("e" * 252))
    refused(place, ["build", "bad.onnx", "-o", out], "the engine's sidecar", out + ".json", "long")


@pytest.mark.parametrize("case", ["long", "read-only"])
def test_demo_output(place: Place, case: str) -> None:
    # a pipeline that does not exist: the demo would say so before fetching anything
    out = place.output(case, "d.onnx")
    argv = ["demo", "--pipeline", str(place.root / "no-such.yaml"), "-o", out]
    refused(place, argv, "-o", out, case)


# ---------------------------------------------------------------------------- the function


def test_a_link_into_a_folder_that_takes_no_file_is_refused(tmp_path: Path) -> None:
    from graphopt.commands._common import check_writable

    if not Path("/proc/self").is_dir():
        pytest.skip("needs Linux /proc (a folder that takes no new file, even for root)")
    link = tmp_path / "link.onnx"
    link.symlink_to("/proc/graphopt-h118.onnx")  # the save replaces the file it points to
    with pytest.raises(SaveError, match=r"^-o .*link\.onnx: cannot write in folder /proc \("):
        check_writable(str(link), "-o", SaveError, make_parents=False)
    assert [p.name for p in tmp_path.iterdir()] == ["link.onnx"]


def test_a_device_passes_and_a_new_folder_is_fine(tmp_path: Path) -> None:
    from graphopt.commands._common import check_writable, check_writable_folder

    check_writable("/dev/null", "-o", SaveError, make_parents=False)  # written straight
    check_writable_folder(str(tmp_path / "a" / "b"), "--dump-dir", SaveError)
    check_writable(str(tmp_path / "a" / "b" / "c.plan"), "-o", SaveError, make_parents=True)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(SaveError, match=r"^--dump-dir .*b: .*a does not exist"):
        check_writable(str(tmp_path / "a" / "b"), "--dump-dir", SaveError, make_parents=False)
