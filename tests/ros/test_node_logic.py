"""The node's decisions, in the plain modules, without a running node: the parameter table and
its rules, request -> views -> feedback -> response, result -> messages, the overlay, device
selection, and the no-ROS Python API. Fast: the tiny model, real ONNX Runtime, real message
types."""
import logging
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from yolz_ros.ros import cameras, mailbox, outputs, params, pipeline, registration
from yolz_ros.ros.image_msgs import array_to_image_msg, rgb_to_image_msg
from yolz_ros.runtime.decode import Peak
from yolz_ros.msg import ObjectDetection
from yolz_ros.runtime.overlay import render_overlay
from yolz_ros.srv import RegisterObject

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE.parent))


@pytest.fixture(scope="module")
def tiny_detector(tmp_path_factory):
    from tiny_model import make_tiny_model
    from yolz_ros.runtime.detector import Detector
    folder = make_tiny_model(tmp_path_factory.mktemp("tiny"), threshold=0.37)
    return Detector(model_dir=str(folder), backend="onnxruntime", device="cpu", max_objects=3)


def views(n, seed):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (40, 40, 3), dtype=np.uint8) for _ in range(n)]


# ------------------------------------------------------------------------------------------
# the parameter table
def test_config_yaml_is_the_table():
    config = yaml.safe_load((ROOT / "config" / "yolz.yaml").read_text())
    config = config["/**/yolz"]["ros__parameters"]  # any namespace
    assert list(config) == [p.name for p in params.PARAMS]
    for p in params.PARAMS:
        assert config[p.name] == p.default, p.name
        assert type(config[p.name]) is type(p.default), p.name


def test_every_default_passes_its_own_checks():
    for p in params.PARAMS:
        assert params.check_value(p.name, p.default) is None, p.name
    cfg = params.start_config({p.name: p.default for p in params.PARAMS})
    assert cfg.image_topics == ("image",) and cfg.max_image_pixels == 50_000_000


def test_start_only_rule_and_checks():
    assert params.LIVE == ("threshold", "zoom", "look_closer", "max_rate", "camera_rate_hz",
                           "depth_tolerance", "depth_timeout", "publish_markers",
                           "register_max_age", "publish_overlay", "overlay_alpha", "draw_peaks")
    why = params.check_changes({"max_objects": 8}, configured=True)
    assert why and "start-only" in why and "max_objects" in why
    assert params.check_changes({"max_image_pixels": 8}, configured=True)
    # managed mode, unconfigured: start-only values may change (they apply at configure)
    assert params.check_changes({"max_objects": 8}, configured=False) is None
    assert params.check_changes({"threshold": 0.2, "draw_peaks": False}, configured=True) is None
    assert params.check_changes({"use_sim_time": True}, configured=True) is None  # not ours
    assert "outside" in params.check_changes({"overlay_alpha": 1.5}, configured=True)
    assert "one of" in params.check_changes({"backend": "cuda"}, configured=False)
    assert params.check_value("device", "cuda:1") is None
    assert params.check_value("device", "cpu") is None
    assert "cuda:N" in params.check_value("device", "gpu0")
    assert "type" in params.check_value("max_rate", True)
    defaults = {p.name: p.default for p in params.PARAMS}
    with pytest.raises(params.ConfigError, match="image_topics"):
        params.start_config({**defaults, "image_topics": [" "]})
    # use_depth needs a depth and a camera_info topic per camera
    with pytest.raises(params.ConfigError, match="depth_topics"):
        params.start_config({**defaults, "use_depth": True, "image_topics": ["a", "b"]})
    cfg = params.start_config({**defaults, "use_depth": True, "image_topics": ["a", "b"],
                               "depth_topics": ["a_d", "b_d"],
                               "camera_info_topics": ["a_i", "b_i"]})
    assert cfg.depth_topics == ("a_d", "b_d") and cfg.target_frame == ""
    # without use_depth the depth topics are not checked
    assert params.start_config({**defaults, "image_topics": ["a", "b"]}).use_depth is False


def test_settings_are_replaced_whole():
    s = params.Settings()
    t = s.updated({"threshold": 0.25, "max_objects": 3, "draw_peaks": False})
    assert (t.threshold, t.draw_peaks, t.max_rate) == (0.25, False, 0.0)
    assert s.threshold == -1.0 and s is not t  # the old one is untouched (frames in flight)


