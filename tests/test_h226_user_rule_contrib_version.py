"""A user rule's com.microsoft op under a model's com.microsoft import of another version than 1
(H226). `_import_domain` keeps a model's import as it is (and imports an absent domain at 1);
the built-in rules check contrib_import(), a user rule did not: a model importing com.microsoft
at 0, which onnxruntime loads while no node uses the domain, came back with a QuickGelu under
that import, which onnxruntime refuses ("com.microsoft:QuickGelu(-1) is not a registered
function/op"). Now the engine refuses such a replacement for every rule, saying why."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from graphopt.errors import BackendError
from graphopt.passes.fuse_patterns import FusePatterns
from tests.fusion_models import build, explained, ops, run_at, run_passes

RULE = """
rules:
  - name: my-quickgelu
    group: mine
    doc: x·σ(x)  ⇒  com.microsoft.QuickGelu(x)
    target: y = Mul(x, Sigmoid(x))
    replacement: y = com.microsoft.QuickGelu(x, alpha=1.0)
"""
X = {"x": np.linspace(-4, 4, 8, dtype=np.float32)}


def _silu(contrib_version: int | None) -> onnx.ModelProto:
    extra = "" if contrib_version is None else f', "com.microsoft" : {contrib_version}'
    return build(
        f'<ir_version: 8, opset_import: ["" : 14{extra}]>\n'
        "g (float[8] x) => (float[8] y) { s = Sigmoid(x)\n y = Mul(x, s) }"
    )


def _fuse(tmp_path, model: onnx.ModelProto):  # type: ignore[no-untyped-def]
    path = tmp_path / "mine.yaml"
    path.write_text(RULE)
    return run_passes(model, [FusePatterns(groups=["mine"])], rule_files=str(path))


def _imports(model: onnx.ModelProto) -> dict[str, int]:
    return {o.domain: o.version for o in model.opset_import}


@pytest.mark.parametrize("version", [0, 2])
def test_a_contrib_op_is_not_put_under_another_version(tmp_path, version):
    model = _silu(version)
    out, report = _fuse(tmp_path, model)
    assert ops(out) == ["Sigmoid", "Mul"]
    assert _imports(out) == {"": 14, "com.microsoft": version}
    (reason,) = set(explained(report, "my-quickgelu", "refused"))
    assert f"imports com.microsoft at version {version}" in reason
    if version == 0:  # onnxruntime loads it (no node of the domain), and still does
        want = run_at(model, X, "disable")["y"]
        np.testing.assert_array_equal(run_at(out, X, "disable")["y"], want)
    else:  # onnxruntime knows no com.microsoft 2: neither loads, as before
        with pytest.raises(BackendError):
            run_at(out, X, "disable")


@pytest.mark.parametrize("version", [None, 1])
def test_a_contrib_op_under_version_one_or_none_is_emitted(tmp_path, version):
    model = _silu(version)
    out, _ = _fuse(tmp_path, model)
    assert ops(out) == ["com.microsoft.QuickGelu"]
    assert _imports(out) == {"": 14, "com.microsoft": 1}
    want = run_at(model, X, "disable")["y"]
    np.testing.assert_allclose(run_at(out, X, "disable")["y"], want, rtol=1e-5, atol=1e-6)
