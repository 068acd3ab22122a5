"""The robot's workflow with the node as its own process over DDS: register from what the camera
sees (~/register_from_camera, ~/add_views, ~/get_object_views) and the 3D output from depth
(~/detections_3d). Mechanics use the tiny random model with threshold 0 (every frame then has
one detection region covering the image, so its 3D point is known from the depth alone)."""
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from photo_free import skimage_photos_only
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image, RegionOfInterest
from vision_msgs.msg import Detection3DArray

import node_harness as harness
from node_harness import (NODE, NS, image_msg, list_objects, object_views, register, remove,
                          start_node, stop_node, wait_ready)
from yolz_ros.ros.image_msgs import image_msg_to_array
from yolz_ros.msg import ObjectProbabilities
from yolz_ros.srv import AddViews, GetObjectViews, RegisterFromCamera

FX = FY = 100.0
W, H = 160, 120


def camera_info(width=W, height=H, stamp_sec=0):
    msg = CameraInfo(width=width, height=height, distortion_model="plumb_bob")
    cx, cy = (width - 1) / 2, (height - 1) / 2
    msg.k = [FX, 0.0, cx, 0.0, FY, cy, 0.0, 0.0, 1.0]
    msg.p = [FX, 0.0, cx, 0.0, 0.0, FY, cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    msg.header.stamp.sec = int(stamp_sec)
    msg.header.frame_id = "camera"
    return msg


def depth_msg(metres, encoding, stamp_sec, frame_id="camera"):
    """A depth image in 16UC1 (mm, 0 = none) or 32FC1 (m, NaN = none)."""
    if encoding == "16UC1":
        pixels = np.where(np.isfinite(metres), np.round(metres * 1000), 0).astype(np.uint16)
    else:
        pixels = metres.astype(np.float32)
    msg = image_msg(pixels, encoding, stamp_sec=stamp_sec, frame_id=frame_id)
    return msg


def scene_with_object(seed=0):
    """A 160x120 frame of noise with a 48x48 view of the made-up object at (60, 30)."""
    rng = np.random.default_rng(seed)
    frame = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    frame[30:78, 60:108] = object_views(1, seed=seed, size=48)[0]
    return frame


class Io:
    """The test's publishers (depth, camera_info) and subscriptions to the node's outputs."""

    def __init__(self, ros):
        self.ros = ros
        node = ros.node
        self.depth = node.create_publisher(Image, f"{NS}/depth", qos_profile_sensor_data)
        self.info = node.create_publisher(CameraInfo, f"{NS}/camera_info",
                                          qos_profile_sensor_data)
        self.out3d, self.grids = {}, {}
        self.subs = [
            node.create_subscription(Detection3DArray, f"{NODE}/detections_3d",
                                     lambda m: self.out3d.setdefault(m.header.stamp.sec, m), 10),
            node.create_subscription(ObjectProbabilities, f"{NODE}/probabilities",
                                     lambda m: self.grids.setdefault(m.header.stamp.sec, m), 10)]

    def send(self, rgb, stamp, depth=None, info=None, with_3d=False, timeout=20.0):
        """Publish a frame (and its depth / camera_info) until the node's ~/probabilities for
        its stamp arrive, and its ~/detections_3d too with ``with_3d`` (best effort can drop a
        message). Returns the ObjectProbabilities (and the Detection3DArray with ``with_3d``)."""
        ros = self.ros
        assert ros.spin_until(lambda: ros.frames.get_subscription_count() > 0, 10.0)

        def arrived():
            return stamp in self.grids and (not with_3d or stamp in self.out3d)

        def publish():
            if info is not None:
                self.info.publish(info)
            if depth is not None:
                self.depth.publish(depth)
            ros.frames.publish(image_msg(rgb, "rgb8", stamp_sec=stamp))
            ros.spin_until(arrived, 0.3)
            return arrived()
        assert ros.spin_until(publish, timeout), f"no output for stamp {stamp}"
        return (self.grids[stamp], self.out3d[stamp]) if with_3d else self.grids[stamp]

    def close(self):
        for s in self.subs:
            self.ros.node.destroy_subscription(s)
        self.ros.node.destroy_publisher(self.depth)
        self.ros.node.destroy_publisher(self.info)


@pytest.fixture(scope="class")
def depth_node(ros, tiny_model, tmp_path_factory):
    directory = tmp_path_factory.mktemp("depth_node")
    proc = start_node(tiny_model, directory / "library", directory / "node.log",
                      "use_depth:=true", "threshold:=0.0", "depth_timeout:=0.05")
    wait_ready(ros, proc)
    io = Io(ros)
    yield proc, io
    io.close()
    assert stop_node(proc) == 0, Path(proc.log_path).read_text()[-3000:]


def from_camera(ros, name, box=(0, 0, 0, 0), mask=None, camera="", replace=False,
                append=False):
    request = RegisterFromCamera.Request(name=name, camera=camera, replace=replace,
                                         append=append)
    request.box = RegionOfInterest(x_offset=box[0], y_offset=box[1], width=box[2],
                                   height=box[3])
    if mask is not None:
        request.mask = image_msg(mask, "mono8")
    return ros.call(RegisterFromCamera, f"{NODE}/register_from_camera", request)


def stored_views(ros, name):
    r = ros.call(GetObjectViews, f"{NODE}/get_object_views", GetObjectViews.Request(name=name))
    assert r.success, r.message
    return [np.dstack([rgb, a]) if a is not None else rgb
            for rgb, a in (image_msg_to_array(v) for v in r.views)]


def log_after(proc, start, text, timeout=10.0):
    """Wait until the node's log, past offset ``start``, contains ``text``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in Path(proc.log_path).read_text()[start:]:
            return True
        time.sleep(0.1)
    return False


# ------------------------------------------------------------------------------------------
class TestDepthNode:
    """One tiny-model node with use_depth (class scope: stopped before the real-model test
    starts its own /yolz in the same namespace)."""

    def test_register_from_camera_add_views_and_refusals(self, ros, depth_node):
        proc, io = depth_node
        frame = scene_with_object(0)
        start = len(Path(proc.log_path).read_text())
        from yolz_ros.ros.depth_input import FIRST_DEPTH_GRACE_S
        time.sleep(FIRST_DEPTH_GRACE_S)  # before it, no depth yet is not worth a warning
        io.send(frame, stamp=1)
        assert log_after(proc, start, "no depth image received yet")  # use_depth, none published

        r = from_camera(ros, "disc", box=(60, 30, 48, 48))
        assert r.success, r.message
        assert r.num_views_used == 1 and r.frame_header.stamp.sec == 1
        assert (r.box.x_offset, r.box.y_offset, r.box.width, r.box.height) == (60, 30, 48, 48)
        [view] = stored_views(ros, "disc")
        assert np.array_equal(view, frame[30:78, 60:108])  # cut from the frame the node held

        before = io.send(frame, stamp=2)
        # more views by service, then one more from the camera with a mask (stored as RGBA)
        more = AddViews.Request(name="disc", views=[image_msg(v, "rgb8")
                                                     for v in object_views(2, seed=5, size=48)])
        r = ros.call(AddViews, f"{NODE}/add_views", more)
        assert r.success and r.num_views_used == 3 and len(r.view_feedback) == 3, r.message
        mask = np.zeros((H, W), np.uint8)
        mask[34:74, 64:104] = 255
        r = from_camera(ros, "disc", mask=mask, append=True)
        assert r.success and r.num_views_used == 4, r.message
        assert (r.box.x_offset, r.box.y_offset, r.box.width, r.box.height) == (64, 34, 40, 40)
        listing = list_objects(ros)
        assert list(listing.names) == ["disc"] and list(listing.num_views) == [4]
        views = stored_views(ros, "disc")
        assert np.array_equal(views[0], frame[30:78, 60:108])  # stored views kept
        assert views[3].shape == (40, 40, 4) and (views[3][:, :, 3] == 255).all()
        # the embedding changed: the same frame gives other probabilities
        after = io.send(frame, stamp=3)
        assert not np.allclose(np.asarray(before.probabilities), np.asarray(after.probabilities))

        # refusals: clear messages, nothing changes, the node keeps running
        cases = [
            (dict(name="x", box=(0, 0, 0, 0)), "box"),
            (dict(name="x", box=(500, 500, 40, 40)), "inside"),
            (dict(name="x", box=(0, 0, 20, 20), camera="/no/such/camera"), "no camera"),
            (dict(name="x", mask=np.zeros((10, 10), np.uint8)), "frame's size"),
            (dict(name="x", mask=np.zeros((H, W), np.uint8)), "empty"),
            (dict(name="ghost", box=(0, 0, 20, 20), append=True), "no object named"),
            (dict(name="disc", box=(0, 0, 20, 20)), "already exists"),
            (dict(name="disc", box=(0, 0, 20, 20), append=True, replace=True), "either"),
            (dict(name="../bad", box=(0, 0, 20, 20)), "invalid object name"),
        ]
        for kwargs, text in cases:
            r = from_camera(ros, **kwargs)
            assert not r.success and text in r.message, (kwargs, r.message)
        r = ros.call(AddViews, f"{NODE}/add_views", AddViews.Request(name="disc", views=[]))
        assert not r.success and "no views" in r.message
        assert list(list_objects(ros).num_views) == [4]
        assert proc.poll() is None


    def test_3d_point_mm_and_m_agree_and_bad_depth_is_reported(self, ros, depth_node):
        proc, io = depth_node
        if "disc" not in list_objects(ros).names:
            assert register(ros, "disc", object_views(2)).success
        frame = scene_with_object(1)
        # a wall at 2 m, the object's square at 1 m: with threshold 0 the region is the whole
        # image; the strongest cells decide the reference depth, so the point is either surface
        metres = np.full((H, W), 2.0, np.float32)
        out = {}
        for stamp, encoding in ((10, "16UC1"), (11, "32FC1")):
            _, m = io.send(frame, stamp, depth=depth_msg(metres, encoding, stamp),
                           info=camera_info(stamp_sec=stamp), with_3d=True)
            assert m.header.frame_id == "camera" and len(m.detections) >= 1
            out[encoding] = m.detections[0]
        a, b = (out[e].results[0].pose.pose.position for e in ("16UC1", "32FC1"))
        assert abs(a.z - 2.0) < 1e-3 and abs(b.z - 2.0) < 1e-3
        assert max(abs(a.x - b.x), abs(a.y - b.y), abs(a.z - b.z)) < 1e-3
        # the whole image at 2 m: the mean point is the image centre's ray
        assert abs(a.x) < 0.02 and abs(a.y) < 0.02
        assert out["16UC1"].results[0].hypothesis.class_id == "disc"

        start = len(Path(proc.log_path).read_text())
        # all-NaN depth: the frame is published without 3D points, with a warning
        nan = np.full((H, W), np.nan, np.float32)
        _, m = io.send(frame, 12, depth=depth_msg(nan, "32FC1", 12),
                       info=camera_info(stamp_sec=12), with_3d=True)
        assert len(m.detections) == 0
        assert log_after(proc, start, "no valid depth")
        # a camera_info of another size (for this frame's stamp): no 3D output, a warning
        for _ in range(5):  # best effort: make sure it is there before the frame
            io.info.publish(camera_info(320, 240, 13))
            ros.spin_for(0.05)
        io.send(frame, 13, depth=depth_msg(metres, "16UC1", 13), info=camera_info(320, 240, 13))
        assert log_after(proc, start, "camera_info is for 320x240")
        # depth much older than the frame (late / out of sync): no 3D output, a warning
        io.send(frame, 14, depth=depth_msg(metres, "16UC1", 4), info=camera_info(stamp_sec=14))
        assert log_after(proc, start, "no depth image within")
        # a depth image of the wrong size (not registered to colour)
        io.send(frame, 15, depth=depth_msg(np.ones((60, 80), np.float32), "32FC1", 15),
                info=camera_info(stamp_sec=15))
        assert log_after(proc, start, "registered to the colour image")
        # a depth encoding that is not depth
        io.send(frame, 16, depth=image_msg(frame, "rgb8", stamp_sec=16),
                info=camera_info(stamp_sec=16))
        assert log_after(proc, start, "depth encoding 'rgb8' is not supported")
        ros.spin_for(1.0)
        for stamp in (13, 14, 15, 16):
            assert stamp not in io.out3d, stamp
        assert proc.poll() is None and list(list_objects(ros).names) == ["disc"]


    def test_clis_register_from_camera_and_library_round_trip(self, ros, depth_node,
                                                                tmp_path):
        """The operator's commands: register_from_camera --box on the newest frame, --append,
        then library export -> remove -> import gives the same object back, re-embedded."""
        proc, io = depth_node
        frame = scene_with_object(2)
        io.send(frame, stamp=30)

        def cli(*args):
            """Run a CLI while the camera keeps streaming ``frame`` (as a camera would)."""
            run = subprocess.Popen([sys.executable, "-m", *args, "--node", NODE], text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   env=os.environ.copy(), cwd=harness.ROOT)
            stamp = 100
            while run.poll() is None:
                stamp += 1
                ros.frames.publish(image_msg(frame, "rgb8", stamp_sec=stamp))
                ros.spin_for(0.1)
            return subprocess.CompletedProcess(run.args, run.returncode, run.stdout.read(), "")
        out = cli("yolz_ros.cli.register_from_camera", "cup", "--box", "60", "30", "108", "78")
        assert out.returncode == 0, out.stdout + out.stderr
        assert "ok: registered 'cup'" in out.stdout and "box x=60 y=30 48x48" in out.stdout
        out = cli("yolz_ros.cli.register_from_camera", "cup", "--box", "50", "20", "118", "88",
                  "--append")
        assert out.returncode == 0 and "now 2 views" in out.stdout, out.stdout
        out = cli("yolz_ros.cli.register_from_camera", "cup", "--box", "0", "0", "20", "20",
                  "--camera", "/nowhere")
        assert out.returncode == 1 and "no camera '/nowhere'" in out.stdout, out.stdout
        before = stored_views(ros, "cup")
        before_grid = np.asarray(io.send(frame, stamp=31).probabilities)

        archive = tmp_path / "cup.yolz"
        out = cli("yolz_ros.cli.library", "export", "cup", "-o", str(archive))
        assert out.returncode == 0 and archive.is_file(), out.stdout + out.stderr
        assert remove(ros, "cup").success
        assert "cup" not in list_objects(ros).names
        out = cli("yolz_ros.cli.library", "import", str(archive))
        assert out.returncode == 0, out.stdout + out.stderr
        listing = list_objects(ros)
        assert dict(zip(listing.names, listing.num_views))["cup"] == 2
        after = stored_views(ros, "cup")
        assert all(np.array_equal(a, b) for a, b in zip(before, after))
        # re-embedded from the same views by the same model: the same probabilities
        after_grid = np.asarray(io.send(frame, stamp=32).probabilities)
        assert np.allclose(before_grid, after_grid, atol=1e-5)
        # importing again needs --replace; under another name it is a second object
        out = cli("yolz_ros.cli.library", "import", str(archive))
        assert out.returncode == 1 and "already exists" in out.stdout, out.stdout
        out = cli("yolz_ros.cli.library", "import", str(archive), "--name", "cup2")
        assert out.returncode == 0 and "cup2" in list_objects(ros).names, out.stdout
        # a hostile archive is refused before anything reaches the node
        bad = tmp_path / "bad.yolz"
        with zipfile.ZipFile(bad, "w") as z:
            z.writestr("manifest.json", "{}")
            z.writestr("../../escape.png", b"x")
        out = cli("yolz_ros.cli.library", "import", str(bad))
        assert out.returncode == 1 and "error:" in out.stdout, out.stdout
        # watch prints one line per frame and stops after --frames; with no node it says so
        out = cli("yolz_ros.cli.watch", "--frames", "2", "--timeout", "20")
        lines = out.stdout.strip().splitlines()
        assert out.returncode == 0 and len(lines) == 2, out.stdout
        assert all("cup" in line for line in lines), out.stdout
        out = subprocess.run([sys.executable, "-m", "yolz_ros.cli.watch", "--node", "/nowhere",
                              "--timeout", "1"], text=True, capture_output=True, timeout=60,
                             env=os.environ.copy(), cwd=harness.ROOT)
        assert out.returncode == 1 and "no detections from /nowhere/detections" in out.stdout
        assert proc.poll() is None


# ------------------------------------------------------------------------------------------
# the shipped model on a rendered RGB-D scene (training/data/depth_scene.py)
TARGET_POSES = [((-0.14, -0.12, 0.0), 0.6), ((0.13, -0.10, 0.0), 1.3),
                ((0.03, -0.14, 0.0), 2.4), ((-0.05, -0.08, 0.0), 3.5)]


def render_rgbd_scenes(data_dir):
    """The held-out jar (test split, never trained on) on a table with four other products
    (other families) behind it, seen by the demo camera at 640x480: a still frame to register
    from, the jar at 4 other places and yaws in front of the others, and a frame without it.
    Returns (intrinsics, still, moving, absent); each frame (rgb, depth m, target mask)."""
    from training.data import depth_scene as ds
    camera, size = ds.scene_camera(), (480, 640)
    target, others = ds.scene_objects(0)
    background = ds._backgrounds(np.random.default_rng([0, 0]), data_dir)

    def frame(pose):
        placed = [(spec, (x, y + 0.05, z), 0.0) for spec, (x, y, z) in others]  # behind
        if pose is not None:
            placed.insert(0, (target, pose[0], pose[1]))
        rgb, depth, ids = ds.render_frame(placed, camera, background, size, data_dir)
        return rgb, depth, (ids == 0) if pose is not None else np.zeros(size, bool)
    still = frame(((0.0, -0.05, 0.0), 0.0))
    return (camera.intrinsics(size), still, [frame(p) for p in TARGET_POSES], frame(None))


@pytest.fixture(scope="module")
def rgbd_scenes(tmp_path_factory):
    pytest.importorskip("pybullet")
    with skimage_photos_only():
        yield render_rgbd_scenes(str(tmp_path_factory.mktemp("rgbd")))


def intrinsics_info(intrinsics, stamp_sec):
    msg = camera_info(intrinsics.width, intrinsics.height, stamp_sec)
    msg.k = list(intrinsics.k)
    msg.p = list(intrinsics.p)
    return msg


def test_register_from_camera_then_find_it_in_3d_real_model(ros, tmp_path, rgbd_scenes):
    """Point at the jar in one frame, then find it in the next frames and say where it is:
    the published point within 2 cm (or 2 % of the range) of the centre of its visible
    surface, depth sent in mm and in m."""
    if not (harness.REAL_MODEL / "model.json").exists():
        pytest.skip(f"the trained model {harness.REAL_MODEL} does not exist yet")
    from training.data.depth_scene import box_of, visible_centre
    intrinsics, still, moving, absent = rgbd_scenes
    proc = start_node(harness.REAL_MODEL, tmp_path / "library", tmp_path / "node.log",
                      "use_depth:=true")
    io = Io(ros)
    try:
        wait_ready(ros, proc, timeout=60)
        rgb, depth, mask = still
        io.send(rgb, 200, depth=depth_msg(depth, "16UC1", 200),
                info=intrinsics_info(intrinsics, 200))
        x0, y0, x1, y1 = box_of(mask)
        r = from_camera(ros, "jar", box=(x0 - 4, y0 - 4, x1 - x0 + 8, y1 - y0 + 8))
        assert r.success and r.frame_header.stamp.sec == 200, r.message

        found, errors = 0, []
        for i, (rgb, depth, mask) in enumerate(moving):
            stamp = 201 + i
            encoding = ("16UC1", "32FC1")[i % 2]
            grid, m = io.send(rgb, stamp, depth=depth_msg(depth, encoding, stamp),
                              info=intrinsics_info(intrinsics, stamp), with_3d=True)
            assert grid.detections, f"frame {i}: nothing detected"
            top = max(grid.detections, key=lambda d: d.score)
            if not mask[int(top.peak_y), int(top.peak_x)]:
                continue  # the peak is on another product: a detection miss, not a 3D one
            found += 1
            [d3] = [d for d in m.detections if abs(d.results[0].hypothesis.score - top.score)
                    < 1e-6]
            assert d3.results[0].hypothesis.class_id == "jar"
            p = d3.bbox.center.position
            truth = visible_centre(depth, mask, intrinsics)
            errors.append(float(np.linalg.norm(np.array([p.x, p.y, p.z]) - truth)))
            assert errors[-1] <= max(0.02, 0.02 * truth[2]), (i, encoding, errors[-1])
            assert m.header.frame_id == "camera"
        assert found >= 3, f"the jar was found in {found} of {len(moving)} frames"

        rgb, depth, _ = absent
        grid = io.send(rgb, 220, depth=depth_msg(depth, "16UC1", 220),
                       info=intrinsics_info(intrinsics, 220))
        assert not grid.detections  # no jar: nothing above the threshold
    finally:
        io.close()
        assert stop_node(proc) == 0, Path(proc.log_path).read_text()[-3000:]
