"""Pipeline review 11: YAML pipelines, the pass manager's instruments, optimize()'s options and
optimize --verify/--stats/--dump-dir cases that were wrong. Each test failed before its fix."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.numpy_helper
import onnx.parser
import pytest

from graphopt.errors import PipelineError
from graphopt.pipeline import load_pipeline


def _model(text: str) -> onnx.ModelProto:
    return onnx.parser.parse_model(text)


def test_an_include_cycle_through_another_spelling_of_the_path_is_refused(tmp_path):
    """a.yaml includes sub/b.yaml, which includes ../a.yaml: the cycle came back as
    sub/../a.yaml, a longer path each turn, never equal to one being parsed (RecursionError)."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.yaml").write_text("passes:\n  - include: sub/b.yaml\n")
    (tmp_path / "sub" / "b.yaml").write_text(
        "passes:\n  - eliminate-dead-code\n  - include: ../a.yaml\n"
    )
    with pytest.raises(PipelineError, match=r"b\.yaml:3: include cycle through"):
        load_pipeline(tmp_path / "a.yaml")
    (tmp_path / "c.yaml").write_text("passes:\n  - include: ./c.yaml\n")
    with pytest.raises(PipelineError, match=r"c\.yaml:2: include cycle through"):
        load_pipeline(tmp_path / "c.yaml")


def test_an_option_given_twice_is_refused_not_the_last_one_kept(tmp_path):
    """`size_limit:` twice under one pass: YAML keeps the last without a word, and the
    pipeline ran with size_limit 2 (top-level and repeat keys were already checked)."""
    p = tmp_path / "dup.yaml"
    p.write_text("passes:\n  - constant-folding:\n      size_limit: 1\n      size_limit: 2\n")
    with pytest.raises(PipelineError, match=r"dup\.yaml:4: duplicate key 'size_limit'"):
        load_pipeline(p)
    p.write_text("passes:\n  - constant-folding: {size_limit: 1, fold_shapes: false}\n")
    (step,) = load_pipeline(p).steps
    assert (step.pass_.size_limit, step.pass_.fold_shapes) == (1, False)  # type: ignore[union-attr]


def _cast_model(elem: str, to: int, add: int = 0) -> onnx.ModelProto:
    """y = Cast(x + add, to) for an int64 x of 2 elements."""
    return _model(
        f"""<ir_version: 8, opset_import: ["" : 17]>
g (int64[2] x) => ({elem}[2] y) {{
    k = Constant <value = int64[1] {{{add}}}> ()
    s = Add(x, k)
    y = Cast <to = {to}> (s)
}}"""
    )


def test_verify_compares_large_integers_exactly():
    """int64 outputs 2**53 and 2**53 + 1 are one float64: --verify's comparison read them as
    equal (max abs diff 0), though integer outputs must be equal."""
    from graphopt.backends.onnxruntime import compare

    big = np.array([2**53, -(2**60)], dtype=np.int64)
    (d,) = compare(_cast_model("int64", 7), _cast_model("int64", 7, add=1), {"x": big})
    assert d.exact and d.max_abs >= 1 and d.exceeds(1e-4, 1e-5)
    (same,) = compare(_cast_model("int64", 7), _cast_model("int64", 7), {"x": big})
    assert same.max_abs == 0 and not same.exceeds(1e-4, 1e-5)


def test_verify_refuses_an_output_whose_element_type_changed():
    """The same values as float32 and as float64 compared equal: a model whose output's
    dtype changed passed --verify."""
    from graphopt.backends.onnxruntime import compare
    from graphopt.errors import VerifyError

    feeds = {"x": np.array([1, 2], dtype=np.int64)}
    with pytest.raises(VerifyError, match=r"output 'y' changed element type: float32 -> float64"):
        compare(_cast_model("float", 1), _cast_model("double", 11), feeds)


