"""H142: `graphopt.quantize` / `quantize_with_report` arguments they do not take.

An API review found: `quantize(m, feeds, foo=1)` was Python's TypeError "quantize_with_report()
got an unexpected keyword argument"; `cache=123`, `accuracy_target="x"`, `calibration_data=5`,
`threads="2"`, `keep_float=2.5`, `error_metric=3` were TypeErrors from deep inside;
`from_cache=5` read file descriptor 5; `keep_stem="no"` kept the stem; `keep_nodes="conv1"`
looked for nodes 'c', 'o', ...; `pipeline=Path("p.yaml")` ran the default pipeline instead;
`trt_version="10.x"` headed the cache TRT-100000 (the CLI refuses it since 2fa8f9b), and
without `cache` was ignored; `method="entropy"` (and the other options of calibration) with
`from_cache` was ignored (the CLI refuses `--cache-in` with `--method`), as was
`percentile=99.9` with method minmax. Each is now an `OptionError` (a GraphoptError and a
ValueError) on one line, naming the argument, raised before the model is loaded: the tests
pass a model path that does not exist, which a later check would have reported instead.

No data is judged here: the one calibration (to write a cache) runs on a constant input.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnx.parser
import pytest

import graphopt
from graphopt.cli import main
from graphopt.errors import GraphoptError, OptionError, PipelineError
from graphopt.quant.api import quantize_with_report

MISSING = "no-such-model.onnx"  # a check after loading would say LoadError


def _model() -> onnx.ModelProto:
    w1 = ", ".join(str(((i * 7) % 11 - 5) / 10) for i in range(4 * 3 * 9))
    w2 = ", ".join(str(((i * 5) % 13 - 6) / 10) for i in range(4 * 4 * 9))
    text = f"""
    <ir_version: 8, opset_import: ["" : 13]>
    g (float[1, 3, 16, 16] x) => (float[1, 4, 16, 16] y) <
        float[4, 3, 3, 3] w1 = {{{w1}}}, float[4, 4, 3, 3] w2 = {{{w2}}}
    > {{
        c1 = Conv <pads = [1, 1, 1, 1]> (x, w1)
        r1 = Relu (c1)
        c2 = Conv <pads = [1, 1, 1, 1], strides = [1, 1]> (r1, w2)
        y = Relu (c2)
    }}
    """
    model = onnx.parser.parse_model(text)
    onnx.checker.check_model(model, full_check=True)
    return model


FEEDS = [{"x": np.full((1, 3, 16, 16), 0.5, np.float32)}]


def _refused(said: str, **kwargs: Any) -> None:
    """`quantize` and `quantize_with_report` both refuse `kwargs` with `said`, on one line."""
    for function in (graphopt.quantize, quantize_with_report):
        args = {"calibration_data": FEEDS, **kwargs}
        with pytest.raises(OptionError) as e:
            function(MISSING, **args)
        assert "\n" not in str(e.value)
        assert str(e.value).startswith(said), str(e.value)
        assert isinstance(e.value, GraphoptError) and isinstance(e.value, ValueError)


def test_an_unknown_option_is_named_with_the_closest_one() -> None:
    with pytest.raises(OptionError, match=r"^quantize: unknown option 'foo'; options: "):
        graphopt.quantize(MISSING, FEEDS, foo=1)
    with pytest.raises(OptionError) as e:
        quantize_with_report(MISSING, FEEDS, acuracy_target=0.1)
    said = "quantize_with_report: unknown option 'acuracy_target' (did you mean accuracy_target?)"
    assert str(e.value).startswith(said)
    assert "from_cache, percentile, entropy_floor" in str(e.value)
    with pytest.raises(OptionError, match=r"unknown option 'methd' \(did you mean method\?\)"):
        graphopt.quantize(MISSING, FEEDS, methd="entropy")


@pytest.mark.parametrize(
    ("kwargs", "said"),
    [
        ({"cache": 123}, "cache must be the path of the calibration cache to write"),
        ({"cache": b"c.cache"}, "cache must be the path of the calibration cache to write"),
        ({"from_cache": 5}, "from_cache must be the path of a calibration cache to read"),
        ({"accuracy_target": "x"}, "accuracy_target must be a number, 0 or more, or None"),
        ({"accuracy_target": True}, "accuracy_target must be a number"),
        ({"calibration_data": 5}, "calibration_data must be an iterable of feeds"),
        ({"calibration_data": "images/"}, "calibration_data must be an iterable of feeds"),
        ({"calibration_data": FEEDS[0]}, "calibration_data must be an iterable of feeds, "),
        ({"sensitivity_data": FEEDS[0]}, "sensitivity_data must be an iterable of feeds"),
        ({"percentile": "99.9", "method": "percentile"}, "percentile must be a number"),
        ({"entropy_floor": "99", "method": "entropy"}, "entropy_floor must be a number"),
        ({"keep_float": 2.5}, "keep_float must be a whole number, 0 or more, got float 2.5"),
        ({"keep_float": True}, "keep_float must be a whole number"),
        ({"threads": "2"}, "threads must be a whole number, 0 or more, got str '2'"),
        ({"threads": -1}, "threads must be 0 (as many as the cores) or more, got -1"),
        ({"sample_feeds": -1}, "sample_feeds must be 0 or more, got -1"),
        ({"histogram_sample": "1", "method": "entropy"}, "histogram_sample must be a whole"),
        ({"parallel_feeds": 1.5}, "parallel_feeds must be a whole number, 1 or more"),
        ({"keep_nodes": "conv1"}, "keep_nodes must be a list of node names, got str 'conv1'"),
        ({"keep_nodes": 5}, "keep_nodes must be a list of node names, got int 5"),
        ({"keep_stem": "no"}, "keep_stem must be True or False, got str 'no'"),
        ({"error_metric": 3}, "error_metric must be a function, or None, got int 3"),
        ({"on_batch": 3}, "on_batch must be a function, or None"),
        ({"on_search": "x"}, "on_search must be a function, or None"),
        ({"pipeline": 2}, "pipeline must be a built-in pipeline's name, a YAML file's path"),
    ],
)
def test_an_argument_of_another_type_is_named(kwargs: dict[str, Any], said: str) -> None:
    _refused(said, **kwargs)


@pytest.mark.parametrize("version", ["10.x", "10..3", "1e3", "10.100"])
def test_trt_version_takes_what_the_command_line_takes(version: str, tmp_path: Path) -> None:
    """The cache header read '10.x' and '10..3' as TRT-100000, '1e3' as TRT-1000, '10.100'
    as TRT-110000 (`graphopt quantize --trt-version` refuses them: the same check)."""
    cache = tmp_path / "c.cache"
    said = f"trt_version: TensorRT version {version!r} is not a version like 10.3.0"
    _refused(said, cache=cache, trt_version=version)
    assert not cache.exists()


def test_trt_version_needs_a_cache_and_a_string(tmp_path: Path) -> None:
    _refused("trt_version='10.3.0' names the TensorRT of the cache's header", trt_version="10.3.0")
    _refused(
        "trt_version must be a TensorRT version like '10.3.0' (a str), got 10.3",
        cache=tmp_path / "c.cache",
        trt_version=10.3,
    )


def test_a_pipeline_path_is_run_not_ignored(tmp_path: Path) -> None:
    """`pipeline=Path(...)` ran the target's default pipeline without a word."""
    with pytest.raises(PipelineError, match=r"missing\.yaml"):
        graphopt.quantize(_model(), FEEDS, pipeline=tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    ("kwargs", "said"),
    [
        (
            {"percentile": 99.9},
            "percentile=99.9 is for method 'percentile'; this run calibrates with 'minmax'",
        ),
        ({"entropy_floor": None}, "entropy_floor=None is for method 'entropy'"),
        (
            {"entropy_floor": 99.0, "method": "percentile"},
            "entropy_floor=99.0 is for method 'entropy'; this run calibrates with 'percentile'",
        ),
        (
            {"histogram_sample": 0},
            "histogram_sample=0 is for method 'entropy' or 'percentile' or 'mse'",
        ),
        ({"parallel_feeds": 2, "method": "entropy"}, "parallel_feeds=2 is for method 'minmax'"),
    ],
)
def test_an_option_of_another_method_is_refused(kwargs: dict[str, Any], said: str) -> None:
    _refused(said, **kwargs)


