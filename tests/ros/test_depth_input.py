"""Depth messages (yolz_ros/ros/depth_input.py): units from the encoding, header checks,
camera_info, the per-camera depth store, and the target-frame transform (yolz_ros/ros/transform.py),
on real sensor_msgs / geometry_msgs messages without ROS traffic. The maths from depth to 3D is
runtime: tests/unit/test_depth.py."""
import threading
import time

import numpy as np
import pytest
from geometry_msgs.msg import Transform
from sensor_msgs.msg import CameraInfo, Image

from yolz_ros.ros.depth_input import DepthStore, check_depth_header, depth_to_metres
from yolz_ros.ros.transform import apply_transform
from yolz_ros.runtime.depth import DepthError, Intrinsics, locate
from yolz_ros.runtime.geometry import Letterbox, cell_boxes

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


def test_mm_quantisation_stays_within_a_millimetre():
    """A 16UC1 (mm) depth image locates the same point as the float depth it came from."""
    z_box, z_wall = 1.2345, 1.5
    depth = np.full((H, W), z_wall, np.float32)
    depth[80:160, 112:208] = z_box  # a box on the 16 px cells of rows 5-9, columns 7-12
    mm = np.round(depth * 1000).astype(np.uint16)
    lb = Letterbox.fit((H, W), (H, W))
    boxes, _ = cell_boxes(lb, H // 16, W // 16, 16)
    grid = np.zeros((H // 16, W // 16), np.float32)
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


def test_no_depth_yet_is_only_news_after_the_grace_period():
    """A young store without depth is 'starting' (the node does not warn); an old one, or one
    that has had a depth image, is not."""
    from yolz_ros.ros import depth_input
    store = DepthStore()
    assert store.starting()
    store.created -= depth_input.FIRST_DEPTH_GRACE_S
    assert not store.starting()
    fresh = DepthStore()
    fresh.put_depth(depth_image(np.ones((2, 2), np.float32), "32FC1", stamp=1.0))
    assert not fresh.starting()


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
