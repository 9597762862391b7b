"""An .npz key or member name holding a line break is shown on one line in every error.

Found by an adversarial review of feed reading (H176): `optimize --inputs`, `bench --inputs`
and `quantize --calib` printed the archive's keys as they were, so a key 'y\\nz' made the
one-line error two lines ("... 'y" / "z is no input of the model")."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

from graphopt.arrays import load_arrays
from graphopt.cli import main
from tests.test_h176_calib_feeds import _photo
from tests.test_input_fuzz12 import seed_conv
from tests.test_input_fuzz13 import _save


@pytest.mark.parametrize(
    ("command", "keys", "needle"),
    [
        ("optimize", ("x", "y\nz"), "'y\\nz' is no input of the model (inputs: x)"),
        ("bench", ("a\nb", "c"), "no array for model input(s) x; the file holds 'a\\nb', c"),
        ("quantize", ("a\nb", "c"), "no array for model input(s) x; the archive has 'a\\nb', c"),
    ],
)
def test_a_key_with_a_line_break_is_shown_on_one_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    command: str,
    keys: tuple[str, str],
    needle: str,
) -> None:
    model = _save(seed_conv(), tmp_path)
    feeds = tmp_path / "calib"
    feeds.mkdir()
    np.savez(feeds / "a.npz", **{k: _photo() for k in keys})
    out = tmp_path / "out.onnx"
    argv = {
        "optimize": ["optimize", str(model), "-o", str(out), "--verify"],
        "bench": ["bench", str(model), "--no-progress"],
        "quantize": ["quantize", str(model), "-o", str(out), "--no-progress"],
    }[command]
    argv += ["--calib", str(feeds)] if command == "quantize" else ["--inputs", str(feeds / "a.npz")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err, err
    assert not out.exists()


def test_a_member_name_with_a_line_break_is_shown_on_one_line(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    np.save(buffer, _photo())
    path = tmp_path / "a.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("x\n.npy", buffer.getvalue()[:-100])
        z.writestr("y\n.npy", b"not an array")
    with pytest.raises(ValueError) as e:
        load_arrays(path)
    assert str(e.value).startswith("member 'x\\n.npy': its .npy header declares a 1x3x8x8")
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("y\n.npy", b"not an array")
    with pytest.raises(ValueError) as e:
        load_arrays(path)
    assert str(e.value) == "member 'y\\n.npy' is no .npy array (12 bytes without .npy's magic)"
