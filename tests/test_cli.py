"""The `graphopt` command line: happy paths and the one-line, exit-code-2 error contract."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import onnx.helper as oh
import onnx.parser
import pytest

from graphopt.cli import main

MODEL = """
<ir_version: 8, opset_import: ["" : 13]>
g (float[1,3,8,8] x) => (float[1,3,8,8] y) {
    dead = Neg(x)
    a = Identity(x)
    y = Relu(a)
}
"""


@pytest.fixture
def model_path(tmp_path):
    p = tmp_path / "in.onnx"
    onnx.save_model(onnx.parser.parse_model(MODEL), str(p))
    return p


def test_optimize_writes_output_and_reports(model_path, tmp_path, capsys):
    out = tmp_path / "out.onnx"
    assert (
        main(["optimize", str(model_path), "-o", str(out), "--verify", "--stats", "--check"]) == 0
    )
    text = capsys.readouterr().out
    assert "verify: y: max abs diff 0" in text
    assert "eliminate-dead-code" in text
    m = onnx.load(str(out))
    assert "Neg" not in [n.op_type for n in m.graph.node]


def _bad_inputs(tmp_path):
    undefined = oh.make_model(
        oh.make_graph(
            [oh.make_node("Relu", ["ghost"], ["y"], name="r")],
            "g",
            [oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
            [oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])],
        ),
        opset_imports=[oh.make_opsetid("", 13)],
    )
    old = onnx.parser.parse_model(MODEL)
    old.opset_import[0].version = 3
    good = onnx.parser.parse_model(MODEL).SerializeToString()
    files = {
        "missing": None,
        "text.onnx": b"this is plainly not a model\n",
        "truncated.onnx": good[: len(good) // 3],
        "undefined.onnx": undefined.SerializeToString(),
        "old_opset.onnx": old.SerializeToString(),
    }
    paths = {}
    for name, data in files.items():
        p = tmp_path / name
        if data is not None:
            p.write_bytes(data)
        paths[name] = p
    return paths


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing", "no such file"),
        ("text.onnx", "not an ONNX model"),
        ("truncated.onnx", "not an ONNX model"),
        ("undefined.onnx", "'ghost'"),
        ("old_opset.onnx", "unsupported opset 3"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_no_output(tmp_path, capsys, case, message):
    path = _bad_inputs(tmp_path)[case]
    out = tmp_path / "result.onnx"
    assert main(["optimize", str(path), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()


def test_unknown_pipeline_exit_2(model_path, tmp_path, capsys):
    out = tmp_path / "o.onnx"
    assert main(["optimize", str(model_path), "-o", str(out), "--pipeline", "nope"]) == 2
    assert "unknown pipeline 'nope'" in capsys.readouterr().err
    assert not out.exists()


def test_bad_pipeline_yaml_names_file_and_line(model_path, tmp_path, capsys):
    yaml_path = tmp_path / "p.yaml"
    yaml_path.write_text("passes:\n  - eliminate-dead-code\n  - fold-everything\n")
    assert (
        main(["optimize", str(model_path), "-o", str(tmp_path / "o.onnx"), "-p", str(yaml_path)])
        == 2
    )
    err = capsys.readouterr().err
    assert f"{yaml_path}:3: unknown pass 'fold-everything'" in err


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["optimize"])
    assert info.value.code == 2
    assert main([]) == 2


def test_python_dash_m_and_help_list_commands():
    done = subprocess.run(
        [sys.executable, "-m", "graphopt", "--help"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0
    assert "optimize" in done.stdout and "inspect" in done.stdout
    done = subprocess.run(
        [sys.executable, "-m", "graphopt", "optimize", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert "--pipeline" in done.stdout and "--verify" in done.stdout
    # `python -m graphopt.cli` runs the same program (it did nothing and exited 0)
    done = subprocess.run(
        [sys.executable, "-m", "graphopt.cli", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0 and "optimize" in done.stdout


def test_verify_counts_a_nan_the_original_does_not_have_as_a_difference():
    from graphopt.backends.onnxruntime import compare

    text = '<ir_version: 8, opset_import: ["" : 13]>\ng (float[3] x) => (float[3] y) {{ {} }}'
    ref = onnx.parser.parse_model(text.format("y = Identity(x)"))
    nan = onnx.parser.parse_model(text.format("z = Sub(x, x)\n y = Div(z, z)"))  # 0/0
    same = onnx.parser.parse_model(text.format("y = Relu(x)"))
    feeds = {"x": np.array([1.0, 2.0, np.nan], np.float32)}
    (d,) = compare(ref, nan, feeds)
    assert d.max_rel > 1e-4 and d.max_abs > 0  # NaN where 1 and 2 were is a difference
    (d,) = compare(ref, ref, feeds)
    assert (d.max_abs, d.max_rel) == (0.0, 0.0)  # NaN in both, in the same place, is not
    feeds = {"x": np.array([1.0, 2.0, 3.0], np.float32)}
    (d,) = compare(ref, same, feeds)
    assert (d.max_abs, d.max_rel) == (0.0, 0.0)


def test_verify_compares_sequence_and_map_outputs(tmp_path, capsys):
    # ZipMap's output is a list of dicts ({label: probability}); --verify once crashed with
    # AttributeError: 'list' object has no attribute 'shape'
    from pathlib import Path

    import onnxruntime

    from graphopt.backends.onnxruntime import _leaves_of
    from graphopt.errors import VerifyError

    iris = Path(onnxruntime.__file__).parent / "datasets" / "logreg_iris.onnx"
    out = tmp_path / "iris.onnx"
    assert main(["optimize", str(iris), "-o", str(out), "--verify"]) == 0
    assert "verify: probabilities: max abs diff 0" in capsys.readouterr().out
    a, b = _leaves_of("p", [{0: 0.25, 1: 0.75}], [{0: 0.5, 1: 0.75}])
    assert a.tolist() == [0.25, 0.75] and b.tolist() == [0.5, 0.75]
    with pytest.raises(VerifyError, match="changed structure"):
        _leaves_of("p", [{0: 0.25, 1: 0.75}], [{0: 0.25, 2: 0.75}])


def test_demo_reports_a_model_failing_the_checker_in_one_line(monkeypatch, tmp_path, capsys):
    import graphopt.api
    import graphopt.realmodels

    path = tmp_path / "in.onnx"
    onnx.save_model(onnx.parser.parse_model(MODEL), str(path))
    broken = onnx.parser.parse_model(MODEL)
    broken.graph.node[1].op_type = "NoSuchOp"  # fails onnx.checker
    report = graphopt.api.optimize_with_report(onnx.parser.parse_model(MODEL))[1]
    monkeypatch.setattr(graphopt.realmodels, "fetch_model", lambda name: path)
    monkeypatch.setattr(graphopt.api, "optimize_with_report", lambda m, p: (broken, report))
    assert main(["demo"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "onnx.checker" in err and "NoSuchOp" in err


def test_dump_dir_that_cannot_be_made_is_one_line(model_path, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    out = tmp_path / "out.onnx"
    assert main(["optimize", str(model_path), "-o", str(out), "--dump-dir", str(blocker)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(blocker) in err
    assert not out.exists()


def test_verify_inputs_that_are_not_an_npz_archive_is_one_line(model_path, tmp_path, capsys):
    npy = tmp_path / "x.npy"
    np.save(npy, np.zeros((1, 3, 8, 8), np.float32))
    out = tmp_path / "out.onnx"
    argv = ["optimize", str(model_path), "-o", str(out), "--verify", "--inputs", str(npy)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "x.npy" in err
    assert not out.exists()


def test_read_npz_refuses_a_npy_with_a_value_error(tmp_path):
    # commands turn OSError/ValueError from read_npz into one-line errors; a TypeError escaped
    from graphopt.commands._common import read_npz

    npy = tmp_path / "x.npy"
    np.save(npy, np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="npz"):
        read_npz(npy)
    npz = tmp_path / "x.npz"
    np.savez(npz, x=np.arange(3))
    assert list(read_npz(npz)) == ["x"]


FIXED_SIZE = """
<ir_version: 8, opset_import: ["" : 13]>
g (float[1,3,H,W] x) => (float[1,48] y) {
    shape = Constant<value = int64[2] {1, 48}>()
    d = Identity(x)
    y = Reshape(d, shape)
}
"""


def test_verify_names_the_original_when_it_rejects_the_seeded_inputs(tmp_path, capsys):
    """A model that runs only at 4×4 (a text recognizer wants height 48): the seeded 224×224
    feeds fail in the original, which the message says, with what to do; `--shapes` fixes it."""
    src, out = tmp_path / "fixed.onnx", tmp_path / "out.onnx"
    onnx.save_model(onnx.parser.parse_model(FIXED_SIZE), str(src))
    assert main(["optimize", str(src), "-o", str(out), "--verify"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert (
        "the original model does not run on the comparison inputs (x: float32 1×3×224×224)" in err
    )
    assert "--shapes NAME:DIMS" in err and not out.exists()
    assert main(["optimize", str(src), "-o", str(out), "--verify", "--shapes", "x:1x3x4x4"]) == 0
    assert "verify: y: max abs diff 0" in capsys.readouterr().out and out.exists()
    assert main(["optimize", str(src), "-o", str(out), "--verify", "--shapes", "z:1x3"]) == 2
    assert "--shapes names z, which are not model inputs" in capsys.readouterr().err


def test_verify_names_the_optimized_model_when_only_it_fails():
    from graphopt.backends.onnxruntime import compare
    from graphopt.errors import VerifyError

    text = '<ir_version: 8, opset_import: ["" : 13]>\ng (float[4] x) => (float[4] y) {{ {} }}'
    ref = onnx.parser.parse_model(text.format("y = Relu(x)"))
    broken = onnx.parser.parse_model(
        text.format("s = Constant<value = int64[2] {3, 3}>()\n y = Reshape(x, s)")
    )
    with pytest.raises(VerifyError, match=r"^the optimized model fails on inputs the original"):
        compare(ref, broken, {"x": np.ones(4, np.float32)})


WRONG_RULE = """
rules:
  - name: wrong-on-purpose
    doc: Relu(x) ⇒ Neg(x), which is not the same function
    target: y = Relu(x)
    replacement: y = Neg(x)