def test_negative_threshold_falls_back_to_the_model_default(tiny_detector):
    assert params.detection_threshold(-1.0, 0.37) == pytest.approx(0.37)
    assert params.detection_threshold(-0.01, 0.37) == pytest.approx(0.37)
    assert params.detection_threshold(0.0, 0.37) == 0.0
    assert params.detection_threshold(0.8, 0.37) == pytest.approx(0.8)
    # through one frame: threshold -1 decodes exactly what the model's default gives
    det = tiny_detector
    assert det.info.default_threshold == pytest.approx(0.37)
    emb = det.embed_views(views(3, 1)).vector
    snapshot = type("S", (), {"names": ("a",), "embeddings": np.stack([emb])})()
    rgb = np.random.default_rng(2).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    frame = pipeline.analyse(rgb, Header(), "/image", det, snapshot, params.Settings(threshold=-1))
    result = det.detect(rgb, snapshot.embeddings)
    want = outputs.object_detections(("a",), det.peaks(result, 0.37))
    assert [d for d, _ in frame.detections] == [d for d, _ in want]
    everything = pipeline.analyse(rgb, Header(), "/image", det, snapshot,
                                params.Settings(threshold=0.0))
    assert len(everything.detections) == 1 and everything.detections[0][0].num_cells == \
        det.info.rows * det.info.cols


def test_the_zoom_parameter_reaches_the_detector(tiny_detector):
    det = tiny_detector
    emb = det.embed_views(views(3, 1)).vector
    snapshot = type("S", (), {"names": ("a",), "embeddings": np.stack([emb])})()
    rgb = np.random.default_rng(3).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    off = pipeline.analyse(rgb, Header(), "/image", det, snapshot, params.Settings())
    on = pipeline.analyse(rgb, Header(), "/image", det, snapshot, params.Settings(zoom=2.0))
    np.testing.assert_array_equal(off.probabilities, det.detect(rgb, snapshot.embeddings)
                                  .probabilities)
    np.testing.assert_array_equal(on.probabilities, det.detect(rgb, snapshot.embeddings,
                                                               zoom=2.0).probabilities)
    assert not np.array_equal(on.probabilities, off.probabilities)


def test_the_look_closer_parameter_reaches_the_detector_and_yields_to_zoom(tiny_detector):
    det = tiny_detector
    emb = det.embed_views(views(3, 1)).vector
    snapshot = type("S", (), {"names": ("a",), "embeddings": np.stack([emb])})()
    rgb = np.random.default_rng(3).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    off = pipeline.analyse(rgb, Header(), "/image", det, snapshot, params.Settings())
    closer = pipeline.analyse(rgb, Header(), "/image", det, snapshot,
                              params.Settings(look_closer=2))
    assert (off.passes, closer.passes) == (1, 3)
    assert not np.array_equal(closer.probabilities, off.probabilities)
    zoomed = pipeline.analyse(rgb, Header(), "/image", det, snapshot,
                              params.Settings(look_closer=2, zoom=2.0))
    assert zoomed.passes > 3  # the zoom pass's tiles, not two


# ------------------------------------------------------------------------------------------
# registration
def test_registrations_run_on_one_thread_of_their_own():
    """The Registrar runs every call on one thread of its own (not the caller's), and
    exceptions reach the caller."""
    import threading
    registrar = registration.Registrar()
    try:
        me = threading.get_native_id()
        seen = {registrar.submit(threading.get_native_id).result() for _ in range(3)}
        assert seen == {registrar.native_id} and me not in seen
        with pytest.raises(ValueError):
            registrar.submit(int, "not a number").result()
    finally:
        registrar.close()


def test_the_nodes_embedder_has_one_intra_op_thread_and_registration_works(tmp_path):
    """The node's detector (startup.load_detector): the embedder session on one intra-op thread
    (so it computes on the registration thread alone), the detector session on num_threads; a
    registration through the Registrar stores the object."""
    from tiny_model import make_tiny_model
    from yolz_ros.ros import startup
    from yolz_ros.runtime.library import ObjectLibrary
    folder = make_tiny_model(tmp_path / "model")
    values = {p.name: p.default for p in params.PARAMS}
    cfg = params.start_config({**values, "model_dir": str(folder), "backend": "onnxruntime",
                               "device": "cpu", "precision": "fp32", "num_threads": 2})
    det = startup.load_detector(cfg, logging.getLogger("test"))
    embedder = det.backend._embedder.get_session_options()
    assert embedder.intra_op_num_threads == startup.REGISTRATION_EMBED_THREADS == 1
    assert det.backend._detector.get_session_options().intra_op_num_threads == 2
    lib = ObjectLibrary(tmp_path / "library", det.model_id,
                        embedding_dim=det.info.embedding_dim).load()
    request = RegisterObject.Request(name="mug", views=[rgb_to_image_msg(v) for v in views(3, 4)])
    response = RegisterObject.Response()
    registrar = registration.Registrar()
    try:
        snapshot = registrar.submit(registration.register, request, response, lib,
                                    det.embed_views, 3).result()
    finally:
        registrar.close()
    assert response.success and snapshot.names == ("mug",), response.message
    assert response.num_views_used == 3 and lib.entries() == [("mug", 3)]


