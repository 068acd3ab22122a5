"""Depth -> 3D and the crop of a camera view, no ROS (depth messages, the depth store and the
target-frame transform: tests/ros/test_depth_input.py)."""
import numpy as np
import pytest

from yolz_ros.runtime.crop import CropError, crop_view
from yolz_ros.runtime.decode import decode_peaks, peak_cell
from yolz_ros.runtime.depth import DepthError, Intrinsics, Point3D, locate, merge_located
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


def wide_scene(z_box=1.2, z_wall=1.8):
    """A wall at z_wall with a 160 x 64 px box at z_box (x 80..240, y 96..160: cell columns
    5-14, rows 6-9); the true centre of its visible surface."""
    depth = np.full((H, W), z_wall, np.float32)
    y0, y1, x0, x1 = 96, 160, 80, 240
    depth[y0:y1, x0:x1] = z_box
    v, u = np.mgrid[y0:y1, x0:x1]
    centre = np.array([((u - K.cx) * z_box / K.fx).mean(), ((v - K.cy) * z_box / K.fy).mean(),
                       z_box])
    return depth, centre


def test_one_strong_cell_at_a_wide_objects_end_finds_its_whole_surface():
    """The strongest evidence is one cell at the end of an object 160 px wide; a fixed window
    around that cell would cut the surface (the point 19 cm off here)."""
    depth, centre = wide_scene()
    grid, boxes = grid_and_boxes()
    grid[7, 5] = 0.9  # the left end only; no other cell over the threshold or half of it
    point, why = locate(depth, K, grid, boxes, (7, 5), 0.5)
    assert point is not None, why
    assert np.linalg.norm(np.array(point.xyz) - centre) < 0.02
    assert point.box[0] <= 81 and point.box[2] >= 239  # the whole width
    # with weaker cells over the rest of the object (its whole region), the same
    grid[6:10, 6:15] = 0.3
    point, why = locate(depth, K, grid, boxes, (7, 5), 0.5)
    assert np.linalg.norm(np.array(point.xyz) - centre) < 0.02
    # an object at the image's edge: the window stops there and the surface is what is seen
    shifted = np.full((H, W), 1.8, np.float32)
    shifted[96:160, 200:] = 1.2
    grid[:] = 0.0
    grid[7, 19] = 0.9
    point, _ = locate(shifted, K, grid, boxes, (7, 19), 0.5)
    assert point.box[0] <= 201 and point.box[2] == W  # (less its edge pixel)


def test_a_wide_object_is_one_detection_and_one_point():
    """Its evidence in two regions (a blob at one end, one cell at the other): decoding gives
    one detection, and two detections of it (the plain regions) locate one surface, merged."""
    depth, centre = wide_scene()
    grid, boxes = grid_and_boxes()
    grid[6:10, 5:8] = 0.8
    grid[7, 6] = 0.95
    grid[6:10, 8:14] = 0.3
    grid[7, 14] = 0.7
    peaks = decode_peaks(grid, boxes, 0.5)
    assert len(peaks) == 1
    point, why = locate(depth, K, grid, boxes, peak_cell(boxes, peaks[0].peak_x,
                                                         peaks[0].peak_y), 0.5)
    assert point is not None, why and np.linalg.norm(np.array(point.xyz) - centre) < 0.02
    plain = decode_peaks(grid, boxes, 0.5, low_fraction=1.0, merge_grow=0.0)
    assert len(plain) == 2
    located = []
    for pk in plain:  # each region on its own (no hysteresis): both find the whole surface
        pt, why = locate(depth, K, grid, boxes, peak_cell(boxes, pk.peak_x, pk.peak_y), 0.5,
                         low_fraction=1.0)
        assert pt is not None, why
        assert np.linalg.norm(np.array(pt.xyz) - centre) < 0.02
        located.append((0, pt))
    assert merge_located(located) == [0]
    assert merge_located([(0, located[0][1]), (1, located[1][1])]) == [0, 1]  # two objects


def test_weaker_cells_over_a_neighbour_do_not_join_its_surface():
    """The whole region's weaker cells reach a neighbour 30 cm behind, joined to the object by
    a slope with no depth jump (a rounded side): the depth band comes from the cells over the
    threshold, so the neighbour stays out (on the RGB-D siblings scene a band from the whole
    region put one point on a sibling, 16 cm off)."""
    depth = np.full((H, W), 1.8, np.float32)
    depth[80:160, 112:176] = 0.8
    depth[80:160, 176:196] = np.linspace(0.8, 1.1, 22)[1:-1]
    depth[80:160, 196:280] = 1.1
    v, u = np.mgrid[80:160, 112:176]
    centre = np.array([((u - K.cx) * 0.8 / K.fx).mean(), ((v - K.cy) * 0.8 / K.fy).mean(), 0.8])
    grid, boxes = grid_and_boxes()
    grid[6:9, 8:10] = 0.9
    grid[5:10, 7] = 0.3
    grid[5:10, 10:17] = 0.3  # over the slope and the neighbour
    point, why = locate(depth, K, grid, boxes, (7, 8), 0.5)
    assert point is not None, why
    assert point.box[2] < 196 and np.linalg.norm(np.array(point.xyz) - centre) < 0.03


def test_points_of_different_objects_are_not_merged():
    a = Point3D((0.0, 0.0, 1.0), (0.10, 0.10, 0.02), 500, (100, 100, 140, 140))
    b = Point3D((0.12, 0.0, 1.0), (0.10, 0.10, 0.02), 500, (148, 100, 188, 140))
    c = Point3D((0.03, 0.01, 1.0), (0.04, 0.04, 0.02), 80, (110, 104, 126, 120))  # on a
    assert merge_located([(0, a), (0, b), (0, c)]) == [0, 1]
    # overlapping surface boxes at one depth: one object (its points may be far apart when
    # one of them is a thin part); at another depth: an object in front of another
    e = Point3D((0.09, 0.0, 1.01), (0.05, 0.10, 0.02), 300, (104, 100, 150, 140))
    assert merge_located([(0, a), (0, e)]) == [0]
    d = Point3D((0.0, 0.0, 1.3), (0.10, 0.10, 0.02), 500, (100, 100, 140, 140))
    assert merge_located([(0, a), (0, d)]) == [0, 1]


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