"""


def test_verify_refuses_a_rewrite_that_changes_the_outputs(model_path, tmp_path, capsys):
    """A user rule that is wrong: --verify names the output and the bound, exits 2 and writes
    nothing."""
    (tmp_path / "rules.yaml").write_text(WRONG_RULE)
    pipe = tmp_path / "pipe.yaml"
    pipe.write_text("passes: [fuse-patterns]\nrules: [rules.yaml]\n")
    out = tmp_path / "out.onnx"
    assert main(["optimize", str(model_path), "-o", str(out), "-p", str(pipe), "--verify"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "output 'y' differs by" in err
    assert "nothing was written" in err and not out.exists()


def test_verify_bound_has_an_absolute_floor_for_outputs_near_zero():
    """PP-OCRv3's detector gives a probability map of ~1e-7 on seeded noise: a difference of
    1.5e-7 there is 'relative 1' but no error; the bound is atol + rtol · max|a|."""
    from graphopt.backends.onnxruntime import Difference

    near_zero = Difference("p", max_abs=1.5e-7, max_rel=1.0, scale=1.5e-7)
    assert not near_zero.exceeds(1e-4, 1e-5)
    assert near_zero.exceeds(1e-4, 0.0)
    large = Difference("y", max_abs=0.02, max_rel=0.002, scale=10.0)
    assert large.exceeds(1e-4, 1e-5) and not large.exceeds(1e-2, 1e-5)


def test_verify_integer_outputs_must_be_equal():
    """Indices (NMS boxes, class or token ids) off by 2 out of 25199 are wrong, whatever
    atol + rtol · max|a| allows for floats."""
    from graphopt.backends.onnxruntime import compare

    text = '<ir_version: 8, opset_import: ["" : 13]>\ng (int64[4] x) => (int64[4] y) {{ {} }}'
    ref = onnx.parser.parse_model(text.format("y = Identity(x)"))
    off = onnx.parser.parse_model(
        text.format("two = Constant<value = int64[1] {2}>()\n y = Add(x, two)")
    )
    feeds = {"x": np.array([0, 5, 100, 25199], np.int64)}
    (d,) = compare(ref, off, feeds)
    assert d.exact and d.max_abs == 2 and d.exceeds(1e-4, 1e-5)
    (d,) = compare(ref, ref, feeds)
    assert not d.exceeds(1e-4, 1e-5)


def test_verify_names_an_original_that_onnxruntime_cannot_load(tmp_path):
    from graphopt.backends.onnxruntime import compare
    from graphopt.errors import VerifyError

    text = '<ir_version: 8, opset_import: ["" : 13, "my.ops" : 1]>\ng (float[2] x) => (float[2] y) { y = my.ops.Thing(x) }'
    model = onnx.parser.parse_model(text)
    with pytest.raises(VerifyError, match=r"^the original model does not load in onnxruntime"):
        compare(model, model, {"x": np.ones(2, np.float32)})


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--verify", "--tolerance", "-1"], "--tolerance and --atol must be 0 or more"),
        (["--shapes", "x:1x3x8x8"], "use it with --verify"),
    ],
)
def test_verify_option_misuse_is_one_line(model_path, tmp_path, capsys, extra, message):
    out = tmp_path / "out.onnx"
    assert main(["optimize", str(model_path), "-o", str(out), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and not out.exists()
