"""Detector-aware accuracy of an INT8 model against its FP32 original.

- YOLOX-style `common_det` (ddddocr 1.6.1, `DetectionEngine.get_bbox`): outputs (1, N, 5+C)
  decoded on the 416×416 input grid: centre `(o[:2] + grid) · stride`, size `exp(o[2:4]) ·
  stride` for strides 8/16/32; score = objectness · class; class-agnostic NMS at IoU 0.45 and
  score > 0.1. Boxes stay in input pixels (the letterbox ratio cancels in IoU).
  `box_match`: the share of FP32 boxes that have an INT8 box with IoU ≥ 0.5 (greedy, one-to-one).
- DBNet text detector (rapidocr `DBPostProcess`): probability map > 0.3 is the text mask;
  `mask_iou` = |A ∩ B| / |A ∪ B| over all evaluation images together.
"""

from __future__ import annotations

import numpy as np


def yolox_decode(
    output: np.ndarray, size: tuple[int, int] = (416, 416), strides: tuple[int, ...] = (8, 16, 32)
) -> np.ndarray:
    """(N, 4+1+C) raw predictions of one image → (N, 4) xyxy boxes and (N,) scores as (N, 5)."""
    pred = np.array(output, dtype=np.float64).reshape(-1, output.shape[-1])
    grids, expanded = [], []
    for stride in strides:
        h, w = size[0] // stride, size[1] // stride
        xv, yv = np.meshgrid(np.arange(w), np.arange(h))
        grids.append(np.stack((xv, yv), 2).reshape(-1, 2))
        expanded.append(np.full((h * w, 1), stride))
    grid = np.concatenate(grids)
    stride_col = np.concatenate(expanded)
    centre = (pred[:, :2] + grid) * stride_col
    wh = np.exp(pred[:, 2:4]) * stride_col
    boxes = np.concatenate([centre - wh / 2, centre + wh / 2], axis=1)
    scores = (pred[:, 4:5] * pred[:, 5:]).max(axis=1)
    return np.concatenate([boxes, scores[:, None]], axis=1)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> list[int]:
    """ddddocr's single-class NMS (areas with the +1 pixel convention)."""
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = scores.argsort()[::-1]
    keep = []
    while order.size > 0:
        i = order[0]
        keep.append(int(i))
        xx1 = np.maximum(x1[i], x1[order[1:]])
        yy1 = np.maximum(y1[i], y1[order[1:]])
        xx2 = np.minimum(x2[i], x2[order[1:]])
        yy2 = np.minimum(y2[i], y2[order[1:]])
        inter = np.maximum(0.0, xx2 - xx1 + 1) * np.maximum(0.0, yy2 - yy1 + 1)
        overlap = inter / (areas[i] + areas[order[1:]] - inter)
        order = order[np.where(overlap <= iou_threshold)[0] + 1]
    return keep


def detect_boxes(
    output: np.ndarray, score_threshold: float = 0.1, nms_threshold: float = 0.45
) -> np.ndarray:
    """Final xyxy boxes of one common_det output, as ddddocr's get_bbox keeps them."""
    decoded = yolox_decode(output)
    valid = decoded[:, 4] > score_threshold
    if not valid.any():
        return np.zeros((0, 4))
    boxes, scores = decoded[valid, :4], decoded[valid, 4]
    return boxes[nms(boxes, scores, nms_threshold)]


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    tl = np.maximum(a[:, None, :2], b[None, :, :2])
    br = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(br - tl, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def matched(reference: np.ndarray, candidate: np.ndarray, threshold: float = 0.5) -> int:
    """How many reference boxes get a distinct candidate box with IoU ≥ threshold (greedy)."""
    iou = iou_matrix(reference, candidate)
    hits = 0
    used: set[int] = set()
    pairs = sorted(
        ((iou[i, j], i, j) for i, j in zip(*np.nonzero(iou >= threshold), strict=True)),
        reverse=True,
    )
    done: set[int] = set()
    for _, i, j in pairs:
        if i in done or j in used:
            continue
        done.add(i)
        used.add(j)
        hits += 1
    return hits


def box_match(
    reference_outputs: list[np.ndarray], candidate_outputs: list[np.ndarray]
) -> tuple[float, int]:
    """(share of FP32 boxes matched by INT8 boxes at IoU ≥ 0.5, number of FP32 boxes)."""
    total = hits = 0
    for ref, got in zip(reference_outputs, candidate_outputs, strict=True):
        a, b = detect_boxes(ref), detect_boxes(got)
        total += len(a)
        hits += matched(a, b)
    return (hits / total if total else 1.0), total


def mask_iou(
    reference_maps: list[np.ndarray], candidate_maps: list[np.ndarray], threshold: float = 0.3
) -> float:
    """IoU of the DBNet text masks (probability > threshold), pooled over all images."""
    inter = union = 0
    for ref, got in zip(reference_maps, candidate_maps, strict=True):
        a, b = ref > threshold, got > threshold
        inter += int(np.logical_and(a, b).sum())
        union += int(np.logical_or(a, b).sum())
    return inter / union if union else 1.0


def box_miss_rate(
    reference: list[dict[str, np.ndarray]], candidate: list[dict[str, np.ndarray]]
) -> float:
    """1 − box match over the first output of each feed: an `error_metric` for sensitivity."""
    first = next(iter(reference[0])) if reference else ""
    return 1.0 - box_match([r[first] for r in reference], [c[first] for c in candidate])[0]


def mask_miss_rate(
    reference: list[dict[str, np.ndarray]], candidate: list[dict[str, np.ndarray]]
) -> float:
    """1 − DBNet mask IoU over the first output of each feed: an `error_metric` for sensitivity."""
    first = next(iter(reference[0])) if reference else ""
    return 1.0 - mask_iou([r[first] for r in reference], [c[first] for c in candidate])
