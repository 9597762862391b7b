"""Detector-aware evaluation: YOLOX decode as ddddocr does it, box matching, DBNet mask IoU."""

from __future__ import annotations

import numpy as np

from graphopt.quant.evaluate import (
    box_match,
    detect_boxes,
    iou_matrix,
    mask_iou,
    matched,
    yolox_decode,
)


def yolox_output(cells: dict[int, tuple[float, float, float, float, float, float]]) -> np.ndarray:
    """A (1, 3549, 6) raw output (416×416, one class) with chosen anchors set."""
    out = np.zeros((1, 52 * 52 + 26 * 26 + 13 * 13, 6), np.float32)
    out[..., 2:4] = -10.0  # tiny boxes
    for index, values in cells.items():
        out[0, index] = values
    return out


def test_decode_follows_ddddocr() -> None:
    # anchor 53 = stride 8, grid (x=1, y=1); offsets (0.5, 0.25), size exp(0)·8 = 8
    out = yolox_output({53: (0.5, 0.25, 0.0, 0.0, 0.9, 0.8)})
    decoded = yolox_decode(out)
    cx, cy = (0.5 + 1) * 8, (0.25 + 1) * 8
    np.testing.assert_allclose(decoded[53, :4], [cx - 4, cy - 4, cx + 4, cy + 4])
    assert abs(decoded[53, 4] - 0.72) < 1e-6
    # first stride-16 anchor sits at index 52·52
    out2 = yolox_output({52 * 52 + 27: (0.0, 0.0, np.log(2.0), 0.0, 1.0, 1.0)})
    box = yolox_decode(out2)[52 * 52 + 27, :4]
    np.testing.assert_allclose(box, [16 - 16, 16 - 8, 16 + 16, 16 + 8], atol=1e-5)


def test_nms_and_threshold() -> None:
    # two overlapping boxes (the weaker one suppressed) and one below the 0.1 score threshold
    out = yolox_output(
        {
            53: (0.0, 0.0, 1.0, 1.0, 0.9, 0.9),
            54: (0.0, 0.0, 1.0, 1.0, 0.8, 0.8),
            500: (0.0, 0.0, 1.0, 1.0, 0.3, 0.3),
            1000: (0.0, 0.0, 1.0, 1.0, 0.9, 0.9),
        }
    )
    boxes = detect_boxes(out)
    assert len(boxes) == 2


def test_matching() -> None:
    a = np.array([[0, 0, 10, 10], [20, 20, 30, 30]], float)
    b = np.array([[1, 1, 11, 11], [100, 100, 110, 110]], float)
    assert iou_matrix(a, a).diagonal().tolist() == [1.0, 1.0]
    assert matched(a, b) == 1
    assert matched(a, np.zeros((0, 4))) == 0
    out = yolox_output({53: (0.0, 0.0, 1.0, 1.0, 0.9, 0.9)})
    moved = yolox_output({53: (3.0, 3.0, 1.0, 1.0, 0.9, 0.9)})
    assert box_match([out], [out]) == (1.0, 1)
    assert box_match([out], [moved]) == (0.0, 1)


def test_mask_iou() -> None:
    a = np.zeros((1, 1, 4, 4), np.float32)
    a[..., :2, :] = 0.9
    b = np.zeros_like(a)
    b[..., :1, :] = 0.9
    assert mask_iou([a], [a]) == 1.0
    assert mask_iou([a], [b]) == 0.5
