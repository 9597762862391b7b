"""A TensorRT calibration cache line whose tensor name has spaces around it is refused.

Found by H176's review of feed reading (H178 confirmed it): `quant.cache` read the indented
line '  x: 3cc85ef7' as tensor '  x', so `quantize --cache-in` then said the cache had "no
scale for 1 tensor(s) the model quantizes, e.g. 'x'" while the line was there. TensorRT's own
parser is closed source; the open readers of these caches (onnxruntime's TensorRT provider,
`ReadDynamicRange`; TensorRT's samples, `readPerTensorDynamicRangeValues`) take everything
before the ':' as the name, spaces kept, so no reader matches it to tensor x; graphopt refuses
such a name when writing. Now quantize --cache-in refuses it, naming the line, where the
model lacks the spaced name (H181: a model may have a tensor 'x ', which TensorRT writes so)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from graphopt.cli import main
from graphopt.quant import cache
from tests.test_input_fuzz12 import seed_conv
from tests.test_input_fuzz13 import _save


@pytest.mark.parametrize("line", ["  x: 3cc85ef7", "\tx: 3cc85ef7", "x : 3cc85ef7"])
def test_a_name_with_spaces_around_it_is_refused_naming_the_line(tmp_path: Path, line: str) -> None:
    """(H181: said where the model lacks the spaced tensor but has 'x', `cache.spaced_name`;
    reading keeps the name as written, as TensorRT writes a tensor 'x ')"""
    path = tmp_path / "c.cache"
    path.write_text(f"TRT-8601-EntropyCalibration2\ny: 3c010a14\n{line}\n")
    shown = repr(line.rpartition(":")[0])
    assert cache.spaced_name(path, {"x"}) == (
        f"{path}: line 3: tensor name {shown} has spaces before or after it, which a cache "
        "reader keeps as part of the name, so it names no tensor 'x'; remove them"
    )


def test_the_same_lines_without_the_spaces_read_as_before() -> None:
    head, scales = cache.loads("TRT-8601-EntropyCalibration2\ny: 3c010a14\nx: 3cc85ef7\n")
    assert head == "TRT-8601-EntropyCalibration2"
    assert scales == {"y": cache.parse_scale("3c010a14"), "x": cache.parse_scale("3cc85ef7")}
    assert cache.loads("TRT-8601-EntropyCalibration2\nx:3cc85ef7\n")[1] == {
        "x": cache.parse_scale("3cc85ef7")
    }


def test_quantize_cache_in_says_it_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = _save(seed_conv(), tmp_path)
    calib = tmp_path / "calib"
    calib.mkdir()
    np.savez(calib / "a.npz", x=np.linspace(-1, 1, 192, dtype=np.float32).reshape(1, 3, 8, 8))
    written = tmp_path / "c.cache"
    argv = ["quantize", str(model), "--calib", str(calib), "--no-progress"]
    assert main([*argv, "-o", str(tmp_path / "q.onnx"), "--cache", str(written)]) == 0
    lines = written.read_text().splitlines()
    assert any(ln.startswith("x: ") for ln in lines), lines
    indented = tmp_path / "indented.cache"
    indented.write_text("\n".join("  " + ln if ln.startswith("x: ") else ln for ln in lines))
    out = tmp_path / "q2.onnx"
    capsys.readouterr()
    assert main(["quantize", str(model), "-o", str(out), "--cache-in", str(indented)]) == 2
    err = capsys.readouterr().err.strip()
    number = next(n for n, ln in enumerate(lines, start=1) if ln.startswith("x: "))
    assert err == (
        f"graphopt quantize: error: {indented}: line {number}: tensor name '  x' has spaces "
        "before or after it, which a cache reader keeps as part of the name, so it names no "
        "tensor 'x'; remove them"
    )
    assert not out.exists()
