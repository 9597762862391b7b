"""`graphopt merge --verify` of a model that does not run on the seeded inputs itself.

--verify feeds seeded values with every dynamic dim 1 (it has no --inputs or --shapes). It
ran the merged model first, and a model that fails on such inputs itself (silero_vad's STFT
pads a 1-sample window reflectively: "Pad reflect requires axis length >= 2") was said as
"onnxruntime failed to run the model: ... If node 'm1_If_0'": the merged model, as if the
merge had broken it. The models are run first now: one that fails is named, with the inputs,
and that they cannot verify the merge; a merged model that fails where every model runs is
said as that. Either way nothing is written (exit 2).
"""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from onnx import parser

from graphopt.cli import main
from graphopt.realmodels import fetch_model


def test_a_real_model_that_fails_on_the_seeded_inputs_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    vad = str(fetch_model("silero_vad"))
    out = tmp_path / "m.onnx"
    assert main(["merge", vad, vad, "-o", str(out), "--verify"]) == 2
    err = capsys.readouterr().err
    assert f"--verify: {vad} does not run on the seeded inputs (input: float32 1×1" in err
    assert "cannot verify the merge" in err
    assert "m1_If_0" not in err  # not the merged model's node
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()


def _save(tmp_path: Path, name: str, body: str) -> str:
    model = parser.parse_model(
        f'<ir_version: 8, opset_import: ["" : 14]>\ng (float[N] x) => (float[2,3] y) {{ {body} }}'
    )
    onnx.checker.check_model(model, full_check=True)
    path = tmp_path / name
    onnx.save(model, path)
    return str(path)


def test_the_model_that_fails_is_the_one_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shape = "s = Constant <value = int64[2] {2, 3}> () \n"
    a = _save(tmp_path, "a.onnx", "y = Constant <value = float[2,3] {1,2,3,4,5,6}> ()")
    b = _save(tmp_path, "b.onnx", shape + "r = Relu(x) \n y = Reshape(r, s)")  # 1 ≠ 6 values
    out = tmp_path / "m.onnx"
    assert main(["merge", a, b, "-o", str(out), "--verify"]) == 2
    err = capsys.readouterr().err
    assert f"--verify: {b} does not run on the seeded inputs (x: float32 1)" in err
    assert not out.exists()
    assert main(["merge", a, a, "-o", str(out), "--verify"]) == 0  # a control: it runs