def test_max_objects_is_the_most_registered_at_once(tiny_detector, tmp_path):
    from yolz_ros.runtime.library import ObjectLibrary
    assert not registration.library_full(["a"], "b", 2)
    assert registration.library_full(["a", "b"], "c", 2)
    assert not registration.library_full(["a", "b"], "a", 2)  # replacing never fills it
    lib = ObjectLibrary(tmp_path, tiny_detector.model_id,
                        embedding_dim=tiny_detector.info.embedding_dim).load()

    def reg(name, replace=False):
        request = RegisterObject.Request(name=name, replace=replace,
                                         views=[rgb_to_image_msg(v) for v in views(2, len(name))])
        response = RegisterObject.Response()
        snapshot = registration.register(request, response, lib, tiny_detector.embed_views, 2)
        return snapshot, response
    assert reg("a")[0] is not None
    snapshot, r = reg("b")
    assert r.success and snapshot.names == ("a", "b")
    snapshot, r = reg("c")
    assert snapshot is None and not r.success and "full" in r.message and "max_objects=2" in \
        r.message and list(r.names) == ["a", "b"]
    snapshot, r = reg("a", replace=True)
    assert r.success and "replaced" in r.message
    snapshot, r = reg("a")  # a duplicate without replace: the library's one check and text
    assert not r.success and "replace=true" in r.message


def test_request_checks_and_view_feedback():
    with pytest.raises(registration.Refused, match="invalid object name"):
        registration.check_request("bad name", 1, [], 4)
    with pytest.raises(registration.Refused, match="no views"):
        registration.check_request("ok", 0, [], 4)
    with pytest.raises(registration.Refused, match="at most 32"):
        registration.check_request("ok", 33, [], 4)
    good = rgb_to_image_msg(np.zeros((16, 16, 3), np.uint8))
    small = rgb_to_image_msg(np.zeros((4, 16, 3), np.uint8))
    bad = Image(height=8, width=8, encoding="yuv422", step=16, data=bytes(128))
    with pytest.raises(registration.Refused) as info:
        registration.decode_views([good, small, bad])
    assert set(info.value.notes) == {1, 2} and "too small" in info.value.notes[1]
    assert "encoding" in info.value.notes[2] and "view 2" in info.value.message
    rgba = registration.decode_view(array_to_image_msg(np.zeros((9, 9, 4), np.uint8), "rgba8"))
    assert rgba.shape == (9, 9, 4)
    fb = registration.view_feedback(4, [0.95, 0.93, 0.96, 0.41])
    assert [f.used for f in fb] == [True] * 4 and fb[3].note == registration.DISAGREE_NOTE
    assert fb[0].note == "" and fb[2].agreement == pytest.approx(0.96)
    assert registration.disagreeing_views([0.9, 0.1]) == []


# ------------------------------------------------------------------------------------------
# result -> messages
def test_detections_copy_every_box_edge():
    pk = Peak(score=0.9, peak_x=31.0, peak_y=52.0, x_min=10.0, y_min=20.0, x_max=50.0,
              y_max=80.0, num_cells=6)
    [(det, k)] = outputs.object_detections(("mug",), [[pk]])
    assert k == 0 and det.name == "mug" and det.num_cells == 6
    assert (det.x_min, det.y_min, det.x_max, det.y_max) == (10.0, 20.0, 50.0, 80.0)
    assert (det.peak_x, det.peak_y) == (31.0, 52.0) and det.score == pytest.approx(0.9)
    header = Header(frame_id="cam")
    header.stamp.sec = 7
    d2 = outputs.detection2d(det, header)
    assert d2.header.frame_id == "cam" and d2.header.stamp.sec == 7
    assert d2.results[0].hypothesis.class_id == "mug"
    assert d2.results[0].hypothesis.score == pytest.approx(0.9)
    assert (d2.bbox.center.position.x, d2.bbox.center.position.y) == (30.0, 50.0)
    assert (d2.bbox.size_x, d2.bbox.size_y) == (40.0, 60.0) and d2.bbox.center.theta == 0.0
    assert (d2.results[0].pose.pose.position.x, d2.results[0].pose.pose.position.y) == \
        (31.0, 52.0)