def test_stats_count_the_constants_converted_while_indexing_as_removed():
    """optimize converts Constant nodes while indexing when the pipeline starts with
    constants-to-initializers, so that pass's record said 0 nodes removed (converted=2): the
    --stats column summed to 2 for a '6 -> 2 nodes' run."""
    import graphopt

    model = _model(
        """<ir_version: 8, opset_import: ["" : 17]>
g (float[2] x) => (float[2] y) {
    c = Constant <value = float[2] {1.0, 2.0}> ()
    d = Constant <value = float[2] {0.0, 0.0}> ()
    e = Add(c, d)
    a = Identity(x)
    b = Add(a, e)
    y = Relu(b)
}"""
    )
    out, report = graphopt.optimize_with_report(model, "default")
    totals = report.totals()
    assert totals["constants-to-initializers"]["nodes_removed"] == 2
    removed = sum(t["nodes_removed"] for t in totals.values())
    assert removed == len(model.graph.node) - len(out.graph.node) == 4


_TWO_CHANGES = """<ir_version: 8, opset_import: ["" : 17]>
g (float[2] x) => (float[2] y) {
    dead = Neg(x)
    a = Identity(x)
    y = Relu(a)
}"""


def test_dump_dir_writes_a_pass_named_with_a_slash_inside_the_folder(tmp_path):
    """A pass named 'vendor/noops' (a pipeline built in code takes any Pass) dumped to
    '<dir>/01-vendor/noops.onnx', a folder that does not exist: the run failed."""
    from dataclasses import dataclass

    import graphopt
    from graphopt.passes.noop import EliminateNoops
    from graphopt.pipeline import make_pipeline

    @dataclass
    class VendorNoops(EliminateNoops):
        name = "vendor/../noops"

    dump = tmp_path / "dump"
    graphopt.optimize(_model(_TWO_CHANGES), make_pipeline("p", [VendorNoops()]), dump_dir=dump)
    assert [p.name for p in dump.iterdir()] == ["01-vendor_.._noops.onnx"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dump"]


def test_dump_dir_refuses_a_folder_holding_an_earlier_runs_dumps(tmp_path):
    """A second run into the same folder overwrote 01-... and left the first run's later dumps
    beside its own, as if this run had made them."""
    import graphopt
    from graphopt.errors import SaveError
    from graphopt.pipeline import make_pipeline

    dump = tmp_path / "dump"
    pipeline = make_pipeline("p", ["eliminate-dead-code", "eliminate-noops"])
    graphopt.optimize(_model(_TWO_CHANGES), pipeline, dump_dir=dump)
    first = sorted(p.name for p in dump.iterdir())
    assert first == ["01-eliminate-dead-code.onnx", "02-eliminate-noops.onnx"]
    with pytest.raises(SaveError, match=r"dump: holds the dumps of an earlier run"):
        graphopt.optimize(_model(_TWO_CHANGES), "simplify", dump_dir=dump)
    assert sorted(p.name for p in dump.iterdir()) == first
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")  # other files are no dumps
    graphopt.optimize(_model(_TWO_CHANGES), pipeline, dump_dir=tmp_path / "other")
    assert len(list((tmp_path / "other").iterdir())) == 3


def test_dump_dir_of_an_empty_path_is_refused_not_the_current_folder(tmp_path, monkeypatch):
    """dump_dir='' (--dump-dir '') is Path(''), the current folder: the dumps landed there."""
    import graphopt
    from graphopt.errors import SaveError

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SaveError, match="dump folder is an empty path"):
        graphopt.optimize(_model(_TWO_CHANGES), "default", dump_dir="")
    assert list(tmp_path.iterdir()) == []