@pytest.fixture(scope="module")
def written_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cache = tmp_path_factory.mktemp("h142") / "m.cache"
    graphopt.quantize(_model(), FEEDS, "entropy", cache=cache, accuracy_target=None)
    return cache


@pytest.mark.parametrize(
    ("kwargs", "said"),
    [
        (
            {"method": "percentile"},
            "method='percentile' calibrates calibration_data; this run "
            "takes its scales from from_cache=",
        ),
        ({"method": "entropy"}, "method='entropy' calibrates calibration_data"),
        ({"percentile": 99.9}, "percentile=99.9 is an option of calibration; this run takes"),
        ({"entropy_floor": None}, "entropy_floor=None is an option of calibration"),
        ({"histogram_sample": 0}, "histogram_sample=0 is an option of calibration"),
        ({"parallel_feeds": 2}, "parallel_feeds=2 is an option of calibration"),
    ],
)
def test_calibration_options_with_from_cache_are_refused(
    written_cache: Path, kwargs: dict[str, Any], said: str
) -> None:
    """A `from_cache` run calibrates nothing (the cache's calibrator chose the scales):
    `method="percentile"` was taken without a word, as the CLI's `--cache-in --method` was
    until b98e850."""
    for data in (None, FEEDS):
        with pytest.raises(OptionError) as e:
            graphopt.quantize(MISSING, data, from_cache=written_cache, **kwargs)
        assert str(e.value).startswith(said), str(e.value)


def test_from_cache_with_the_defaults_still_runs(
    written_cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """What the command line passes for the flags it was not given (the defaults) is fine."""
    model = _model()
    _, report = quantize_with_report(model, None, from_cache=written_cache, accuracy_target=None)
    assert report.method == "from cache (EntropyCalibration2)" and report.quantized_nodes
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    out = tmp_path / "q.onnx"
    argv = ["quantize", str(path), "-o", str(out), "--cache-in", str(written_cache)]
    assert main([*argv, "--accuracy-target", "0"]) == 0
    assert out.is_file()


def test_pipeline_true_is_the_targets_default() -> None:
    """`pipeline: str | bool | None`: True runs the target's default pipeline, as None does
    (it did before the argument checks; the sidecar's `pipeline_identity` reads it so)."""
    default = graphopt.quantize(_model(), FEEDS, accuracy_target=None)
    given = graphopt.quantize(_model(), FEEDS, accuracy_target=None, pipeline=True)
    assert given.SerializeToString() == default.SerializeToString()
