"""Probability grid -> peaks: one peak per object instance.

A region is 4-connected cells at or above the threshold; regions that belong to one object
become one peak:
- hysteresis: regions joined by cells at or above ``low_fraction`` x threshold (the weaker
  evidence between two strong parts of one wide object) are one;
- proximity: a weaker region that lies wholly inside a stronger one's box grown by
  ``merge_grow`` x that box's size is part of it (a one-cell satellite of a larger region).
  Without them (measured on v2) an object 155 px wide decodes into two detections ~60 px
  apart, one a single cell; 2 such duplicates over 12 scenes.
The peak is the strongest cell; the box is the union of the cells at or above the threshold of
the merged regions; num_cells counts those cells. With a box head (yolz v3) the box is instead
the one its strong cells regress (``regressed_box``), and peaks of one object's grid whose boxes
overlap are one (``with_regressed_boxes``).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import List, Tuple

import cv2
import numpy as np

from yolz_ros.runtime.geometry import Letterbox, box_iou

LOW_FRACTION = 0.5  # cells >= this x threshold connect regions of one object (hysteresis)
MERGE_GROW = 0.3  # a weaker region inside the stronger's box grown by this x its size is one


@dataclass(frozen=True)
class Peak:
    score: float  # the highest probability in the region
    peak_x: float  # centre of the highest cell, source pixels
    peak_y: float
    x_min: float  # union of the region's cell boxes, source pixels
    y_min: float
    x_max: float
    y_max: float
    num_cells: int


def low_threshold(threshold: float, low_fraction: float = LOW_FRACTION) -> float:
    """The hysteresis threshold: cells at or above it join the regions they touch."""
    return min(float(threshold), float(low_fraction) * float(threshold))


def region_mask(grid: np.ndarray, peak_rc: Tuple[int, int], threshold: float,
                low_fraction: float = LOW_FRACTION) -> np.ndarray:
    """Bool [rows, cols]: the object's whole region around the peak cell: the 4-connected
    cells >= the hysteresis threshold (``low_fraction`` x threshold) that hold the peak."""
    mask = (grid >= low_threshold(threshold, low_fraction)).astype(np.uint8)
    mask[peak_rc] = 1
    _, labels = cv2.connectedComponents(mask, connectivity=4)
    return labels == labels[peak_rc]


def _inside(inner, outer, grow: float) -> bool:
    """Box ``inner`` (x0, y0, x1, y1) lies wholly inside ``outer`` grown by ``grow`` x its
    width and height."""
    gx, gy = grow * (outer[2] - outer[0]), grow * (outer[3] - outer[1])
    return (inner[0] >= outer[0] - gx and inner[1] >= outer[1] - gy
            and inner[2] <= outer[2] + gx and inner[3] <= outer[3] + gy)


def decode_peaks(grid: np.ndarray, boxes: np.ndarray, threshold: float,
                 low_fraction: float = LOW_FRACTION,
                 merge_grow: float = MERGE_GROW) -> List[Peak]:
    """Peaks of one object's grid [rows, cols] with cell boxes [rows, cols, 4] (x0, y0, x1, y1),
    highest score first, one per object instance (module doc). ``low_fraction=1`` and
    ``merge_grow=0`` give the plain connected regions."""
    if grid.shape != boxes.shape[:2]:
        raise ValueError(f"grid {grid.shape} and boxes {boxes.shape} do not match")
    strong = grid >= threshold
    if not strong.any():
        return []
    low = (grid >= low_threshold(threshold, low_fraction)) | strong
    count, labels = cv2.connectedComponents(low.astype(np.uint8), connectivity=4)
    groups = []  # [score, (r, c), box, cells, the region's own box]
    for label in range(1, count):
        cells = (labels == label) & strong
        if not cells.any():
            continue  # weak evidence alone is no detection
        scores = np.where(cells, grid, -np.inf)
        rc = np.unravel_index(int(np.argmax(scores)), grid.shape)
        region = boxes[cells]
        box = (float(region[:, 0].min()), float(region[:, 1].min()),
               float(region[:, 2].max()), float(region[:, 3].max()))
        groups.append([float(grid[rc]), rc, box, int(cells.sum()), box])
    groups.sort(key=lambda g: g[0], reverse=True)
    kept = []
    for group in groups:
        home = next((k for k in kept if merge_grow > 0 and _inside(group[2], k[4], merge_grow)),
                    None)  # against the stronger region's own box: no chains
        if home is None:
            kept.append(group)
            continue
        b, h = group[2], home[2]
        home[2] = (min(b[0], h[0]), min(b[1], h[1]), max(b[2], h[2]), max(b[3], h[3]))
        home[3] += group[3]
    peaks = []
    for score, (r, c), box, cells, _ in kept:
        x0, y0, x1, y1 = boxes[r, c]
        peaks.append(Peak(score=score, peak_x=float((x0 + x1) / 2), peak_y=float((y0 + y1) / 2),
                          x_min=box[0], y_min=box[1], x_max=box[2], y_max=box[3],
                          num_cells=cells))
    return peaks


def peak_cell(boxes: np.ndarray, x: float, y: float):
    """(row, col) of the cell whose centre is the peak (x, y) in source pixels."""
    cx = (boxes[..., 0] + boxes[..., 2]) / 2
    cy = (boxes[..., 1] + boxes[..., 3]) / 2
    index = int(np.argmin((cx - x) ** 2 + (cy - y) ** 2))
    return np.unravel_index(index, boxes.shape[:2])


# -- boxes from a box head (yolz v3) -------------------------------------------------------
SAME_OBJECT_IOU = 0.5  # two peaks of one object's grid whose regressed boxes overlap this much


def regressed_boxes(distances: np.ndarray, lb: Letterbox, stride: int, src_hw) -> np.ndarray:
    """The box head's output [rows, cols, 4] (left, top, right, bottom from each cell centre, in
    the detector's input pixels) -> boxes [rows, cols, 4] (x0, y0, x1, y1) in source pixels,
    clipped to the source image."""
    d = np.asarray(distances, np.float32)
    rows, cols = d.shape[:2]
    cx = (np.arange(cols, dtype=np.float32) + 0.5) * stride
    cy = (np.arange(rows, dtype=np.float32) + 0.5) * stride
    x0, x1 = cx[None, :] - d[..., 0], cx[None, :] + d[..., 2]
    y0, y1 = cy[:, None] - d[..., 1], cy[:, None] + d[..., 3]
    h, w = src_hw
    xs = np.clip((np.stack([x0, x1]) - lb.offset_x) / lb.scale, 0, w)
    ys = np.clip((np.stack([y0, y1]) - lb.offset_y) / lb.scale, 0, h)
    return np.stack([xs[0], ys[0], xs[1], ys[1]], axis=-1)


BOX_CELLS_FRACTION = 0.7  # an object's box averages its cells scoring >= this x its peak


def regressed_box(object_boxes: np.ndarray, grid: np.ndarray, peak_rc, threshold: float):
    """An object's box: the boxes regressed by its strongest cells (each cell of an object
    predicts the same box), averaged with the cells' probabilities as weights. Its cells are the
    peak's connected region (decode.region_mask) scoring at least BOX_CELLS_FRACTION x the peak.
    Chosen on the val benchmark (N = 8, alpha views, box AP@[.5:.95]): these cells 0.186, the
    peak cell alone 0.178, the whole region 0.164 (it reaches into neighbours)."""
    region = region_mask(grid, peak_rc, threshold) & (grid >= BOX_CELLS_FRACTION * grid[peak_rc])
    region[peak_rc] = True
    w = grid[region].astype(np.float64)
    w = w / w.sum() if w.sum() > 0 else np.full(len(w), 1.0 / len(w))
    return tuple(float(v) for v in (object_boxes[region] * w[:, None]).sum(axis=0))


def with_regressed_boxes(peaks: List[Peak], cell_boxes: np.ndarray, object_boxes: np.ndarray,
                         grid: np.ndarray, threshold: float) -> List[Peak]:
    """One object's peaks (highest first) with their regressed boxes (``regressed_box``); a
    weaker peak whose box overlaps a kept one's by IoU >= SAME_OBJECT_IOU is the same object
    and dropped."""
    kept: List[Peak] = []
    for p in peaks:  # highest score first
        rc = peak_cell(cell_boxes, p.peak_x, p.peak_y)
        x0, y0, x1, y1 = regressed_box(object_boxes, grid, rc, threshold)
        p = replace(p, x_min=x0, y_min=y0, x_max=x1, y_max=y1)
        box = (x0, y0, x1, y1)
        if all(box_iou(box, (k.x_min, k.y_min, k.x_max, k.y_max)) < SAME_OBJECT_IOU
               for k in kept):
            kept.append(p)
    return kept
