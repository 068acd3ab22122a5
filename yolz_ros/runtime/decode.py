"""Probability grid -> peaks: one peak per object instance.

A region is 4-connected cells at or above the threshold; regions that belong to one object
become one peak:
- hysteresis: regions joined by cells at or above ``low_fraction`` x threshold (the weaker
  evidence between two strong parts of one wide object) are one;
- proximity: a weaker region that lies wholly inside a stronger one's box grown by
  ``merge_grow`` x that box's size is part of it (a one-cell satellite of a larger region).
  Measured on v2 (issue 20): an object 155 px wide decoded into two detections ~60 px apart,
  one a single cell; 2 such duplicates over 12 scenes.
The peak is the strongest cell; the box is the union of the cells at or above the threshold of
the merged regions; num_cells counts those cells.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Tuple

import cv2
import numpy as np

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
