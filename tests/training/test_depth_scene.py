"""The rendered RGB-D ground truth (training/data/depth_scene.py) and the RGB-D camera stand-in
(camera_player --depth / --camera-info) over real DDS. Small renders, photo-free."""
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from photo_free import skimage_photos_only

pytest.importorskip("pybullet")
from training.data import depth_scene as ds  # noqa: E402
from training.data.products import ProductSpec  # noqa: E402
from yolz_ros.cli import camera_player  # noqa: E402

SMALL = (96, 128)  # H, W of the test renders


def _box_spec(size=(0.12, 0.02, 0.1)):
    return ProductSpec("test", 0, "box", size)


def _backdrop():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)


def _corners(centre, size):
    """The 8 corners [8, 3] (world) of a yaw-0 box whose base centre is `centre`."""
    w, d, h = size
    x, y, z = centre
    return np.array([(x + sx * w / 2, y + sy * d / 2, z + sz * h)
                     for sx, sy, sz in itertools.product((-1, 1), (-1, 1), (0, 1))])


# ----------------------------------------------------------------------------- projection

def test_intrinsics_match_pybullet(tmp_path, photo_free):
    """The silhouette of a box, off-centre in both axes (a y flip or a wrong centre shows), seen
    from above at an angle, covers exactly the pixels whose centres its projected corners
    enclose; a known 3D point renders at the pixel it projects to."""
    camera = ds.Camera(eye=(0.05, -0.8, 0.35), target=(0.0, 0.0, 0.1), fov_deg=40.0)
    intr = camera.intrinsics(SMALL)
    spec = _box_spec()
    for base in ((0.12, 0.05, 0.0), (-0.1, -0.05, 0.06)):
        _, depth, ids = ds.render_frame([(spec, base, 0.0)], camera, _backdrop(), SMALL,
                                        str(tmp_path))
        uv = intr.project(camera.to_optical(_corners(base, spec.size)))
        x0, y0, x1, y1 = ds.box_of(ids == 0)
        # pixels with centres inside [u_min, u_max]: ceil(u_min) .. floor(u_max)
        expected = (np.ceil(uv[:, 0].min()), np.ceil(uv[:, 1].min()),
                    np.floor(uv[:, 0].max()) + 1, np.floor(uv[:, 1].max()) + 1)
        assert np.abs(np.subtract((x0, y0, x1, y1), expected)).max() <= 1, (base, expected)
        # the centre of the top face (a known surface point) renders at its pixel; the depth
        # there is the z where that pixel's ray meets the (slanted) top face
        top_z = base[2] + spec.size[2]
        u, v = np.round(intr.project(camera.to_optical([[base[0], base[1], top_z]]))[0])
        u, v = int(u), int(v)
        assert ids[v, u] == 0
        ray = camera.rotation().T @ [(u - intr.cx) / intr.fx, (v - intr.cy) / intr.fy, 1.0]
        z = (top_z - camera.eye[2]) / ray[2]  # optical z = ray length in units of its z part
        assert abs(depth[v, u] - z) < 0.005


def test_depth_of_fronto_parallel_face(tmp_path, photo_free):
    """Looking straight at a box face: depth at the face centre = the true distance (5 mm), and
    the face's image extent matches the pinhole projection to a pixel."""
    camera = ds.Camera(eye=(0.0, -1.0, 0.05), target=(0.0, 0.0, 0.05))
    spec = _box_spec((0.2, 0.02, 0.1))
    rgb, depth, ids = ds.render_frame([(spec, (0.0, 0.0, 0.0), 0.0)], camera, _backdrop(),
                                      SMALL, str(tmp_path))
    assert rgb.shape == (*SMALL, 3) and depth.dtype == np.float32 and ids.shape == SMALL
    assert np.isfinite(depth).all()  # backdrop behind everything
    intr = camera.intrinsics(SMALL)
    face = np.array([[0.0, -0.01, 0.05]])  # world: the centre of the face towards the camera
    u, v = np.round(intr.project(camera.to_optical(face))[0]).astype(int)
    assert ids[v, u] == 0
    assert abs(float(depth[v, u]) - 0.99) < 0.005
    # the face is 0.2 m wide at 0.99 m: fx * 0.2 / 0.99 pixels
    x0, _, x1, _ = ds.box_of(ids == 0)
    assert abs((x1 - x0) - intr.fx * 0.2 / 0.99) <= 1.0
    # behind the box: the wall at y = WALL_Y
    assert abs(float(depth[2, 2]) - camera.to_optical([[0, ds.WALL_Y, 0]])[0, 2]) < 0.2


