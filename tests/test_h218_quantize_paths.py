"""quantize -o: the files it writes are checked where they are written (H218).

- A model with external data is saved with its weights in `<-o>.data` beside `-o` as given: a
  symbolic link's own folder (`save_model`, `_data_file_beside`), not its target's. c7f8d68
  and f753cab looked for that file beside the link's target: `-o deploy/q.onnx`, a link to
  `other/real.onnx`, with `--cache-in deploy/q.onnx.data` read the deployment's cache, then
  saved the weights over it (exit 0); and `--cache other/q.onnx.data`, a file the save never
  touches, was refused.
- `-o` naming a file the `--pipeline` includes or a rule file it loads replaced it (exit 0;
  every later run refused the pipeline), as optimize did before 37802d1.
"""

from __future__ import annotations

import os

import onnx

from graphopt.cli import main
from graphopt.quant import cache as cache_io
from tests.test_h215_cache_review import TRT_CACHE, _external_model, conv_model
from tests.test_patterns_engine import QUICKGELU_RULE


def _linked_output(tmp_path):  # type: ignore[no-untyped-def]
    """The model with external data; deploy/q.onnx, a link to other/real.onnx."""
    path = _external_model(tmp_path)
    (tmp_path / "deploy").mkdir()
    (tmp_path / "other").mkdir()
    os.symlink(tmp_path / "other" / "real.onnx", tmp_path / "deploy" / "q.onnx")
    return path, tmp_path / "deploy" / "q.onnx"


def test_no_data_file_over_the_cache_read_beside_a_linked_output(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    path, out = _linked_output(tmp_path)
    cache = tmp_path / "deploy" / "q.onnx.data"  # where the save puts the weights
    cache.write_bytes(TRT_CACHE.encode())
    args = ["quantize", str(path), "-o", str(out), "--no-progress", "--cache-in", str(cache)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "-o's external data file" in err and "--cache-in" in err
    assert cache.read_bytes() == TRT_CACHE.encode()
    assert not (tmp_path / "other" / "real.onnx").exists()


def test_a_cache_beside_the_links_target_is_not_the_data_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path, out = _linked_output(tmp_path)
    cache_in = tmp_path / "trt.cache"
    cache_in.write_bytes(TRT_CACHE.encode())
    cache = tmp_path / "other" / "q.onnx.data"  # not where the save puts the weights
    args = ["quantize", str(path), "-o", str(out), "--no-progress", "--cache-in", str(cache_in)]
    assert main([*args, "--cache", str(cache)]) == 0
    assert cache_io.read(cache)[1]  # the cache, kept
    assert (tmp_path / "deploy" / "q.onnx.data").stat().st_size > 1024  # the weights
    onnx.checker.check_model(str(out), full_check=True)


def test_o_naming_a_file_the_pipeline_reads_is_refused(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    model = tmp_path / "m.onnx"
    onnx.save(conv_model(), model)
    cache = tmp_path / "trt.cache"
    cache.write_bytes(TRT_CACHE.encode())
    (tmp_path / "inc.yaml").write_text("passes: [eliminate-dead-code]\n")
    (tmp_path / "r.yaml").write_text(QUICKGELU_RULE)
    top = tmp_path / "top.yaml"
    top.write_text("passes: [{include: inc.yaml}, fuse-patterns]\nrules: [r.yaml]\n")
    for name, what in (("inc.yaml", "included"), ("r.yaml", "rule")):
        before = (tmp_path / name).read_bytes()
        args = ["quantize", str(model), "-o", str(tmp_path / name), "--no-progress"]
        assert main([*args, "--pipeline", str(top), "--cache-in", str(cache)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"--pipeline's {what} file" in err, err
        assert (tmp_path / name).read_bytes() == before
    out = tmp_path / "q.onnx"  # and the pipeline still runs
    args = ["quantize", str(model), "-o", str(out), "--no-progress", "--pipeline", str(top)]
    assert main([*args, "--cache-in", str(cache)]) == 0 and out.is_file()
