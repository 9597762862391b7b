"""save_model's answers to output paths at the edges (review H209, session 22).

- `save_model(model, "")` said ".: is a folder; give a file name for the model", naming a
  path the caller did not give (pathlib reads "" as "."); `load("")` already said the path
  is empty.
- A path that is a symbolic link loop (a -> b -> a) had its link `a` replaced by the model
  file, where a link's save keeps the link (and the CLI refused the loop in one line).
- `graphopt optimize m.onnx -o /dev/stdout > out.onnx`, m.onnx with external data: /dev/stdout
  links to /proc/self/fd/1, which links to out.onnx, a regular file, so the save wrote through
  the link as to a file: the model renamed onto out.onnx and its data file beside the link,
  /dev/stdout.data, where no reader of out.onnx looks (and a file left in /dev). A link to an
  open descriptor is written straight now, in one piece, as a pipe is.
- `save_model(graphopt.ir.load(path), out)` (load returns a LoadedModel) was an AttributeError
  traceback ("'LoadedModel' object has no attribute 'graph'"), as was any other object.
- A model saved with external data under a file name that is not UTF-8 (b'bad\xff.onnx')
  failed with "cannot serialize: 'utf-8' codec can't encode character '\udcff' ...: surrogates
  not allowed": the data file's name, which the model stores as text, is what cannot be.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import pytest

from graphopt.errors import SaveError
from graphopt.ir import save_model
from tests.models_util import matmul_model


def test_an_empty_path_is_said_to_be_empty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SaveError, match=r"^the model path is empty: give a file name"):
        save_model(matmul_model(), "")
    assert list(tmp_path.iterdir()) == []


def test_a_symbolic_link_loop_is_refused_and_kept(tmp_path: Path) -> None:
    """a -> b -> a: the save replaced the link `a` by the model file (the link was not kept,
    as a link's save promises); onnx.save fails on it, the CLI refuses it in one line."""
    (tmp_path / "a").symlink_to("b")
    (tmp_path / "b").symlink_to("a")
    with pytest.raises(SaveError, match=r"a: is a symbolic link loop; give a file name$"):
        save_model(matmul_model(), tmp_path / "a")
    assert os.readlink(tmp_path / "a") == "b" and os.readlink(tmp_path / "b") == "a"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc/self/fd")
@pytest.mark.parametrize("link", ["/dev/fd/{}", "/proc/self/fd/{}"])
def test_a_link_to_an_open_descriptor_gets_the_model_in_one_piece(
    tmp_path: Path, link: str
) -> None:
    """What `-o /dev/stdout > out.onnx` writes: the descriptor's file gets the whole model,
    its weights inline (nothing beside it, nothing beside the link)."""
    from onnx import numpy_helper

    from tests.models_util import WEIGHT

    out = tmp_path / "out.onnx"
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        path = Path(link.format(fd))
        save_model(matmul_model(), path, external_data=True)
        assert not Path(f"{path}.data").exists()
    finally:
        os.close(fd)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.onnx"]
    saved = onnx.load(str(out))
    assert np.array_equal(numpy_helper.to_array(saved.graph.initializer[0]), WEIGHT)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc/self/fd")
def test_a_descriptor_that_is_not_open_is_no_stream(tmp_path: Path) -> None:
    """(the CLI's -o check passes a stream by; a closed one is said before the run)"""
    from graphopt.ir.model_io import is_stream

    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT)
    os.close(fd)
    assert not is_stream(Path(f"/dev/fd/{fd}"))
    assert not is_stream(tmp_path / "f")


def test_what_is_no_model_proto_is_a_one_line_save_error(tmp_path: Path) -> None:
    from graphopt.ir import load

    source = tmp_path / "m.onnx"
    save_model(matmul_model(), source)
    out = tmp_path / "out.onnx"
    with pytest.raises(
        SaveError, match=r"^save_model takes an onnx.ModelProto, not LoadedModel: pass its .model$"
    ):
        save_model(load(source), out)
    with pytest.raises(SaveError, match=r"not str$"):
        save_model(str(source), out)  # type: ignore[arg-type]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


@pytest.mark.skipif(os.name != "posix", reason="a file name of bytes that are no UTF-8")
def test_a_data_file_name_that_is_not_utf8_is_named_as_the_problem(tmp_path: Path) -> None:
    path = Path(os.fsdecode(bytes(tmp_path) + b"/bad\xffname.onnx"))
    with pytest.raises(SaveError, match=r"its data file name .* is not UTF-8 text"):
        save_model(matmul_model(), path, external_data=True)
    assert list(tmp_path.iterdir()) == []