def test_intrinsics_formula():
    camera = ds.Camera(eye=(0, -1, 0), target=(0, 0, 0), fov_deg=60.0)
    intr = camera.intrinsics((480, 640))
    assert intr.fx == pytest.approx(240 / np.tan(np.radians(30)))
    assert (intr.cx, intr.cy, intr.width, intr.height) == (320, 239, 640, 480)
    # optical frame: x right, y down, z forward
    np.testing.assert_allclose(camera.to_optical([[0.1, 0.0, 0.2]]), [[0.1, -0.2, 1.0]],
                               atol=1e-12)


# ----------------------------------------------------------------------------- calibration

def test_camera_info_yaml_round_trip():
    import yaml
    intr = ds.Intrinsics(fx=579.41, fy=580.2, cx=320.0, cy=239.0, width=640, height=480)
    text = intr.to_camera_info_yaml("rgbd")
    doc = yaml.safe_load(text)
    assert doc["image_width"] == 640 and doc["camera_name"] == "rgbd"
    assert doc["distortion_model"] == "plumb_bob"
    assert doc["camera_matrix"]["data"] == [579.41, 0, 320, 0, 580.2, 239, 0, 0, 1]
    assert doc["projection_matrix"]["data"][:7] == [579.41, 0, 320, 0, 0, 580.2, 239]
    assert ds.Intrinsics.from_camera_info_yaml(text) == intr
    assert intr.k[2] == 320.0 and intr.p[6] == 239.0 and len(intr.p) == 12
    with pytest.raises(ValueError):
        ds.Intrinsics.from_camera_info_yaml("image_width: 640\n")
    with pytest.raises(ValueError):
        ds.Intrinsics.from_camera_info_yaml("camera_matrix: [unclosed\n")


def test_visible_centre_of_a_plane():
    intr = ds.Intrinsics(fx=100.0, fy=100.0, cx=50.0, cy=40.0, width=100, height=80)
    depth = np.full((80, 100), 2.0, np.float32)
    mask = np.zeros((80, 100), bool)
    mask[30:51, 60:81] = True  # rows 30..50 (centre 40), columns 60..80 (centre 70)
    depth[30, 60] = np.nan  # invalid pixels of the mask are left out ...
    depth[50, 80] = 0.0
    mask[0, 0] = True  # ... and so is a mask pixel without depth far away
    depth[0, 0] = np.nan
    centre = ds.visible_centre(depth, mask, intr)
    np.testing.assert_allclose(centre, [(70 - 50) * 2 / 100, 0.0, 2.0], atol=1e-6)
    # a tilted plane z = 1 + 0.01 u: the mean of the back-projected points, not of z alone
    u, v = np.meshgrid(np.arange(100), np.arange(80))
    tilted = (1 + 0.01 * u).astype(np.float32)
    pts = intr.backproject(u[mask], v[mask], tilted[mask])
    np.testing.assert_allclose(ds.visible_centre(tilted, mask, intr), pts.mean(axis=0), atol=1e-6)
    assert ds.visible_centre(depth, np.zeros_like(mask), intr) is None


def test_depth_png_millimetre_round_trip(tmp_path):
    rng = np.random.default_rng(3)
    depth = rng.uniform(0.3, 6.0, (20, 30)).astype(np.float32)
    depth[3, 4] = np.nan
    path = tmp_path / "d.png"
    ds.write_depth_png(path, depth)
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert raw.dtype == np.uint16 and raw[3, 4] == 0
    assert raw[0, 0] == round(float(depth[0, 0]) * 1000)
    back = ds.read_depth_png(path)
    assert np.isnan(back[3, 4]) and np.isnan(back).sum() == 1
    assert np.nanmax(np.abs(back - depth)) <= 0.0005 + 1e-6
    cv2.imwrite(str(tmp_path / "eight.png"), np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError):
        ds.read_depth_png(tmp_path / "eight.png")


