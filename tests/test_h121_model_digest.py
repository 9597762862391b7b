"""H121: the sidecar's model digest leaves the initializers' order out.

`sidecar.model_digest` hashed the initializers in file order, so the same model re-saved with
its initializers in another order (a tool sorting them, an export run again) was 'another
model' and its sidecar was not applied. Now they are taken in name order (`model_digest` 2 in
the sidecar). The first sidecars (no "model_digest" field, initializers in file order) still
apply: they are compared with that digest.
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnx.numpy_helper
import onnx.parser
import pytest

from graphopt.ir import load
from graphopt.quant import sidecar as sidecar_io
from graphopt.quant.api import quantize_with_report
from graphopt.realmodels import fetch_model
from tests.conftest import cache_written


def _shuffled(model: onnx.ModelProto, seed: int = 0) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    items = list(out.graph.initializer)
    random.Random(seed).shuffle(items)
    del out.graph.initializer[:]
    out.graph.initializer.extend(items)
    return out


def _common_det() -> onnx.ModelProto:
    return load(str(fetch_model("common_det"))).model


@pytest.mark.realmodel
def test_reordered_initializers_keep_the_digest_and_what_computes_still_counts() -> None:
    model = _common_det()
    names = [t.name for t in model.graph.initializer]
    assert len(names) > 100 and names != sorted(names)  # (the file's order is not by name)
    shuffled = _shuffled(model)
    digest = sidecar_io.model_digest(model)
    assert sidecar_io.model_digest(shuffled) == digest
    # the file order digest (the first sidecars') is the one that differs
    assert sidecar_io.model_digest(shuffled, ordered=True) != sidecar_io.model_digest(
        model, ordered=True
    )
    assert sidecar_io.file_order_digest(model, digest) == sidecar_io.model_digest(
        model, ordered=True
    )
    # a weight's bytes, or its name (with its use), still make another model
    changed = onnx.ModelProto()
    changed.CopyFrom(model)
    first = changed.graph.initializer[0]
    value = onnx.numpy_helper.to_array(first).copy()
    value.flat[0] += np.asarray(1, dtype=value.dtype)
    first.CopyFrom(onnx.numpy_helper.from_array(value, first.name))
    assert sidecar_io.model_digest(changed) != digest
    renamed = onnx.ModelProto()
    renamed.CopyFrom(model)
    old = renamed.graph.initializer[0].name
    renamed.graph.initializer[0].name = old + "_r"
    for node in renamed.graph.node:
        node.input[:] = [old + "_r" if i == old else i for i in node.input]
    assert sidecar_io.model_digest(renamed) != digest


def test_initializers_in_name_order_give_the_first_sidecars_digest() -> None:
    # no second pass where the file has them sorted: both digests are one
    model = onnx.parser.parse_model(
        """<ir_version: 8, opset_import: ["" : 13]>
        g (float[2] x) => (float[2] y) { s = Add (x, a)  y = Mul (s, b) }"""
    )
    for name, v in (("a", 1.0), ("b", 2.0)):
        model.graph.initializer.append(onnx.numpy_helper.from_array(np.full(2, v, "f4"), name))
    digest = sidecar_io.model_digest(model)
    assert digest == sidecar_io.model_digest(model, ordered=True)
    assert sidecar_io.file_order_digest(model, digest) == digest


@dataclass
class Written:
    model: Path  # common_det as shipped
    cache: Path  # a tensorrt cache and sidecar written from it
    stem: list[str]  # the stem the writing run kept float


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Written:
    model = fetch_model("common_det")
    cache = cache_written(
        tmp_path_factory.mktemp("h121_digest"), str(model), "--accuracy-target", "0"
    )
    side = json.loads(sidecar_io.path_of(cache).read_text())
    assert side["stem"]
    return Written(model, cache, side["stem"])


@pytest.mark.realmodel
def test_cache_in_applies_the_sidecar_to_the_model_with_initializers_reordered(
    written: Written, caplog: pytest.LogCaptureFixture
) -> None:
    # before: "not applied, it was written for another model", and the stem was chosen afresh
    with caplog.at_level("WARNING", logger="graphopt"):
        _, report = quantize_with_report(_shuffled(_common_det()), None, from_cache=written.cache)
    assert report.sidecar == str(sidecar_io.path_of(written.cache)), caplog.text
    assert "not applied" not in caplog.text
    assert report.stem == written.stem
    assert json.loads(sidecar_io.path_of(written.cache).read_text())["model_digest"] == 2


@pytest.mark.realmodel
def test_a_first_sidecar_without_the_digest_field_still_applies(
    written: Written, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # a sidecar as graphopt wrote it before: no "model_digest", the file order digest
    cache = tmp_path / "old.cache"
    shutil.copy(written.cache, cache)
    side = json.loads(sidecar_io.path_of(written.cache).read_text())
    del side["model_digest"]
    model = _common_det()
    side["model_sha256"] = sidecar_io.model_digest(model, ordered=True)
    sidecar_io.path_of(cache).write_text(json.dumps(side, indent=1))
    with caplog.at_level("WARNING", logger="graphopt"):
        _, report = quantize_with_report(model, None, from_cache=cache)
    assert report.sidecar == str(sidecar_io.path_of(cache)), caplog.text
    # and, for that file order digest, the model reordered is another model
    with caplog.at_level("WARNING", logger="graphopt"):
        _, report = quantize_with_report(_shuffled(model), None, from_cache=cache)
    assert report.sidecar is None and "written for another model" in caplog.text
