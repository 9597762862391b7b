"""H221: Ctrl-C (or SIGTERM) that lands once `quantize` has renamed the model into place, its
last step, before the command marks it saved. The run's error path put back the --cache and
its sidecar as they were before the run, so the folder held the new model with the old
scales and a sidecar describing another model, and the one line said "nothing was written".
Now a model that was replaced keeps the cache and sidecar this run wrote with it, and the
line says the model was saved. An interrupt before the rename still leaves all three as they
were (the control).

Real detector (layout_cdla, PP-PicoDet) calibrated on two real scikit-image photographs; the
signal is raised from inside the save (`graphopt.commands._common.save_output`), where a
timed `kill` cannot be aimed."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import onnx
import pytest

import graphopt.commands._common as common
from graphopt import cli
from graphopt.realmodels import fetch_model, image_paths

pytestmark = pytest.mark.realmodel

OLD = {"q.onnx": b"OLD MODEL", "c.cache": b"OLD CACHE", "c.cache.graphopt.json": b"OLD SIDECAR"}


def _folder(tmp_path: Path) -> tuple[Path, Path]:
    calib = tmp_path / "calib"
    calib.mkdir()
    for image in image_paths()[:2]:
        shutil.copy(image, calib / image.name)
    out = tmp_path / "out"
    out.mkdir()
    for name, data in OLD.items():
        (out / name).write_bytes(data)
    return calib, out


def _run(tmp_path: Path, monkeypatch, signal_raised: type[BaseException], after_save: bool):  # type: ignore[no-untyped-def]
    calib, out = _folder(tmp_path)
    real_save = common.save_output

    def save_then_signal(model, args, **kwargs):  # type: ignore[no-untyped-def]
        if after_save:
            real_save(model, args, **kwargs)
        raise signal_raised

    monkeypatch.setattr(common, "save_output", save_then_signal)
    monkeypatch.chdir(out)
    argv = ["quantize", str(fetch_model("layout_cdla")), "--calib", str(calib)]
    code = cli.main([*argv, "-o", "q.onnx", "--cache", "c.cache", "--no-progress"])
    return code, out


@pytest.mark.slow
@pytest.mark.parametrize(
    ("signal_raised", "code", "word"),
    [(KeyboardInterrupt, 130, "interrupted"), (cli._Terminated, 143, "terminated")],
)
def test_interrupt_after_the_model_is_saved_keeps_its_cache(
    tmp_path, monkeypatch, capsys, signal_raised, code, word
) -> None:  # type: ignore[no-untyped-def]
    got, out = _run(tmp_path, monkeypatch, signal_raised, after_save=True)
    assert got == code
    assert sorted(os.listdir(out)) == sorted(OLD)  # no temporary file left
    model = onnx.load(out / "q.onnx")  # this run's model ...
    assert any(n.op_type == "QuantizeLinear" for n in model.graph.node)
    # ... with this run's cache and sidecar, not the old ones put back beside it
    cache = (out / "c.cache").read_text()
    assert cache.startswith("TRT-") and len(cache.splitlines()) > 10
    sidecar = json.loads((out / "c.cache.graphopt.json").read_text())
    assert isinstance(sidecar, dict) and sidecar
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"graphopt quantize: {word}; it came once q.onnx was saved")


def test_interrupt_before_the_rename_leaves_all_three_as_they_were(
    tmp_path, monkeypatch, capsys
) -> None:  # type: ignore[no-untyped-def]
    got, out = _run(tmp_path, monkeypatch, KeyboardInterrupt, after_save=False)
    assert got == 130
    assert capsys.readouterr().err == "graphopt quantize: interrupted; nothing was written\n"
    assert {name: (out / name).read_bytes() for name in os.listdir(out)} == OLD