def test_frame_messages():
    probs = np.random.default_rng(0).random((2, 3, 4)).astype(np.float32)
    det = ObjectDetection(name="b", score=0.5, x_min=1.0, y_min=2.0, x_max=3.0, y_max=4.0)
    header = Header(frame_id="cam")
    frame = outputs.Frame(header=header, camera="/cam/image", model_id="m@1", names=("a", "b"),
                          probabilities=probs, mapping=(0.5, 0.0, 8.0), stride=16,
                          image_size=(128, 80), detections=((det, 1),))
    msg = outputs.probabilities_msg(frame)
    assert (msg.rows, msg.cols, msg.cell_width, msg.image_width, msg.image_height) == \
        (3, 4, 16.0, 128, 80)
    assert (msg.scale, msg.offset_x, msg.offset_y) == (0.5, 0.0, 8.0)
    np.testing.assert_array_equal(np.asarray(msg.probabilities, np.float32), probs.ravel())
    assert list(msg.names) == ["a", "b"] and msg.detections[0].name == "b"
    arr = outputs.detection2d_array(frame)
    assert arr.header.frame_id == "cam" and len(arr.detections) == 1
    assert arr.detections[0].bbox.size_x == 2.0
    info = outputs.label_info(("a", "b"), 0.4)
    assert [(c.class_id, c.class_name) for c in info.class_map] == [(0, "a"), (1, "b")]
    assert info.threshold == pytest.approx(0.4)


def test_empty_library_goes_through_the_detector(tiny_detector, tmp_path):
    from yolz_ros.runtime.library import ObjectLibrary
    lib = ObjectLibrary(tmp_path, tiny_detector.model_id,
                        embedding_dim=tiny_detector.info.embedding_dim).load()
    assert lib.snapshot.embeddings.shape == (0, tiny_detector.info.embedding_dim)
    rgb = np.zeros((30, 40, 3), np.uint8)
    frame = pipeline.analyse(rgb, Header(), "/image", tiny_detector, lib.snapshot,
                           params.Settings())
    assert frame.probabilities.shape == (0, tiny_detector.info.rows, tiny_detector.info.cols)
    assert frame.detections == () and frame.image_size == (40, 30)


def test_camera_keys_and_mailbox():
    assert cameras.camera_key("/front/image_raw") == "front_image_raw"
    assert cameras.camera_key("3d/points") == "camera_3d_points"
    assert cameras.camera_keys(["a/b", "a_b"]) == ["a_b", "a_b_"]
    assert cameras.output_prefix("x", 1) == "~/" and cameras.output_prefix("x", 2) == "~/x/"
    cams = [cameras.Camera("a", "a"), cameras.Camera("b", "b")]
    box = mailbox.Mailbox(cams)
    box.put(cams[0], 1)
    box.put(cams[0], 2)  # replaces 1: dropped
    box.put(cams[1], 3)
    assert box.take(0.0) == (cams[0], 2) and box.take(0.0) == (cams[1], 3)
    assert box.take(0.0) is None and box.counts() == (3, 1)


# ------------------------------------------------------------------------------------------
# overlay
def test_overlay_blends_the_heat_where_it_is():
    rgb = np.full((64, 64, 3), 100, np.uint8)
    probs = np.zeros((1, 4, 4), np.float32)
    probs[0, 1, 2] = 1.0  # one hot cell: model pixels x 32..48, y 16..32 (stride 16)
    out = render_overlay(rgb, probs, (1.0, 0.0, 0.0), 16, alpha=0.5, draw_peaks=False)
    hot = out[16:32, 32:48].astype(int)
    assert np.abs(hot - 100).max() > 40, "no heat blended into the hot cell"
    jet_red = cv2.applyColorMap(np.uint8([[255]]), cv2.COLORMAP_JET)[0, 0, ::-1]
    np.testing.assert_allclose(hot[8, 8], 0.5 * 100 + 0.5 * jet_red, atol=1.5)
    cold = out[40:64, 0:16].astype(int)
    assert np.abs(cold - 100).max() <= 1, "heat blended where the probability is 0"
    np.testing.assert_array_equal(render_overlay(rgb, probs, (1.0, 0.0, 0.0), 16, alpha=0.0,
                                                 draw_peaks=False), rgb)
    det = ObjectDetection(name="x", score=1.0, peak_x=40.0, peak_y=24.0, x_min=32.0,
                          y_min=16.0, x_max=48.0, y_max=32.0)
    boxed = render_overlay(rgb, probs, (1.0, 0.0, 0.0), 16, [(det, 0)], alpha=0.0)
    assert (boxed[16, 32:48] != 100).any()  # the box's top edge is drawn


