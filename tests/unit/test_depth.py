"""Depth -> 3D, the crop of a camera view and the target-frame transform, without ROS traffic."""
import threading
import time

import numpy as np
import pytest
from geometry_msgs.msg import Transform
from sensor_msgs.msg import CameraInfo, Image

from yolz_ros.runtime.crop import CropError, crop_view
from yolz_ros.runtime.depth import DepthError, Intrinsics, locate
from yolz_ros.ros.depth_input import DepthStore, check_depth_header, depth_to_metres
from yolz_ros.runtime.geometry import Letterbox, cell_boxes
from yolz_ros.ros.transform import apply_transform

W, H = 320, 240
K = Intrinsics(fx=250.0, fy=250.0, cx=159.5, cy=119.5, width=W, height=H)


def depth_image(pixels, encoding, big_endian=False, stamp=0.0):
    pixels = np.ascontiguousarray(pixels)
    if big_endian:
        pixels = pixels.astype(pixels.dtype.newbyteorder(">"))
    msg = Image(height=pixels.shape[0], width=pixels.shape[1], encoding=encoding,
                is_bigendian=int(big_endian), step=pixels.strides[0], data=pixels.tobytes())
    msg.header.stamp.sec = int(stamp)
    msg.header.stamp.nanosec = int(round((stamp % 1) * 1e9))
    return msg


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


def test_units_from_the_encoding():
    mm = np.array([[0, 1000], [1500, 65535]], np.uint16)
    m = depth_to_metres(depth_image(mm, "16UC1"))
    assert np.isnan(m[0, 0]) and m[0, 1] == pytest.approx(1.0) and m[1, 0] == pytest.approx(1.5)
    assert np.allclose(depth_to_metres(depth_image(mm, "16UC1", big_endian=True)), m,
                       equal_nan=True)
    f = np.array([[np.nan, 1.0], [-2.0, np.inf]], np.float32)
    got = depth_to_metres(depth_image(f, "32FC1"))
    assert got[0, 1] == 1.0 and np.isnan(got[0, 0]) and np.isnan(got[1, 0]) and np.isnan(got[1, 1])
    for bad, text in ((depth_image(np.zeros((2, 2, 3), np.uint8), "rgb8"), "not supported"),
                      (Image(width=4, height=4, encoding="16UC1", step=8, data=b"\0" * 10),
                       "data has"), (Image(width=0, height=0, encoding="32FC1"), "empty")):
        with pytest.raises(DepthError, match=text):
            check_depth_header(bad, 10_000)


def test_camera_info_is_checked():
    info = CameraInfo(width=W, height=H, k=[250.0, 0, 159.5, 0, 250.0, 119.5, 0, 0, 1])
    assert Intrinsics.from_camera_info(info) == K
    K.check_image(W, H, "colour image")
    with pytest.raises(DepthError, match="camera_info is for 320x240"):
        K.check_image(640, 480, "colour image")
    with pytest.raises(DepthError, match="calibrated"):
        Intrinsics.from_camera_info(CameraInfo(width=W, height=H))  # K all zero


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


def test_mm_quantisation_stays_within_a_millimetre():
    depth, _, centre = box_scene(z_box=1.2345)
    mm = np.round(depth * 1000).astype(np.uint16)
    grid, boxes = grid_and_boxes()
    grid[5:10, 7:13] = 0.9
    a, _ = locate(depth, K, grid, boxes, (7, 10), 0.3)
    b, _ = locate(depth_to_metres(depth_image(mm, "16UC1")), K, grid, boxes, (7, 10), 0.3)
    assert np.abs(np.array(a.xyz) - np.array(b.xyz)).max() < 0.001


def test_depth_store_matches_by_stamp_and_waits_for_a_late_one():
    store = DepthStore(keep=3)
    msg, why = store.match(10.0, 0.02, 0.0)
    assert msg is None and "no depth image received yet" in why
    for t in (9.0, 9.5, 10.005):
        store.put_depth(depth_image(np.ones((2, 2), np.float32), "32FC1", stamp=t))
    msg, dt = store.match(10.0, 0.02, 0.0)
    assert msg is not None and dt == pytest.approx(0.005, abs=1e-6)
    msg, why = store.match(11.0, 0.02, 0.0)
    assert msg is None and "nearest is -0.995 s" in why
    late = depth_image(np.ones((2, 2), np.float32), "32FC1", stamp=12.0)
    threading.Timer(0.05, store.put_depth, (late,)).start()
    started = time.monotonic()
    msg, dt = store.match(12.0, 0.02, 1.0)  # arrives while the frame waits
    assert msg is late and time.monotonic() - started < 0.9
    # a depth stream that went silent is not waited for (frames would queue behind it)
    silent = DepthStore()
    started = time.monotonic()
    assert silent.match(20.0, 0.02, 1.0)[0] is None and time.monotonic() - started < 0.2


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


def test_transform_rotates_then_translates():
    t = Transform()
    t.translation.x, t.translation.y, t.translation.z = 1.0, 2.0, 3.0
    # 90 degrees about z: x -> y
    t.rotation.z, t.rotation.w = np.sin(np.pi / 4), np.cos(np.pi / 4)
    assert np.allclose(apply_transform(t, (1.0, 0.0, 0.5)), (1.0, 3.0, 3.5))
    # the optical -> camera-body rotation (x fwd, y left, z up): optical z forward -> body x
    t = Transform()
    t.rotation.x, t.rotation.y, t.rotation.z, t.rotation.w = -0.5, 0.5, -0.5, 0.5
    assert np.allclose(apply_transform(t, (0.0, 0.0, 2.0)), (2.0, 0.0, 0.0))
    assert np.allclose(apply_transform(t, (1.0, 0.0, 0.0)), (0.0, -1.0, 0.0))
