"""The project's one cell rule: which grid cells count as showing an object.

Every benchmark and training episode (training/data/realbench.py) labels its scenes with it.

Cell-positive rule (targets[c, r, col], grid cell = stride x stride pixels of the scene):
  * visible pixels of object c = pixels where c is the topmost object (occluded pixels do not
    count); an object with fewer than `min_visible_pixels` counts as absent: its targets are all 0;
  * a cell is positive for object c if c's visible pixels cover >= `coverage` of the cell's area;
  * for every present object, the cell holding the most of its visible pixels is positive too, so
    a small object always has at least one positive cell.
"""
from __future__ import annotations

import numpy as np


def cell_targets(index_map: np.ndarray, num_objects: int, stride: int, coverage: float,
                 min_visible_pixels: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-object cell targets from a map of VISIBLE object indices (-1 = none).

    Returns targets float32 [C, rows, cols] (rows = H // stride, cols = W // stride) and
    visible pixel counts int32 [C]. See the module docstring for the rule.
    """
    h, w = index_map.shape
    rows, cols = h // stride, w // stride
    c = num_objects
    idx = index_map.astype(np.int64)
    inside = (idx >= 0) & (idx < c)
    visible = np.bincount(idx[inside], minlength=c)[:c].astype(np.int32)
    grid = idx[:rows * stride, :cols * stride]
    valid = (grid >= 0) & (grid < c)
    cell = (np.arange(rows * stride)[:, None] // stride) * cols + np.arange(cols * stride)[None, :] // stride
    counts = np.bincount(cell[valid] * c + grid[valid], minlength=rows * cols * c).reshape(rows * cols, c)
    positive = counts >= coverage * stride * stride
    present = visible >= min_visible_pixels
    best = counts.argmax(axis=0)
    has_cell = counts[best, np.arange(c)] > 0
    positive[best[present & has_cell], np.arange(c)[present & has_cell]] = True
    positive[:, ~present] = False
    return positive.T.reshape(c, rows, cols).astype(np.float32), visible