# ------------------------------------------------------------------------------------------
# devices and the no-ROS API
def test_device_cuda_n_is_understood(tiny_detector, caplog):
    from yolz_ros.runtime.backends.base import BackendError
    from yolz_ros.runtime.backends.onnxruntime_backend import cuda_available
    from yolz_ros.runtime.backends.select import create_backend, parse_device
    assert parse_device("cuda") == ("cuda", None) and parse_device("cpu") == ("cpu", None)
    assert parse_device("cuda:1") == ("cuda", 1)
    for bad in ("cuda:x", "gpu", "cpu:0", "cuda:"):
        with pytest.raises(BackendError, match="cuda:N"):
            parse_device(bad)
    with pytest.raises(BackendError, match="CUDA_VISIBLE_DEVICES=1"):
        create_backend(tiny_detector.info, "tensorrt", "cuda:1")
    if not cuda_available():  # here: it runs, on CPU, and says so
        backend = create_backend(tiny_detector.info, "auto", "cuda:1")
        assert backend.name == "onnxruntime-cpu"
        assert "cuda:1" in caplog.text and "CPU" in caplog.text


def test_detector_works_without_any_ros_environment(tmp_path):
    """`Detector()` in a plain environment: no AMENT_PREFIX_PATH, LD_LIBRARY_PATH or ROS_*."""
    code = (
        "import numpy as np\n"
        "from yolz_ros.runtime.detector import Detector\n"
        "from yolz_ros.runtime.model_info import default_model_dir\n"
        "d = Detector(backend='onnxruntime', device='cpu')\n"
        "rng = np.random.default_rng(0)\n"
        "views = [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(2)]\n"
        "v = d.embed_views(views).vector\n"
        "assert v.shape == (d.info.embedding_dim,), v.shape\n"
        "r = d.detect(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8), np.stack([v]))\n"
        "assert r.probabilities.shape == (1, d.info.rows, d.info.cols)\n"
        "print('ok', default_model_dir(), d.model_id)\n")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.startswith("ok ") and str(ROOT / "models") in out.stdout


def test_a_bad_frame_is_refused_on_arrival_and_never_displaces_a_good_one():
    from types import SimpleNamespace

    from yolz_ros.ros.cameras import Camera
    from yolz_ros.ros.pipeline import Pipeline

    cam = Camera(topic="image", key="image", resolved="/image")
    errors = []
    pipe = Pipeline([cam], detector=None, max_image_pixels=10_000, state=lambda: None,
                    on_error=errors.append)
    good = SimpleNamespace(height=2, width=3, encoding="rgb8", is_bigendian=0, step=9,
                           data=bytes(18), header=None)
    bad = [SimpleNamespace(height=2, width=3, encoding="yuv422", is_bigendian=0, step=6,
                           data=bytes(12), header=None),
           SimpleNamespace(height=480, width=640, encoding="rgb8", is_bigendian=0, step=1920,
                           data=bytes(100), header=None),
           SimpleNamespace(height=200, width=200, encoding="rgb8", is_bigendian=0, step=600,
                           data=bytes(120_000), header=None),  # over max_image_pixels
           SimpleNamespace(format="jpeg", data=b"", header=None)]
    pipe.receive(cam, good)
    for msg in bad:
        pipe.receive(cam, msg)
    assert (cam.received, cam.rejected, cam.dropped) == (5, 4, 0)
    assert len(errors) == 4 and all("bad frame on /image" in e for e in errors)
    assert pipe.mailbox.take(0.1) == (cam, good)  # the good frame is still the one waiting


def test_a_camera_view_is_held_to_the_view_limits(monkeypatch):
    """A box on a huge frame must not store a view the library cannot read back."""
    from types import SimpleNamespace

    from sensor_msgs.msg import Image, RegionOfInterest

    from yolz_ros.ros import registration
    frame = rgb_to_image_msg(np.zeros((600, 800, 3), np.uint8))
    camera = SimpleNamespace(newest=(frame, time.monotonic()), resolved="/image", topic="image")
    request = SimpleNamespace(box=RegionOfInterest(x_offset=0, y_offset=0, width=800,
                                                   height=600), mask=Image())
    view, header, used = registration.camera_view(request, camera, 2.0, 10**7)
    assert view.shape == (600, 800, 3) and used == (0, 0, 800, 600)
    monkeypatch.setattr(registration, "MAX_VIEW_PIXELS", 100_000)
    with pytest.raises(registration.Refused, match="tighter box"):
        registration.camera_view(request, camera, 2.0, 10**7)
    camera.newest = (frame, time.monotonic() - 10)
    with pytest.raises(registration.Refused, match="10.0 s old"):
        registration.camera_view(request, camera, 2.0, 10**7)


