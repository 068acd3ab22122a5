"""Probability grid -> one peak per object instance (yolz_ros.runtime.decode), on synthetic grids:
a wide object whose evidence splits into two regions, a one-cell satellite, and the objects that
must stay apart (without the merge rules an object 155 px wide decodes into two detections)."""
import numpy as np
import pytest

from yolz_ros.runtime.decode import decode_peaks, region_mask
from yolz_ros.runtime.geometry import Letterbox, cell_boxes

W, H, STRIDE = 320, 240, 16


def grid_and_boxes():
    boxes, _ = cell_boxes(Letterbox.fit((H, W), (H, W)), H // STRIDE, W // STRIDE, STRIDE)
    return np.zeros((H // STRIDE, W // STRIDE), np.float32), boxes


def test_a_wide_object_split_by_weaker_cells_is_one_detection():
    """160 px wide: a strong blob at its left end and one strong cell at its right end, the
    cells between weaker than the threshold (but over half of it)."""
    grid, boxes = grid_and_boxes()
    grid[6:9, 5:8] = 0.8  # x 80..128
    grid[7, 7] = 0.95
    grid[6:9, 8:14] = 0.3  # the object's middle: weak evidence
    grid[7, 14] = 0.7  # x 224..240: the far end, one cell
    peaks = decode_peaks(grid, boxes, 0.5)
    assert len(peaks) == 1, peaks
    p = peaks[0]
    assert (p.x_min, p.x_max) == (80.0, 240.0) and p.x_max - p.x_min >= 150
    assert p.score == pytest.approx(0.95) and (p.peak_x, p.peak_y) == (120.0, 120.0)
    assert p.num_cells == 10  # the cells at or above the threshold
    # the plain connected regions (the old decoding) are two detections
    assert len(decode_peaks(grid, boxes, 0.5, low_fraction=1.0, merge_grow=0.0)) == 2
    # the object's whole region, as depth.locate searches it, spans the object
    region = region_mask(grid, (7, 14), 0.5)
    assert region[7, 5] and region[7, 14] and region.sum() == 3 * 9 + 1


def test_a_one_cell_satellite_inside_the_grown_box_joins_its_object():
    grid, boxes = grid_and_boxes()
    grid[5:9, 3:11] = 0.9  # 128 x 64 px
    grid[7, 12] = 0.6  # one cell past a one-cell gap (no weak evidence between)
    peaks = decode_peaks(grid, boxes, 0.5)
    assert len(peaks) == 1 and peaks[0].x_max == 13 * STRIDE and peaks[0].num_cells == 33
    assert len(decode_peaks(grid, boxes, 0.5, merge_grow=0.0)) == 2


def test_separate_objects_stay_apart():
    grid, boxes = grid_and_boxes()
    grid[5:9, 2:6] = 0.9  # two instances side by side, 64 px wide, a clean cell between
    grid[5:9, 7:11] = 0.8
    grid[12, 17] = 0.7  # and a third far away
    peaks = decode_peaks(grid, boxes, 0.5)
    assert [p.num_cells for p in peaks] == [16, 16, 1]
    assert [p.score for p in peaks] == pytest.approx([0.9, 0.8, 0.7])
    # weak evidence alone is no detection
    grid[:] = 0.0
    grid[3:6, 3:6] = 0.45
    assert decode_peaks(grid, boxes, 0.5) == []
    # threshold 0: every cell, one region (as before)
    (p,) = decode_peaks(grid, boxes, 0.0)
    assert p.num_cells == grid.size and (p.x_min, p.y_min, p.x_max, p.y_max) == (0, 0, W, H)
