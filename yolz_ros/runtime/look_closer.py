"""A closer look where it pays: up to ``budget`` zoomed tiles per frame, centred on the frame
pass's most uncertain candidates (``Detector.detect(..., look_closer=N)``, the node's
``look_closer`` parameter).

The full zoom pass (runtime/zoom_pass.py) looks everywhere at once, 9 tiles at 2x; most of a
frame holds nothing worth a second look. Here the frame pass ranks each object's local peaks by
how undecided they are (distance from the model's threshold in logit space: a 0.95 peak is sure,
a 0.01 one is nothing) and a 2x tile is centred on the best, then the next one that no chosen
tile already covers, until the budget is spent. Budget left over scans the full pass's tiles in
turn across frames, so every part of the view gets its closer look every few frames.

Fusion can lower as well as raise: inside a tile each cell becomes the mean of its frame-pass
probability and the tile's (max-pooled to the grid cell), so a look-alike that the closer look
tells apart loses half its score while a small object it finds gains half the tile's.
"""
from __future__ import annotations

from typing import List, Tuple

import numpy as np

from yolz_ros.runtime.zoom_pass import Rect, tile_cells

LOOK_ZOOM = 2.0  # a tile shows a quarter of the frame at twice its resolution
MAX_LOOK_CLOSER = 9  # as many as the full 2x pass has tiles
PEAK_FLOOR = 0.01  # a frame-pass peak below this is nothing to look at
COVERED = 0.8  # a candidate within the central 80% of a chosen tile is already looked at


def _logit(p):
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def candidates(probs: np.ndarray, threshold: float) -> np.ndarray:
    """[(row, col)] of every object's 3x3 local peaks above PEAK_FLOOR, most undecided first."""
    k, r, c = probs.shape
    padded = np.pad(probs, ((0, 0), (1, 1), (1, 1)), constant_values=-1.0)
    around = np.max([padded[:, 1 + dy:1 + dy + r, 1 + dx:1 + dx + c]
                     for dy in (-1, 0, 1) for dx in (-1, 0, 1)], axis=0)
    obj, rows, cols = np.nonzero((probs >= around) & (probs >= PEAK_FLOOR))
    doubt = np.abs(_logit(probs[obj, rows, cols]) - _logit(threshold))
    order = np.lexsort((cols, rows, obj, doubt))  # stable for ties: deterministic
    return np.stack([rows[order], cols[order]], axis=1) if len(order) else np.zeros((0, 2), int)


def centred_tile(cx: float, cy: float, input_hw: Tuple[int, int], area: Rect,
                 zoom: float = LOOK_ZOOM) -> Rect:
    """A model-input-sized tile at ``zoom`` centred on (cx, cy) (model-input px), shifted to lie
    inside ``area`` (the letterboxed image) where it fits."""
    th, tw = input_hw[0] / zoom, input_hw[1] / zoom

    def place(centre, size, lo, hi):
        start = centre - size / 2
        if hi - lo >= size:
            start = min(max(start, lo), hi - size)
        return float(start)

    x0 = place(cx, tw, area[0], area[2])
    y0 = place(cy, th, area[1], area[3])
    return (x0, y0, x0 + tw, y0 + th)


def choose_tiles(probs: np.ndarray, threshold: float, budget: int, input_hw: Tuple[int, int],
                 area: Rect, stride: int, scan: List[Rect], scan_start: int
                 ) -> Tuple[List[Rect], int]:
    """Up to ``budget`` tiles: on the undecided candidates first, then the next ``scan`` tiles
    from ``scan_start`` (returned advanced, for the next frame)."""
    tiles: List[Rect] = []
    for row, col in candidates(probs, threshold):
        if len(tiles) == budget:
            break
        cx, cy = (col + 0.5) * stride, (row + 0.5) * stride
        if any(_inside(cx, cy, t) for t in tiles):
            continue
        tiles.append(centred_tile(cx, cy, input_hw, area))
    for _ in range(min(budget - len(tiles), len(scan))):
        tiles.append(scan[scan_start % len(scan)])
        scan_start += 1
    return tiles, scan_start % max(len(scan), 1)


def _inside(x, y, rect: Rect) -> bool:
    mx = (1 - COVERED) / 2 * (rect[2] - rect[0])
    my = (1 - COVERED) / 2 * (rect[3] - rect[1])
    return rect[0] + mx <= x <= rect[2] - mx and rect[1] + my <= y <= rect[3] - my


def fuse_tile(grid: np.ndarray, tile: np.ndarray, rect: Rect, stride: int) -> None:
    """Fuse a tile's probabilities [K, r, c] into ``grid`` [K, rows, cols] in place: each grid
    cell the tile covers becomes the mean of its own value and the max of the tile cells whose
    centres fall in it."""
    rr, cc = tile_cells(rect, tile.shape[1:], stride, grid.shape[1:])
    pooled = np.full_like(grid, -1.0)
    np.maximum.at(pooled, (slice(None), rr, cc), tile)
    seen = pooled[0] >= 0
    grid[:, seen] = 0.5 * (grid[:, seen] + pooled[:, seen])