# ----------------------------------------------------------------------------- sequences

@pytest.fixture(scope="module")
def scene_dir(tmp_path_factory):
    """A small scene folder: 2 still frames, 10 moving (8 and 9 without the target)."""
    root = tmp_path_factory.mktemp("depth_scene")
    with skimage_photos_only():
        truth = ds.make_sequence(root / "scene", frames_still=2, frames_moving=10, seed=1,
                                 size=(120, 160), data_dir=str(root / "data"))
    return root / "scene", truth


def test_make_sequence_files(scene_dir):
    out, truth = scene_dir
    for part, n in (("still", 2), ("moving", 10)):
        for sub in ("color", "depth", "mask"):
            assert sorted(p.name for p in (out / part / sub).iterdir()) == \
                [f"{i:06d}.png" for i in range(n)]
        assert len(truth["parts"][part]) == n
    assert cv2.imread(str(out / "still" / "color" / "000000.png")).shape == (120, 160, 3)
    views = sorted((out / "views").iterdir())
    assert [p.name for p in views] == [f"view_{j:03d}.png" for j in range(8)]
    assert cv2.imread(str(views[0]), cv2.IMREAD_UNCHANGED).shape == (128, 128, 4)
    assert json.loads((out / "truth.json").read_text()) == truth
    assert truth["target"]["product_id"] == 28 and truth["target"]["split"] == "test"
    intr = ds.Intrinsics.from_camera_info_yaml((out / "camera_info.yaml").read_text())
    assert (intr.width, intr.height) == (160, 120)
    still = truth["parts"]["still"][0]
    assert still["visible"]
    x0, y0, x1, y1 = still["box"]
    assert 0.12 <= (y1 - y0) / 120 <= 0.3  # the target: ~15-25% of the image height
    visible = [f["visible"] for f in truth["parts"]["moving"]]
    assert visible == [True] * 8 + [False] * 2
    assert truth["parts"]["moving"][8]["centre_m"] is None
    centres = np.array([f["centre_m"] for f in truth["parts"]["moving"][:8]])
    assert np.ptp(centres[:, 0]) > 0.1  # the target does move
    assert truth["register_command"].startswith("ros2 run yolz_ros register_from_camera jar "
                                                "--box ")


def test_truth_matches_the_saved_depth(scene_dir):
    """What the node sees (the depth PNG, camera_info.yaml) back-projects to truth.json's
    centre at the target's pixels, and truth's box is the mask's."""
    out, truth = scene_dir
    intr = ds.Intrinsics.from_camera_info_yaml((out / "camera_info.yaml").read_text())
    checked = 0
    for part, frames in truth["parts"].items():
        for f in frames:
            name = f"{f['frame']:06d}.png"
            mask = cv2.imread(str(out / part / "mask" / name), cv2.IMREAD_GRAYSCALE) > 0
            assert int(mask.sum()) == f["visible_pixels"]
            if not f["visible"]:
                continue
            depth = ds.read_depth_png(out / part / "depth" / name)
            v, u = np.nonzero(mask & np.isfinite(depth))
            z = depth[v, u]
            centre = np.stack([(u - intr.cx) * z / intr.fx, (v - intr.cy) * z / intr.fy, z],
                              axis=1).mean(axis=0)
            assert np.abs(centre - f["centre_m"]).max() < 0.005, (part, f["frame"])
            assert ds.box_of(mask) == f["box"]
            checked += 1
    assert checked == 10


def test_make_sequence_is_deterministic(scene_dir, tmp_path):
    _, truth = scene_dir
    target, others = ds.scene_objects(1)
    assert [s.name for s, _ in others] == truth["others"] and truth["siblings"] is False
    assert all(s.family in ds.OTHER_FAMILIES for s, _ in others)  # no sibling by default
    assert len({s.family for s, _ in others}) == 4
    _, hard = ds.scene_objects(1, siblings=True)
    assert all(s.product_id in ds.SIBLING_IDS for s, _ in hard[:2])
    assert all(s.family in ds.OTHER_FAMILIES for s, _ in hard[2:])


