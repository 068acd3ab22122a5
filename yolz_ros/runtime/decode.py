"""Probability grid -> peaks: 4-connected regions of cells at or above a threshold."""
from __future__ import annotations

from dataclasses import dataclass
from typing import List

import cv2
import numpy as np


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


def decode_peaks(grid: np.ndarray, boxes: np.ndarray, threshold: float) -> List[Peak]:
    """Peaks of one object's grid [rows, cols] with cell boxes [rows, cols, 4] (x0, y0, x1, y1),
    highest score first."""
    if grid.shape != boxes.shape[:2]:
        raise ValueError(f"grid {grid.shape} and boxes {boxes.shape} do not match")
    mask = (grid >= threshold).astype(np.uint8)
    count, labels = cv2.connectedComponents(mask, connectivity=4)
    peaks = []
    for label in range(1, count):
        cells = labels == label
        scores = np.where(cells, grid, -np.inf)
        r, c = np.unravel_index(int(np.argmax(scores)), grid.shape)
        region = boxes[cells]
        x0, y0, x1, y1 = boxes[r, c]
        peaks.append(Peak(score=float(grid[r, c]), peak_x=float((x0 + x1) / 2),
                          peak_y=float((y0 + y1) / 2), x_min=float(region[:, 0].min()),
                          y_min=float(region[:, 1].min()), x_max=float(region[:, 2].max()),
                          y_max=float(region[:, 3].max()), num_cells=int(cells.sum())))
    peaks.sort(key=lambda p: p.score, reverse=True)
    return peaks
def peak_cell(boxes: np.ndarray, x: float, y: float):
    """(row, col) of the cell whose centre is the peak (x, y) in source pixels."""
    cx = (boxes[..., 0] + boxes[..., 2]) / 2
    cy = (boxes[..., 1] + boxes[..., 3]) / 2
    index = int(np.argmin((cx - x) ** 2 + (cy - y) ** 2))
    return np.unravel_index(index, boxes.shape[:2])
