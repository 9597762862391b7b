"""graphopt's onnxruntime probes (NCHWc block size, which kernels onnxruntime runs) work next to
an onnx newer than the installed onnxruntime.

onnx.helper.make_model stamps onnx's newest IR version; an older onnxruntime refuses it (seen on
a machine with onnx 1.23, IR 14, and onnxruntime 1.30, which reads up to IR 13: the NCHWc probe
failed and `ort-cpu-native` silently did nothing). Here the installed onnxruntime is made to
refuse every IR version above 10, and each probe must still find what it finds without that.
"""

from __future__ import annotations

from typing import Any

import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper

from graphopt.passes import ort_nchwc
from graphopt.patterns import checks

OLDEST_IR_READ = 10


def _clear() -> None:
    for cached in (ort_nchwc.measured_block_size, checks._ort_runs, checks._ort_probe):
        cached.cache_clear()


def _probe() -> tuple[tuple[int, str], bool, bool]:
    _clear()
    return (
        ort_nchwc.measured_block_size(),
        checks._ort_runs("HardSwish", 14, TensorProto.FLOAT),
        checks._ort_probe("FusedConv:Relu"),
    )


def _refuse_new_ir(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make onnxruntime.InferenceSession refuse models above IR OLDEST_IR_READ, as an older
    onnxruntime does."""
    real = onnxruntime.InferenceSession

    def session(source: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(source, bytes):
            model = onnx.load_model_from_string(source)
        else:
            model = onnx.load(str(source), load_external_data=False)
        if model.ir_version > OLDEST_IR_READ:
            raise RuntimeError(
                f"Unsupported model IR version: {model.ir_version}, "
                f"max supported IR version: {OLDEST_IR_READ}"
            )
        return real(source, *args, **kwargs)

    monkeypatch.setattr(onnxruntime, "InferenceSession", session)


def test_the_stand_in_refuses_what_onnx_writes_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    _refuse_new_ir(monkeypatch)
    graph = helper.make_graph([], "g", [], [])
    with pytest.raises(RuntimeError, match="Unsupported model IR version"):
        onnxruntime.InferenceSession(helper.make_model(graph).SerializeToString())


def test_probes_find_the_same_in_an_onnxruntime_older_than_onnx(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    found = _probe()
    assert found[1] and found[2]  # the installed onnxruntime runs HardSwish and FusedConv
    try:
        with monkeypatch.context() as m:
            _refuse_new_ir(m)
            assert _probe() == found
    finally:
        _clear()


def test_graphopt_names_the_ir_version_of_every_model_it_builds() -> None:
    """Every onnx.helper.make_model call in graphopt passes ir_version: the default is onnx's
    newest IR, which an older onnxruntime refuses (the tests' conftest caps only the tests'
    own models, so it must not be what keeps a library model loadable)."""
    import ast
    from pathlib import Path

    import graphopt

    calls = []
    for path in Path(graphopt.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "attr", getattr(node.func, "id", ""))
            if name == "make_model":
                calls.append((path.name, node.lineno, {k.arg for k in node.keywords}))
    assert len(calls) >= 4, calls  # the probes, constant folding's evaluator, multitask merge
    missing = [(f, line) for f, line, keywords in calls if "ir_version" not in keywords]
    assert missing == []