# ----------------------------------------------------------------------------- camera_player

def _rgbd_folder(root: Path, n=3, size=(24, 32)):
    rng = np.random.default_rng(5)
    (root / "color").mkdir(parents=True)
    (root / "depth").mkdir()
    depths = []
    for i in range(n):
        cv2.imwrite(str(root / "color" / f"{i:06d}.png"),
                    rng.integers(0, 256, (*size, 3), dtype=np.uint8))
        mm = rng.integers(300, 3000, size).astype(np.uint16)
        mm[0, :] = 0  # a row without data
        cv2.imwrite(str(root / "depth" / f"{i:06d}.png"), mm)
        depths.append(mm)
    intr = ds.Intrinsics(fx=30.0, fy=31.0, cx=16.0, cy=11.0, width=size[1], height=size[0])
    (root / "info.yaml").write_text(intr.to_camera_info_yaml())
    return depths, intr


class _Listener:
    """The test's own rclpy context with subscriptions to image, depth and camera_info."""

    def __init__(self, ns, topics=("image", "depth", "camera_info")):
        import rclpy
        from sensor_msgs.msg import CameraInfo, Image
        self.rclpy = rclpy
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("depth_scene_test", context=self.context)
        self.executor = rclpy.executors.SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.got = {"image": [], "depth": [], "camera_info": []}
        self.ns, self.kinds = ns, {"image": Image, "depth": Image, "camera_info": CameraInfo}
        for topic in topics:
            self.subscribe(topic)

    def subscribe(self, topic):
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        self.node.create_subscription(self.kinds[topic], f"{self.ns}/{topic}",
                                      lambda msg, t=topic: self.got[t].append(msg), qos)

    def spin_until(self, done, timeout):
        from node_harness import spin_until
        return spin_until(self.executor, done, timeout)

    def close(self):
        self.executor.shutdown()
        self.node.destroy_node()
        self.rclpy.try_shutdown(context=self.context)