# ------------------------------------------------------------------------------------------
# 3D per camera
class _Publisher:
    def __init__(self):
        self.messages = []

    def publish(self, msg):
        self.messages.append(msg)

    def get_subscription_count(self):
        return 0


def _stamped(msg, stamp):
    msg.header.stamp.sec = int(stamp)
    msg.header.stamp.nanosec = int(round((stamp % 1) * 1e9)) % 1_000_000_000
    return msg


def test_a_camera_whose_depth_never_matches_does_not_slow_the_others(tiny_detector):
    """The 3D step waits for depth per camera, so one camera's late depth costs no other
    camera. Camera 'late' gets depth images 3 s behind its colour frames (FastDDS's defaults
    re-send fragments that late), so each of its frames waits depth_timeout for a match that
    never comes; camera 'fine' gets its depth with the colour. Both cameras' frames keep being
    processed at the rate they arrive, and 'fine' gets its 3D output."""
    from sensor_msgs.msg import CameraInfo

    from yolz_ros.ros.depth_input import DepthStore
    emb = tiny_detector.embed_views(views(3, 1)).vector
    snapshot = type("S", (), {"names": ("a",), "embeddings": np.stack([emb])})()
    settings = params.Settings(threshold=0.0, depth_timeout=0.3)  # every frame: a detection
    cams = [cameras.Camera("late", "late", resolved="/late"),
            cameras.Camera("fine", "fine", resolved="/fine")]
    h, w = 48, 64
    info = CameraInfo(width=w, height=h, k=[60.0, 0, 31.5, 0, 60.0, 23.5, 0, 0, 1])
    for cam in cams:
        cam.pub_probabilities, cam.pub_detections, cam.pub_overlay = (_Publisher(), _Publisher(),
                                                                      _Publisher())
        cam.pub_detections_3d, cam.pub_markers = _Publisher(), _Publisher()
        cam.depth, cam.depth_topic, cam.info_topic = DepthStore(), "depth", "camera_info"
    warnings = []
    pipe = pipeline.Pipeline(cams, tiny_detector, 10_000_000, lambda: (snapshot, settings),
                             on_error=warnings.append)
    for cam in cams:
        pipe.receive_info(cam, info)
    rgb = np.random.default_rng(3).integers(0, 256, (h, w, 3), dtype=np.uint8)
    depth = np.full((h, w), 1.0, np.float32)
    rate, seconds = 30.0, 2.0
    pipe.start()
    try:
        t0 = time.time()
        frames = int(rate * seconds)
        next_t = time.monotonic()
        for i in range(frames):
            stamp = t0 + i / rate
            pipe.receive_depth(cams[0], _stamped(array_to_image_msg(depth, "32FC1"), stamp - 3.0))
            pipe.receive_depth(cams[1], _stamped(array_to_image_msg(depth, "32FC1"), stamp))
            for cam in cams:
                pipe.receive(cam, _stamped(rgb_to_image_msg(rgb), stamp))
            next_t += 1.0 / rate
            time.sleep(max(0.0, next_t - time.monotonic()))
        time.sleep(0.5)
    finally:
        pipe.stop()
    late, fine = cams
    for cam in cams:  # 2D output of every camera at the rate frames came (the mailbox keeps
        #               the newest only, so a busy CPU may skip some; the old shared wait left
        #               ~1 frame per depth_timeout: 7 of 60)
        assert cam.processed >= 0.6 * frames, (cam.key, cam.processed, frames, cam.dropped)
        assert len(cam.pub_detections.messages) == cam.processed
    # 'late': no 3D, every frame waited (or was replaced while an older one waited)
    assert late.located == 0 and late.pub_detections_3d.messages == []
    assert late.skipped_3d > 0.5 * frames and late.unlocated == late.processed
    assert any("no depth image within 0.020 s" in w for w in warnings)
    # 'fine': its frames found their depth (3D arrays published, possibly empty of points)
    assert len(fine.pub_detections_3d.messages) >= 0.5 * frames


