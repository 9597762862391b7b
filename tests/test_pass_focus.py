"""focus-to-space-to-depth: YOLOX's Focus slices become one SpaceToDepth, compared with
onnxruntime on the original model, and the cases it must leave alone."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import assert_same_outputs
from tests.fusion_models import build, explained, feeds, ops, rand, run_passes

PASSES = ["focus-to-space-to-depth", "eliminate-dead-code"]
S2D_ORDER = [(0, 0), (0, 1), (1, 0), (1, 1)]
YOLOX_ORDER = [(0, 0), (1, 0), (0, 1), (1, 1)]
BIG = 9223372036854775807


def _slices(order, chained=False, axes=(2, 3), shared_rows=False, steps=(2, 2), ends=(BIG, BIG)):
    """Slice lines making p0..p3 = x[:, :, dy::2, dx::2] for (dy, dx) in `order`."""
    lines, inits = [], {}
    a0, a1 = axes
    for k, (dy, dx) in enumerate(order):
        if chained:
            rows = f"r{dy}" if shared_rows else f"r{k}"
            if not shared_rows or f"{rows}_s" not in inits:
                inits[f"{rows}_s"] = np.array([dy], np.int64)
                lines.append(f"{rows} = Slice(x, {rows}_s, e1, a0, st1)")
            inits[f"c{k}_s"] = np.array([dx], np.int64)
            lines.append(f"p{k} = Slice({rows}, c{k}_s, e1, a1, st1)")
        else:
            inits[f"s{k}"] = np.array([dy, dx], np.int64)
            lines.append(f"p{k} = Slice(x, s{k}, e2, a01, st2)")
    inits.update(
        e1=np.array([ends[0]], np.int64), e2=np.array(ends, np.int64),
        a0=np.array([a0], np.int64), a1=np.array([a1], np.int64),
        a01=np.array([a0, a1], np.int64), st1=np.array([steps[0]], np.int64),
        st2=np.array(steps, np.int64),
    )  # fmt: skip
    return "\n".join(lines), inits


def _focus(
    order, conv=True, chained=False, axes=(2, 3), shared_rows=False, extra="", steps=(2, 2),
    more="", inputs="", ends=(BIG, BIG), x_dims="1,3,6,8",
):  # fmt: skip
    body, inits = _slices(order, chained, axes, shared_rows, steps, ends)
    out = "float[n,c,h,w] y" if conv else "float[n,c,h,w] f"
    tail = "y = Conv<kernel_shape = [1, 1]>(f, W, B)" if conv else ""
    if conv:
        inits.update(W=rand(5, 12, 1, 1), B=rand(5))
    return build(
        f"""<ir_version: 8, opset_import: ["" : 13]>
        g (float[{x_dims}] x{inputs}) => ({out}{extra}) {{
          {body}
          f = Concat<axis = 1>(p0, p1, p2, p3)
          {tail}
          {more}
        }}""",
        inits,
    )


@pytest.mark.parametrize("chained", [False, True])
@pytest.mark.parametrize("conv", [False, True])
def test_spacetodepth_order_becomes_one_node(chained, conv):
    model = _focus(S2D_ORDER, conv=conv, chained=chained)
    out, report = run_passes(model, PASSES)
    assert ops(out) == (["SpaceToDepth", "Conv"] if conv else ["SpaceToDepth"])
    assert explained(report, "focus-to-space-to-depth", "applied") == [""]
    if conv:  # the order already matches: the weight is not touched
        assert len([t for t in out.graph.initializer if t.name.endswith("_s2d")]) == 0
    assert_same_outputs(model, out, feeds(model))


@pytest.mark.parametrize("chained", [False, True])
@pytest.mark.parametrize("axes", [(2, 3), (-2, -1), (3, 2)])
def test_yolox_order_permutes_the_conv_weight(chained, axes):
    # (3, 2): the slices name the axes the other way round; phases are per axis, not per slot
    order = YOLOX_ORDER if axes != (3, 2) else [(dx, dy) for dy, dx in YOLOX_ORDER]
    model = _focus(order, chained=chained, axes=axes)
    out, report = run_passes(model, PASSES)
    assert ops(out) == ["SpaceToDepth", "Conv"]
    assert explained(report, "focus-to-space-to-depth", "applied") == [""]
    assert_same_outputs(model, out, feeds(model))


@pytest.mark.parametrize("static", [True, False])
def test_an_end_at_the_dim_is_whole_only_when_the_dim_is_known(static):
    # ends 6 and 8 keep every row and column of a 6x8 input; with unknown dims that is unproven
    model = _focus(YOLOX_ORDER, ends=(6, 8), x_dims="1,3,6,8" if static else "1,3,h,w")
    out, report = run_passes(model, PASSES)
    if static:
        assert ops(out) == ["SpaceToDepth", "Conv"]
    else:
        assert "SpaceToDepth" not in ops(out)
        assert "not 0::2 or 1::2" in explained(report, "focus-to-space-to-depth", "refused")[0]
    assert_same_outputs(model, out, feeds(model))


def test_rows_sliced_once_for_two_blocks():
    # x[:, :, dy::2] computed once and sliced twice on columns (an exporter's sharing)
    model = _focus(YOLOX_ORDER, chained=True, shared_rows=True)
    out, _ = run_passes(model, PASSES)
    assert ops(out) == ["SpaceToDepth", "Conv"]
    assert_same_outputs(model, out, feeds(model))


def test_a_conv_weight_read_elsewhere_keeps_its_values():
    model = _focus(
        YOLOX_ORDER,
        inputs=", float[1,12,1,1] v",
        extra=", float[1,5,1,1] z",
        more="z = Conv(v, W, B)",
    )
    out, _ = run_passes(model, PASSES)
    assert ops(out) == ["SpaceToDepth", "Conv", "Conv"]
    assert_same_outputs(model, out, feeds(model))


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("order-without-conv", "no Conv alone reads it"),
        ("same-block-twice", "not the four 2×2 phases"),
        ("step-3", "not 0::2 or 1::2"),
        ("slice-read-elsewhere", "also read outside the Focus"),
        ("channel-slice", "not [2, 3]"),
    ],
)
def test_what_is_not_a_focus_is_left_alone(case, reason):
    order = list(YOLOX_ORDER)
    conv = case not in ("order-without-conv", "channel-slice")
    extra, axes, steps = "", (2, 3), (2, 2)
    if case == "same-block-twice":
        order[3] = order[0]
    more = ""
    if case == "slice-read-elsewhere":
        extra, more = ", float[1,3,3,4] q", "q = Relu(p1)"
    if case == "step-3":
        steps = (3, 2)  # rows 0, 3 and 1, 4 of 6: a valid model, not a Focus
    if case == "channel-slice":
        axes, order = (1, 3), S2D_ORDER
    model = _focus(order, conv=conv, extra=extra, axes=axes, steps=steps, more=more)
    out, report = run_passes(model, PASSES)
    assert "SpaceToDepth" not in ops(out)
    assert reason in explained(report, "focus-to-space-to-depth", "refused")[0]
    assert_same_outputs(model, out, feeds(model))


@pytest.mark.realmodel
def test_yolox_focus_of_the_real_detector(real_model, real_feeds):
    import onnx

    import graphopt

    model = onnx.load(str(real_model("common_det")))
    plain = graphopt.optimize(model, None, disable=["focus-to-space-to-depth"])
    assert "SpaceToDepth" not in ops(plain) and ops(plain).count("Slice") == 4
    focused = graphopt.optimize(model, None)  # in the default pipeline (its simplify loop)
    assert ops(focused).count("SpaceToDepth") == 1 and "Slice" not in ops(focused)
    assert len(ops(focused)) == len(ops(plain)) - 4
    for f in real_feeds("common_det", 2):
        assert_same_outputs(model, focused, f)
