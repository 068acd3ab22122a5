"""Depth -> 3D and the crop of a camera view, no ROS (depth messages, the depth store and the
target-frame transform: tests/ros/test_depth_input.py)."""
import numpy as np
import pytest

from yolz_ros.runtime.crop import CropError, crop_view
from yolz_ros.runtime.depth import DepthError, Intrinsics, locate
from yolz_ros.runtime.geometry import Letterbox, cell_boxes

W, H = 320, 240
K = Intrinsics(fx=250.0, fy=250.0, cx=159.5, cy=119.5, width=W, height=H)


def grid_and_boxes(stride=16):
    lb = Letterbox.fit((H, W), (H, W))
    rows, cols = H // stride, W // stride
    boxes, _ = cell_boxes(lb, rows, cols, stride)
    return np.zeros((rows, cols), np.float32), boxes


def box_scene(z_box=0.8, z_wall=1.5):
    """A wall at z_wall with a fronto-parallel 96x80 px rectangle at z_box, on the 16 px cells
    of rows 5-9 and columns 7-12; the true centre of its visible surface, from its pixels."""
    depth = np.full((H, W), z_wall, np.float32)
    y0, y1, x0, x1 = 80, 160, 112, 208
    depth[y0:y1, x0:x1] = z_box
    v, u = np.mgrid[y0:y1, x0:x1]
    centre = np.array([((u - K.cx) * z_box / K.fx).mean(), ((v - K.cy) * z_box / K.fy).mean(),
                       z_box])
    return depth, (x0, y0, x1, y1), centre


def test_intrinsics_check_the_image_size():
    K.check_image(W, H, "colour image")
    with pytest.raises(DepthError, match="camera_info is for 320x240"):
        K.check_image(640, 480, "colour image")


def test_point_is_the_visible_surface_centre():
    depth, (x0, y0, x1, y1), centre = box_scene()
    grid, boxes = grid_and_boxes()
    grid[5:10, 7:13] = 0.9  # the cells over the rectangle
    grid[4, 6:14] = grid[10, 6:14] = 0.4  # weaker cells above and below, on the wall
    point, why = locate(depth, K, grid, boxes, (7, 10), threshold=0.3)
    assert point is not None, why
    assert np.linalg.norm(np.array(point.xyz) - centre) < 0.005  # the wall pixels do not count
    assert 0.9 * (x1 - x0) * (y1 - y0) <= point.pixels <= (x1 - x0) * (y1 - y0)  # less its edge
    assert point.size[2] < 0.01 and point.size[0] == pytest.approx(0.9 * 96 * 0.8 / 250, abs=0.01)
    # the region's edge cells on the wall: a reference from the core ignores them
    grid[:, :] = 0.0
    grid[4:11, 6:14] = 0.4
    grid[7, 10] = 0.95
    point, _ = locate(depth, K, grid, boxes, (7, 10), threshold=0.3)
    assert np.linalg.norm(np.array(point.xyz) - centre) < 0.005


def test_point_from_holes_and_no_depth():
    depth, _, centre = box_scene()
    grid, boxes = grid_and_boxes()
    grid[5:10, 7:13] = 0.9
    holes = depth.copy()
    holes[::2, ::3] = np.nan  # sensor dropouts: valid pixels are enough
    point, _ = locate(holes, K, grid, boxes, (7, 10), 0.3)
    assert np.linalg.norm(np.array(point.xyz) - centre) < 0.01
    nothing = np.full_like(depth, np.nan)
    point, why = locate(nothing, K, grid, boxes, (7, 10), 0.3)
    assert point is None and "no valid depth" in why


def test_crop_by_box_mask_or_both():
    rgb = np.arange(H * W * 3, dtype=np.uint32).reshape(H, W, 3).astype(np.uint8)
    view, box = crop_view(rgb, (10, 20, 30, 40))
    assert box == (10, 20, 30, 40) and np.array_equal(view, rgb[20:60, 10:40])
    view, box = crop_view(rgb, (300, 220, 100, 100))  # clipped to the frame
    assert box == (300, 220, 20, 20) and view.shape == (20, 20, 3)
    mask = np.zeros((H, W), np.uint8)
    mask[50:70, 100:130] = 1
    view, box = crop_view(rgb, None, mask)
    assert box == (100, 50, 30, 20) and view.shape == (20, 30, 4) and (view[..., 3] == 255).all()
    view, box = crop_view(rgb, (90, 40, 60, 40), mask)  # box and mask: alpha inside the box
    assert view[..., 3].sum() == 255 * 20 * 30 and view.shape == (40, 60, 4)
    for box, m, text in (((0, 0, 0, 0), None, "give a box"), ((0, 0, 4, 4), None, "at least"),
                         ((400, 0, 10, 10), None, "inside"), (None, np.zeros((H, W)), "empty"),
                         (None, np.ones((5, 5)), "frame's size"),
                         ((0, 0, 20, 20), mask, "no object pixels")):
        with pytest.raises(CropError, match=text):
            crop_view(rgb, box, m)