# ------------------------------------------------------------------------------------------
# negative views ("not that one"): AddViews / RegisterFromCamera with negative, the listings
def _negative_setup(tiny_detector, tmp_path):
    from yolz_ros.runtime.library import ObjectLibrary
    lib = ObjectLibrary(tmp_path, tiny_detector.model_id,
                        embedding_dim=tiny_detector.info.embedding_dim).load()
    request = RegisterObject.Request(name="mug", views=[rgb_to_image_msg(v)
                                                        for v in views(3, 1)])
    assert registration.register(request, RegisterObject.Response(), lib,
                                 tiny_detector.embed_views, 3) is not None
    return lib


def _add_negative(lib, det, pixels, name="mug", max_objects=3, negative=True):
    from yolz_ros.srv import AddViews
    request = AddViews.Request(name=name, negative=negative,
                               views=[v if isinstance(v, Image) else rgb_to_image_msg(v)
                                      for v in pixels])
    response = AddViews.Response()
    snapshot = registration.add_views(request, response, lib, det.embed_views,
                                      det.info.tokens.dim, max_objects)
    return snapshot, response


def test_negative_views_are_stored_listed_and_reach_the_detector(tiny_detector, tmp_path):
    from yolz_ros.srv import GetObjectViews, ListObjects
    lib = _negative_setup(tiny_detector, tmp_path)
    snapshot, r = _add_negative(lib, tiny_detector, views(1, 2))
    assert r.success and snapshot is not None, r.message
    assert "added 1 negative view to 'mug'" in r.message and "now 1 negative view" in r.message
    assert (r.num_views_used, r.num_negative_views, list(r.names)) == (3, 1, ["mug"])
    assert [f.used for f in r.view_feedback] == [True] * 3  # the object's own views, unchanged
    assert lib.counts() == [("mug", 3, 1)] and snapshot.negatives[0].shape[0] == 1
    listing = registration.list_objects(ListObjects.Response(), lib, "m@1")
    assert list(listing.num_views) == [3] and list(listing.num_negative_views) == [1]
    got = registration.get_object_views(GetObjectViews.Request(name="mug"),
                                        GetObjectViews.Response(), lib)
    assert got.success and len(got.views) == 3 and len(got.negative_views) == 1
    assert "and 1 negative view" in got.message
    np.testing.assert_array_equal(registration.decode_view(got.negative_views[0]), views(1, 2)[0])
    # a plain add_views keeps them and says so
    snapshot, r = _add_negative(lib, tiny_detector, views(1, 7), negative=False)
    assert r.success and (r.num_views_used, r.num_negative_views) == (4, 1), r.message
    # the frame pipeline hands them to the detector: the object's map is lowered somewhere
    calls = []
    real = tiny_detector.detect

    def spy(*args, **kwargs):
        calls.append(kwargs.get("negatives"))
        return real(*args, **kwargs)
    rgb = np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    tiny_detector.detect = spy
    try:
        frame = pipeline.analyse(rgb, Header(), "/image", tiny_detector, lib.snapshot,
                                 params.Settings())
    finally:
        del tiny_detector.detect
    assert calls and calls[0] is lib.snapshot.negatives and calls[0][0].shape[0] == 1
    plain = tiny_detector.detect(rgb, lib.snapshot.embeddings).probabilities
    assert frame.probabilities.shape == plain.shape
    assert (frame.probabilities <= plain + 1e-6).all()


def test_negative_views_refusals_say_what_to_fix_and_store_nothing(tiny_detector, tmp_path):
    from yolz_ros.runtime.negatives import MAX_NEGATIVES
    lib = _negative_setup(tiny_detector, tmp_path)
    bad = Image(height=8, width=8, encoding="yuv422", step=16, data=bytes(128))
    cases = [
        (dict(pixels=views(1, 2), name="cup"), "no object named 'cup'"),
        (dict(pixels=views(1, 2), name="bad name"), "invalid object name"),
        (dict(pixels=[]), "no views"),
        (dict(pixels=[views(1, 2)[0], bad]), "view 1"),
        (dict(pixels=views(MAX_NEGATIVES + 1, 2)), f"over the limit of {MAX_NEGATIVES}"),
        (dict(pixels=views(1, 2), max_objects=1), "max_objects=1"),
    ]
    for kwargs, text in cases:
        snapshot, r = _add_negative(lib, tiny_detector, **kwargs)
        assert snapshot is None and not r.success and text in r.message, (kwargs, r.message)
        assert r.num_negative_views == 0 and list(r.names) == ["mug"]
    # one of the object's own views is the object itself, not a look-alike: refused, with a
    # note on that view; the good one before it is not stored either
    snapshot, r = _add_negative(lib, tiny_detector, views(1, 2) + views(3, 1)[:1])
    assert snapshot is None and "negative view 1 refused" in r.message and "itself" in r.message
    assert "itself" in r.view_feedback[1].note and r.view_feedback[0].note == ""
    assert lib.counts() == [("mug", 3, 0)]
    # too many: MAX_NEGATIVES stored, one more is refused
    for seed in range(MAX_NEGATIVES):
        snapshot, r = _add_negative(lib, tiny_detector, views(1, 10 + seed), max_objects=64)
        assert r.success, r.message
    snapshot, r = _add_negative(lib, tiny_detector, views(1, 20), max_objects=64)
    assert not r.success and f"{MAX_NEGATIVES} negative views" in r.message
    assert lib.counts() == [("mug", 3, MAX_NEGATIVES)]