def _play(folder, ns, *extra):
    """camera_player on _rgbd_folder's colour, depth and camera_info: 20 Hz, reliable, in ns."""
    return subprocess.Popen(
        [sys.executable, "-m", "yolz_ros.cli.camera_player", str(folder / "color"),
         "--depth", str(folder / "depth"), "--camera-info", str(folder / "info.yaml"),
         "--rate", "20", "--reliable", *extra, "--ros-args", "-r", f"__ns:={ns}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _stop(player) -> str:
    """The player's output, after killing it if it still runs."""
    if player.poll() is None:
        player.kill()
    return player.communicate(timeout=10)[0]


@pytest.mark.parametrize("encoding", ["16UC1", "32FC1"])
def test_camera_player_publishes_rgbd(tmp_path, encoding):
    pytest.importorskip("rclpy")
    depths, intr = _rgbd_folder(tmp_path)
    ns = f"/dscene_{os.getpid()}_{encoding.lower()}"
    listener = _Listener(ns)
    try:
        player = _play(tmp_path, ns, "--depth-encoding", encoding, "--frame-id", "rgbd_optical",
                       "--wait", "20")
        try:
            ok = listener.spin_until(lambda: all(len(v) >= 3 for v in listener.got.values()),
                                     40.0)
            listener.spin_until(lambda: player.poll() is not None, 10.0)
        finally:
            output = _stop(player)
        assert ok, (output, {k: len(v) for k, v in listener.got.items()})
    finally:
        got = listener.got
        listener.close()
    assert player.returncode == 0, output
    for i in range(3):
        image, depth, info = got["image"][i], got["depth"][i], got["camera_info"][i]
        assert image.header == depth.header == info.header
        assert image.header.frame_id == "rgbd_optical"
        assert depth.encoding == encoding and (depth.height, depth.width) == (24, 32)
        if encoding == "16UC1":
            pixels = np.frombuffer(bytes(depth.data), np.uint16).reshape(24, 32)
            np.testing.assert_array_equal(pixels, depths[i])
        else:
            pixels = np.frombuffer(bytes(depth.data), np.float32).reshape(24, 32)
            assert np.isnan(pixels[0]).all()
            np.testing.assert_allclose(pixels[1:], depths[i][1:] / 1000.0, rtol=1e-6)
        assert depth.step == 32 * (2 if encoding == "16UC1" else 4)
        np.testing.assert_allclose(info.k, intr.k)
        np.testing.assert_allclose(info.p, intr.p)
        assert (info.width, info.height, info.distortion_model) == (32, 24, "plumb_bob")
        assert list(info.d) == [0.0] * 5
    stamps = [(m.header.stamp.sec, m.header.stamp.nanosec) for m in got["image"][:3]]
    assert len(set(stamps)) == 3  # one stamp per frame, shared by the frame's messages


def test_camera_player_rejects_bad_rgbd_input(tmp_path, capsys):
    _rgbd_folder(tmp_path)
    color, depth, info = tmp_path / "color", tmp_path / "depth", tmp_path / "info.yaml"
    (depth / "000002.png").unlink()
    assert camera_player.main([str(color), "--depth", str(depth)]) == 1
    assert "2 depth images for 3 colour images" in capsys.readouterr().out
    cv2.imwrite(str(depth / "000002.png"), np.zeros((24, 32), np.uint8))  # 8-bit
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("image_width: [\n")
    assert camera_player.main([str(color), "--camera-info", str(bad_yaml)]) == 1
    assert "bad.yaml" in capsys.readouterr().out
    assert camera_player.main([str(color), "--camera-info", str(tmp_path / "none.yaml")]) == 1
    assert "cannot read camera info" in capsys.readouterr().out
    with pytest.raises(ValueError, match="16-bit"):
        list(camera_player.rgbd_frames(color, depth))
    assert camera_player.parse_camera_info(info.read_text())["k"][0] == 30.0


def test_evaluate_depth_scores_a_scene(scene_dir, tmp_path):
    """make evaluate-depth's scorer on the small scene, with the shipped model: every count
    adds up, absent frames are counted as absent, and the JSON is written."""
    from training.evaluation import evaluate_depth
    from yolz_ros.runtime.model_info import DEFAULT_MODEL
    model = Path(__file__).parents[2] / "models" / DEFAULT_MODEL
    if not (model / "model.json").exists():
        pytest.skip("no trained model")
    scene, truth = scene_dir
    out = tmp_path / "depth_3d.json"
    assert evaluate_depth.main(["--scene", str(scene), "--out", str(out)]) == 0
    results = json.loads(out.read_text())
    visible = sum(f["visible"] for f in truth["parts"]["moving"])
    for label, skipped in (("camera box", 0), ("camera box + 3 appended", 1), ("views", 0)):
        r = results[label]
        assert r["absent_frames"] == 10 - visible  # frame 12 and 24 do not exist here
        assert r["visible_frames"] == visible - skipped
        assert 0 <= r["found"] <= r["visible_frames"] and r["points"] <= r["found"]
        assert r["within_2cm"] <= r["points"]


def test_camera_player_waits_for_a_subscriber_on_every_topic(tmp_path):
    """A subscriber that comes late to one topic (here camera_info, 2 s after the others) still
    gets every frame's message: the player waits for all its topics, not only the colour one."""
    pytest.importorskip("rclpy")
    _rgbd_folder(tmp_path)
    ns = f"/dscene_{os.getpid()}_late"
    listener = _Listener(ns, topics=("image", "depth"))
    try:
        player = _play(tmp_path, ns, "--wait", "30")
        try:
            listener.spin_until(lambda: False, 2.0)
            assert not listener.got["image"], "published before every topic had a subscriber"
            listener.subscribe("camera_info")
            ok = listener.spin_until(lambda: all(len(v) >= 3 for v in listener.got.values()),
                                     40.0)
        finally:
            output = _stop(player)
        assert ok, (output, {k: len(v) for k, v in listener.got.items()})
    finally:
        listener.close()
