"""`graphopt bench` and `graphopt check` keep a model's strings with a newline on one line (H227).

bench said onnxruntime's load error by its first line, which a newline inside a node's name cut
short ("... in node (a"), and joined a run error's lines with spaces, so a node 're\\nshape' read
're shape', a name the model does not have. check printed dim params and domains as the model
has them: a dim param 'ba\\ntch' or a domain 'cu\\nstom' (valid ONNX strings) split a finding's
line in two. Now they are escaped as `repr` (and `shown`) writes them; plain ones print as
before (the controls).
"""

from __future__ import annotations

import onnx
import onnx.helper as oh
from onnx import TensorProto

from graphopt import cli

F32 = TensorProto.FLOAT


def _save(model: onnx.ModelProto, path) -> str:  # type: ignore[no-untyped-def]
    onnx.save(model, path)
    return str(path)


def _load_error_model(name: str) -> onnx.ModelProto:
    x = oh.make_tensor_value_info("x", F32, [2, 3])
    y = oh.make_tensor_value_info("y", F32, None)
    k = oh.make_tensor("k", TensorProto.INT64, [1], [1])
    nodes = [
        oh.make_node("Relu", ["x"], ["t"], name="r"),
        oh.make_node("Add", ["t", "k"], ["y"], name=name),
    ]
    graph = oh.make_graph(nodes, "g", [x], [y], [k])
    return oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)])


def _run_error_model(name: str) -> onnx.ModelProto:
    x = oh.make_tensor_value_info("x", F32, [2, 3])
    y = oh.make_tensor_value_info("y", F32, None)
    s = oh.make_tensor("s", TensorProto.INT64, [2], [2, 2])
    graph = oh.make_graph(
        [oh.make_node("Reshape", ["x", "s"], ["y"], name=name)], "g", [x], [y], [s]
    )
    return oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)])


def _bench_error(path: str, capsys) -> str:  # type: ignore[no-untyped-def]
    assert cli.main(["bench", path, "--runs", "1", "--warmup", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    return err


def test_bench_load_error_keeps_a_node_name_with_a_newline(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    err = _bench_error(_save(_load_error_model("a\ndd"), tmp_path / "m.onnx"), capsys)
    assert err.startswith("graphopt bench: error: onnxruntime cannot load the model: ")
    assert err.rstrip("\n").endswith("in node (a\\ndd).")


def test_bench_load_error_plain_name_as_before(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    err = _bench_error(_save(_load_error_model("add"), tmp_path / "m.onnx"), capsys)
    assert err.rstrip("\n").endswith("in node (add).")


def test_bench_run_error_escapes_a_node_name_with_a_newline(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    err = _bench_error(_save(_run_error_model("re\nshape"), tmp_path / "m.onnx"), capsys)
    assert "running Reshape node. Name:'re\\nshape' Status Message:" in err


def _check_model(dim: str, domain: str) -> onnx.ModelProto:
    x = oh.make_tensor_value_info("x", F32, [dim, 3])
    y = oh.make_tensor_value_info("y", F32, None)
    nodes = [
        oh.make_node("MyOp", ["x"], ["t"], name="n1", domain=domain),
        oh.make_node("Relu", ["t"], ["y"], name="n2"),
    ]
    graph = oh.make_graph(nodes, "g", [x], [y])
    opsets = [oh.make_opsetid("", 17), oh.make_opsetid(domain, 1)]
    return oh.make_model(graph, opset_imports=opsets)


def test_check_escapes_dim_params_and_domains(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    path = _save(_check_model("ba\ntch", "cu\nstom"), tmp_path / "m.onnx")
    assert cli.main(["check", path]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith(
        "warning: [dynamic-shape] input 'x' has dynamic dimensions [ba\\ntch, 3];"
    )
    assert lines[1].startswith(
        "error: [custom-domain] node 'n1' (cu\\nstom::MyOp): op cu\\nstom::MyOp"
    )
    assert lines[2].endswith(": 1 error, 1 warning")


def test_check_plain_strings_as_before(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    path = _save(_check_model("batch", "custom"), tmp_path / "m.onnx")
    assert cli.main(["check", path]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(
        "warning: [dynamic-shape] input 'x' has dynamic dimensions [batch, 3];"
    )
    assert lines[1].startswith("error: [custom-domain] node 'n1' (custom::MyOp): op custom::MyOp")