def test_negative_views_count_against_max_objects(tiny_detector, tmp_path):
    lib = _negative_setup(tiny_detector, tmp_path)
    assert _add_negative(lib, tiny_detector, views(1, 2), max_objects=2)[0] is not None
    # 1 object + 1 negative = 2 rows: a new object would make 3 > max_objects=2
    request = RegisterObject.Request(name="cup", views=[rgb_to_image_msg(v) for v in views(2, 5)])
    response = RegisterObject.Response()
    assert registration.register(request, response, lib, tiny_detector.embed_views, 2) is None
    assert "full (1 objects and 1 negative views, max_objects=2)" in response.message
    snapshot, r = _add_negative(lib, tiny_detector, views(1, 3), max_objects=2)
    assert snapshot is None and "exceed max_objects=2" in r.message


def test_register_from_camera_negative(tiny_detector, tmp_path):
    from types import SimpleNamespace

    from sensor_msgs.msg import RegionOfInterest

    from yolz_ros.srv import RegisterFromCamera
    lib = _negative_setup(tiny_detector, tmp_path)
    frame = np.random.default_rng(9).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    camera = SimpleNamespace(newest=(rgb_to_image_msg(frame), time.monotonic()),
                             resolved="/image", topic="image")

    def call(name="mug", box=(20, 10, 40, 40), **flags):
        request = RegisterFromCamera.Request(name=name, negative=True, **flags)
        request.box = RegionOfInterest(x_offset=box[0], y_offset=box[1], width=box[2],
                                       height=box[3])
        response = RegisterFromCamera.Response()
        snapshot = registration.register_from_camera(
            request, response, lib, tiny_detector.embed_views, [camera], 3, 0.0, 10**7,
            tiny_detector.object_mask, tiny_detector.info.tokens.dim)
        return snapshot, response
    for kwargs, text in [(dict(replace=True), "leave replace and append unset"),
                         (dict(append=True), "leave replace and append unset"),
                         (dict(name="cup"), "no object named 'cup'"),
                         (dict(box=(0, 0, 0, 0)), "box"),
                         (dict(box=(500, 500, 40, 40)), "inside")]:
        snapshot, r = call(**kwargs)
        assert snapshot is None and not r.success and text in r.message, (kwargs, r.message)
    assert lib.counts() == [("mug", 3, 0)]
    snapshot, r = call()
    assert r.success and snapshot is not None, r.message
    assert (r.num_views_used, r.num_negative_views) == (3, 1) and "box x=20 y=10" in r.message
    assert lib.counts() == [("mug", 3, 1)]
    np.testing.assert_array_equal(lib.negative_views("mug")[0][:, :, :3],
                                  frame[10:50, 20:60])


def test_a_library_over_max_objects_is_warned_of_at_start(tiny_detector, tmp_path):
    from yolz_ros.ros import startup
    lib = _negative_setup(tiny_detector, tmp_path / "library")
    assert _add_negative(lib, tiny_detector, views(1, 2))[0] is not None  # 2 rows
    values = {p.name: p.default for p in params.PARAMS}
    warnings = []
    logger = type("Log", (), {"warning": lambda self, text: warnings.append(text)})()
    for max_objects, expected in ((2, 0), (1, 1)):
        cfg = params.start_config({**values, "library_dir": str(tmp_path / "library"),
                                   "max_objects": max_objects})
        again = startup.open_library(cfg, tiny_detector, logger)
        assert again.counts() == [("mug", 3, 1)] and len(warnings) == expected
    assert "1 objects and 1 negative views are 2 rows, more than max_objects=1" in warnings[0]