def test_rule_files_given_to_optimize_are_not_grown_and_may_be_one_path(tmp_path):
    """optimize(rule_files=mine) with a pipeline that has `rules:` extended the caller's list
    with the pipeline's files at every call (the second call then refused its rule as
    defined twice), and rule_files='r.yaml' was read as the files 'r', '.', ... ('/: cannot
    read rule file')."""
    import graphopt
    from tests.test_patterns_engine import QUICKGELU_RULE

    (tmp_path / "r1.yaml").write_text(QUICKGELU_RULE)
    (tmp_path / "r2.yaml").write_text(QUICKGELU_RULE.replace("my-silu", "my-silu2"))
    (tmp_path / "p.yaml").write_text(
        "passes:\n  - fuse-patterns: {rules: [my-silu]}\nrules: [r1.yaml]\n"
    )
    (tmp_path / "p2.yaml").write_text("passes:\n  - fuse-patterns: {rules: [my-silu2]}\n")
    silu = """<ir_version: 8, opset_import: ["" : 13]>
g (float[2,8] x) => (float[2,8] y) {
    s = Sigmoid(x)
    y = Mul(x, s)
}"""
    mine = [str(tmp_path / "r2.yaml")]
    for _ in range(2):
        out = graphopt.optimize(_model(silu), str(tmp_path / "p.yaml"), rule_files=mine)
        assert [n.op_type for n in out.graph.node] == ["QuickGelu"]
    assert mine == [str(tmp_path / "r2.yaml")]
    for one in (str(tmp_path / "r2.yaml"), tmp_path / "r2.yaml"):
        out = graphopt.optimize(_model(silu), str(tmp_path / "p2.yaml"), rule_files=one)
        assert [n.op_type for n in out.graph.node] == ["QuickGelu"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"verify_each": "no"}, "verify_each must be True or False, got 'no'"),
        ({"subgraphs": "false"}, "subgraphs must be True or False, got 'false'"),
        ({"rule_kernels": None}, "rule_kernels must be True or False, got None"),
    ],
)
def test_a_flag_option_that_is_no_bool_is_refused_not_read_as_true(options, message):
    """verify_each='no' ran the checker after every pass and subgraphs='false' optimized
    the If/Loop/Scan bodies: any non-empty string is true."""
    import graphopt

    with pytest.raises(PipelineError, match=message):
        graphopt.optimize(_model(_TWO_CHANGES), "default", **options)


def test_disable_none_disables_nothing():
    """disable=None (as opt_level=None and dump_dir=None mean 'not given') was a TypeError
    traceback: 'NoneType' object is not iterable."""
    import graphopt

    out = graphopt.optimize(_model(_TWO_CHANGES), "default", disable=None, subgraphs=np.True_)
    assert [n.op_type for n in out.graph.node] == ["Relu"]


def test_verify_of_a_model_with_no_outputs_says_so(tmp_path, capsys):
    """A model with no graph outputs (onnx.checker accepts it) failed --verify with 'the
    original model does not run on the comparison inputs ... give inputs it accepts': no
    input could have helped."""
    from onnx import TensorProto, helper

    from graphopt.cli import main

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.save(model, tmp_path / "m.onnx")
    out = tmp_path / "o.onnx"
    assert main(["optimize", str(tmp_path / "m.onnx"), "-o", str(out), "--verify"]) == 2
    err = capsys.readouterr().err
    # refused at load since f9324e4 (optimizing it made an empty graph onnxruntime refuses)
    assert "the graph declares no outputs, so it computes nothing" in err
    assert len(err.strip().splitlines()) == 1
    assert "give inputs" not in err and not out.exists()


@pytest.mark.parametrize("name", ["vendor/noops", "fold_bn", "a:b", "-x", "x-", "x--y", "x\n"])
def test_register_pass_takes_kebab_case_names_only(name):
    """register_pass checked only lower case and no space: 'vendor/noops' (a folder in a dump
    file's name), 'fold_bn' or 'a:b' were registered."""
    from dataclasses import dataclass

    from graphopt.passes.base import PASS_REGISTRY, Pass, register_pass

    @dataclass
    class Odd(Pass):
        pass

    Odd.name = name
    with pytest.raises(ValueError, match="kebab-case"):
        register_pass(Odd)
    assert name not in PASS_REGISTRY


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("passes:\n  - constant-folding: {size_limit: !!python/object:os.system x}\n", 2),
        ("opt_level: !foo 3\npasses: [eliminate-dead-code]\n", 1),
        ("opt_level: !!int abc\npasses: [eliminate-dead-code]\n", 1),
        ("passes:\n  - repeat: {passes: [eliminate-dead-code], max_iterations: !!int x}\n", 2),
        ("passes:\n  - constant-folding: {size_limit: !!timestamp 2001-99-99}\n", 2),
        ("passes:\n  - include: !!binary zz\n", 2),
    ],
)
def test_a_yaml_tag_that_cannot_be_read_is_one_pipeline_error(tmp_path, text, line):
    """A tag safe_load has no constructor for, or a value its tag refuses, escaped as a
    yaml ConstructorError or a ValueError traceback (the YAML itself composes)."""
    p = tmp_path / "tags.yaml"
    p.write_text(text)
    with pytest.raises(PipelineError, match=rf"tags\.yaml:{line}: invalid value "):
        load_pipeline(p)


def _fp16_conv_bn() -> onnx.ModelProto:
    from onnx import TensorProto, helper
    from onnx import numpy_helper as nh

    rng = np.random.default_rng(0)
    c = 16
    f16 = np.float16
    weights = {
        "W": rng.standard_normal((c, c, 3, 3)).astype(f16),
        "g": (rng.random(c) * 2 + 0.5).astype(f16),
        "b": rng.standard_normal(c).astype(f16),
        "m": rng.standard_normal(c).astype(f16),
        "v": (rng.random(c) + 0.5).astype(f16),
    }
    nodes = [
        helper.make_node("Conv", ["x", "W"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", "g", "b", "m", "v"], ["y"]),
    ]
    shape = [1, c, 32, 32]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT16, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT16, shape)],
        [nh.from_array(v, k) for k, v in weights.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_verify_passes_a_float16_model_within_its_own_rounding(tmp_path, capsys):
    """A float16 Conv + BatchNormalization folded into float16 weights differs by a rounding
    (4.8e-4 x its largest value, below float16's half-epsilon) that the float32 default bound
    1e-4 refused: --verify failed a correct optimization. A --tolerance given is kept as is."""
    from graphopt.cli import main

    onnx.save(_fp16_conv_bn(), tmp_path / "m.onnx")
    out = tmp_path / "o.onnx"
    args = ["optimize", str(tmp_path / "m.onnx"), "-o", str(out), "--verify"]
    assert main(args) == 0, capsys.readouterr().err
    assert [n.op_type for n in onnx.load(out).graph.node] == ["Conv"]
    out.unlink()
    assert main([*args, "--tolerance", "1e-4"]) == 2
    assert "--tolerance 0.0001 ×" in capsys.readouterr().err and not out.exists()


def test_pipelines_are_read_as_utf8_whatever_the_locale(tmp_path):
    """YAML is UTF-8; pipeline files were read in the locale's encoding, so under an ASCII
    locale (LC_ALL=C without UTF-8 coercion) the built-in pipelines, whose comments hold
    '→', failed with a UnicodeDecodeError traceback, and a user's file with a non-ASCII
    comment could not be read."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    import graphopt

    (tmp_path / "mine.yaml").write_text(
        "passes:\n  - eliminate-dead-code   # Identity → nothing\n", encoding="utf-8"
    )
    code = (
        "import locale, sys; from graphopt.pipeline import load_pipeline; "
        "assert locale.getpreferredencoding(False) != 'UTF-8'; "
        "print(load_pipeline('default').name, load_pipeline(sys.argv[1]).pass_names())"
    )
    env = {
        **os.environ,
        "LC_ALL": "C",
        "PYTHONUTF8": "0",
        "PYTHONCOERCECLOCALE": "0",
        "PYTHONPATH": str(Path(graphopt.__file__).parents[1]),
    }
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "mine.yaml")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-500:]
    assert done.stdout.split() == ["default", "['eliminate-dead-code']"]


def test_a_control_character_in_a_pipeline_names_its_line(tmp_path):
    """YAML refuses control characters with a ReaderError, which has no mark: the error named
    the file but no line."""
    p = tmp_path / "ctl.yaml"
    p.write_text("passes:\n  - eliminate-dead-code\n  - eliminate-noops\x07\n")
    with pytest.raises(PipelineError, match=r"ctl\.yaml:3: invalid YAML: unacceptable character"):
        load_pipeline(p)


def test_a_rule_file_named_twice_through_includes_is_loaded_once(tmp_path):
    """A pipeline including one with `rules: [r1.yaml]` twice (to run its steps twice), or
    naming r1.yaml itself too, or optimize(rule_files=[r1.yaml]) with it, loaded r1.yaml twice
    and refused: "rule 'my-silu' is already defined at r1.yaml:3"."""
    import graphopt
    from tests.test_patterns_engine import QUICKGELU_RULE

    (tmp_path / "r1.yaml").write_text(QUICKGELU_RULE)
    b = tmp_path / "b.yaml"
    b.write_text("passes:\n  - fuse-patterns: {rules: [my-silu]}\nrules: [r1.yaml]\n")
    twice = tmp_path / "twice.yaml"
    twice.write_text("passes:\n  - include: b.yaml\n  - eliminate-dead-code\n  - include: b.yaml\n")
    also = tmp_path / "also.yaml"
    also.write_text("passes:\n  - include: b.yaml\nrules: [./r1.yaml]\n")
    silu = """<ir_version: 8, opset_import: ["" : 13]>
g (float[2,8] x) => (float[2,8] y) {
    s = Sigmoid(x)
    y = Mul(x, s)
}"""
    runs = [(twice, {}), (also, {}), (b, {"rule_files": [tmp_path / "r1.yaml"]})]
    for pipeline, options in runs:
        out = graphopt.optimize(_model(silu), str(pipeline), **options)
        assert [n.op_type for n in out.graph.node] == ["QuickGelu"]


def test_verify_inputs_npz_names_an_extra_array_and_a_wrong_dtype(tmp_path, capsys):
    """An extra array or one of another dtype in --inputs reached onnxruntime, whose dtype
    message names no input ('Unexpected input data type. Actual: (tensor(double)), expected:
    (tensor(float))'); it was blamed on the original model not running."""
    from graphopt.cli import main

    model = _model(
        """<ir_version: 8, opset_import: ["" : 17]>
g (float[2] x, float[2] k) => (float[2] y) {
    y = Add(x, k)
}"""
    )
    model.graph.initializer.append(onnx.numpy_helper.from_array(np.ones(2, np.float32), "k"))
    onnx.save(model, tmp_path / "m.onnx")
    out = tmp_path / "o.onnx"
    one = np.ones(2, np.float32)
    cases = [
        ({"x": one, "z": one}, "extra.npz: z is no input of the model (inputs: x, k)"),
        ({"x": one, "k": one.astype(np.float64)}, "wrong.npz: k is float64, but the model's"),
    ]
    for (feeds, message), name in zip(cases, ("extra", "wrong"), strict=True):
        np.savez(tmp_path / f"{name}.npz", **feeds)
        args = ["optimize", str(tmp_path / "m.onnx"), "-o", str(out), "--verify"]
        assert main([*args, "--inputs", str(tmp_path / f"{name}.npz")]) == 2
        assert message in capsys.readouterr().err and not out.exists()
    np.savez(tmp_path / "fine.npz", x=one, k=one * 3)  # an overridable weight may be fed
    assert main([*args, "--inputs", str(tmp_path / "fine.npz")]) == 0


def test_verify_shapes_refuses_a_min_opt_max_range(tmp_path, capsys):
    """--shapes x:1x3,2x3,4x3 (the build/bench form) verified on the opt shape 2x3 only and
    said nothing of the other two; --input-shape already refused a range."""
    from graphopt.cli import main

    model = _model(
        """<ir_version: 8, opset_import: ["" : 17]>
g (float[N, 3] x) => (float[N, 3] y) {
    y = Relu(x)
}"""
    )
    onnx.save(model, tmp_path / "m.onnx")
    out = tmp_path / "o.onnx"
    args = ["optimize", str(tmp_path / "m.onnx"), "-o", str(out), "--verify", "--shapes"]
    assert main([*args, "x:1x3,2x3,4x3"]) == 2
    assert "--shapes takes one shape per input for --verify" in capsys.readouterr().err
    assert not out.exists()
    assert main([*args, "x:4x3"]) == 0 and out.exists()


def _fails_the_checker_already() -> onnx.ModelProto:
    """An Add reading a sparse initializer (onnx.checker's full check refuses its type; the
    model is otherwise fine), and an Identity for eliminate-noops to remove."""
    from onnx import helper
    from onnx import numpy_helper as nh

    model = _model(
        """<ir_version: 8, opset_import: ["" : 17]>
g (float[4] x) => (float[4] y) {
    a = Identity(x)
    b = Add(a, s)
    y = Relu(b)
}"""
    )
    values = nh.from_array(np.array([5.0], np.float32), "s")
    indices = nh.from_array(np.array([1], np.int64), "s_i")
    model.graph.sparse_initializer.append(helper.make_sparse_tensor(values, indices, [4]))
    return model


def test_verify_each_blames_no_pass_for_an_error_the_input_had():
    """The input model failed onnx.checker already; --verify-each said 'after pass
    constants-to-initializers: the model no longer passes onnx.checker' for the first pass
    that changed anything. A pass that makes another error is still named."""
    from dataclasses import dataclass

    import graphopt
    from graphopt.errors import VerifyError
    from graphopt.passes.base import Pass, PassResult
    from graphopt.pipeline import make_pipeline

    model = _fails_the_checker_already()
    out = graphopt.optimize(model, "default", verify_each=True)
    assert [n.op_type for n in out.graph.node] == ["Add", "Relu"]

    @dataclass
    class RenameRelu(Pass):
        name = "test-rename-relu"

        def run(self, graph, ctx):  # type: ignore[no-untyped-def]
            next(n for n in graph if n.op_type == "Relu").op_type = "NotAnOnnxOp"
            return PassResult(True)

    pipeline = make_pipeline("p", ["eliminate-noops", RenameRelu()])
    with pytest.raises(VerifyError, match=r"after pass test-rename-relu: .* a new error: .*NotAn"):
        graphopt.optimize(model, pipeline, verify_each=True)


def test_rule_files_and_caches_are_read_as_utf8_whatever_the_locale(tmp_path):
    """The rule files (YAML, with '⇒' and '·' in their docs), calibration caches and distill
    manifests (written as UTF-8) were read in the locale's encoding: under an ASCII locale
    every optimize failed on the built-in rules ('cannot read rule file: ... codec can't
    decode'), and a cache naming a non-ASCII tensor could not be read back."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    import graphopt

    cache = tmp_path / "model.cache"
    cache.write_bytes("TRT-8601-EntropyCalibration2\nentrée: 3caa54fc\n".encode())
    code = (
        "import locale, sys, onnx.parser; import graphopt; "
        "from graphopt.quant import cache; "
        "assert locale.getpreferredencoding(False) != 'UTF-8'; "
        'm = onnx.parser.parse_model(\'<ir_version: 8, opset_import: ["" : 13]> '
        "g (float[1,2] x) => (float[1,2] y) { y = Relu(x) }'); "
        "print(len(graphopt.optimize(m).graph.node), sorted(cache.read(sys.argv[1])[1]))"
    )
    env = {
        **os.environ,
        "LC_ALL": "C",
        "PYTHONUTF8": "0",
        "PYTHONCOERCECLOCALE": "0",
        "PYTHONIOENCODING": "utf-8",
        "PYTHONPATH": str(Path(graphopt.__file__).parents[1]),
    }
    done = subprocess.run(
        [sys.executable, "-c", code, str(cache)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-500:]
    assert done.stdout.split() == ["1", "['entrée']"]


@pytest.mark.parametrize(
    ("step", "why"),
    [
        ("fuse-activations: {max_sweeps: 0}", "max_sweeps must be at least 1, got 0"),
        ("fold-batchnorm: {max_sweeps: -2}", "max_sweeps must be at least 1, got -2"),
        ("materialize-fusion-groups: {max_group_size: 0}", "max_group_size must be at least 1"),
    ],
)
def test_pass_options_that_would_do_nothing_are_refused_with_their_line(tmp_path, step, why):
    """max_sweeps: 0 ran no sweep (the pass did nothing, without a word); max_group_size: 0
    failed only when the pass ran. Both are refused where the pipeline is read, naming the
    file and the line."""
    from graphopt.pipeline import load_pipeline

    p = tmp_path / "p.yaml"
    p.write_text(f"passes:\n  - eliminate-dead-code\n  - {step}\n")
    with pytest.raises(PipelineError, match=rf"p\.yaml:3: .*{why}"):
        load_pipeline(str(p))


@pytest.mark.parametrize(
    ("step", "why"),
    [
        ("!foo constant-folding", "invalid value !foo"),
        ("!!python/object:os.system x", "invalid value tag:yaml.org,2002:python/object"),
    ],
)
def test_a_tag_on_a_pass_name_is_refused_with_its_line(tmp_path, step, why):
    """9ba14c3 refused tags in option values; one on a bare pass name was ignored (`- !foo
    constant-folding` ran constant-folding; `- !!python/object:os.system x` read a pass x)."""
    from graphopt.pipeline import load_pipeline

    p = tmp_path / "t.yaml"
    p.write_text(f"passes:\n  - eliminate-dead-code\n  - {step}\n")
    with pytest.raises(PipelineError, match=rf"t\.yaml:3: {why}"):
        load_pipeline(str(p))
    p.write_text("passes:\n  - !!str constant-folding\n")  # the standard str tag is a name
    assert load_pipeline(str(p)).pass_names() == ["constant-folding"]
