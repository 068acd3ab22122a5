"""The yolz ROS 2 node: per-cell probabilities of registered objects in every camera frame.

Interface (node name `yolz` by default, everything relative so namespaces and remaps work):

  subscribes  image                     sensor_msgs/Image (or `image/compressed`,
                                        sensor_msgs/CompressedImage, with
                                        image_transport=compressed); one subscription per
                                        entry of `image_topics`
  publishes   ~/probabilities           yolz_ros/ObjectProbabilities, one per processed frame
              ~/overlay                 sensor_msgs/Image rgb8 heatmap + boxes (only computed while
                                        someone subscribes)
              (several cameras: ~/<camera>/probabilities, ~/<camera>/overlay)
              /diagnostics              diagnostic_msgs/DiagnosticArray, once per second
  services    ~/register_object         yolz_ros/RegisterObject
              ~/remove_object           yolz_ros/RemoveObject
              ~/list_objects            yolz_ros/ListObjects

Threading: image callbacks only store the newest message per camera (a message replaced before it
was processed counts as dropped); one worker thread processes the newest frame; services run in
their own mutually exclusive callback group on a multi-threaded executor, so they never wait
behind inference. Registration embeds in the service thread, then swaps an immutable
(names, embeddings) snapshot: a frame sees either the old or the new set of objects.
"""
from __future__ import annotations

import array
import collections
import logging
import os
import re
import sys
import threading
import time
from pathlib import Path

import numpy as np
import rclpy
import rclpy.exceptions
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor,
                                ParameterType)
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node
from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy)
from sensor_msgs.msg import CompressedImage, Image

from yolz_ros.geometry import Letterbox
from yolz_ros.library import LibraryError, ObjectLibrary, validate_name
from yolz_ros.msg import ObjectDetection, ObjectProbabilities, ViewFeedback
from yolz_ros.srv import ListObjects, RegisterObject, RemoveObject

MAX_VIEWS = 32
MIN_VIEW_SIDE = 8
MAX_VIEW_SIDE = 4096
MAX_COMPRESSED_BYTES = 64 * 1024 * 1024
# A view whose agreement with the object's mean is this far below the others' gets a note.
DISAGREEMENT_MARGIN = 0.2
DISAGREE_NOTE = "this view disagrees with the others: is it the same object?"


class StartupError(RuntimeError):
    """A configuration problem that stops the node at start (message says what to fix)."""


def disagreeing_views(agreement, margin: float = DISAGREEMENT_MARGIN) -> list:
    """Indices of views whose agreement with the object's mean is far below the others' (more
    than ``margin`` under the median of the rest). Needs at least 3 views to tell."""
    agreement = np.asarray(agreement, np.float64).reshape(-1)
    if agreement.size < 3:
        return []
    return [i for i in range(agreement.size)
            if agreement[i] < float(np.median(np.delete(agreement, i))) - margin]


def default_library_dir() -> Path:
    ros_home = os.environ.get("ROS_HOME") or os.path.join(os.path.expanduser("~"), ".ros")
    return Path(ros_home) / "yolz_ros" / "library"


def camera_key(topic: str) -> str:
    """A ROS-name-safe token for a camera topic: '/front/image_raw' -> 'front_image_raw'."""
    key = re.sub(r"[^A-Za-z0-9_]+", "_", topic).strip("_")
    key = re.sub(r"_+", "_", key) or "camera"
    return key if not key[0].isdigit() else "camera_" + key


def _palette(k: int):
    colors = [(255, 64, 64), (64, 200, 255), (255, 220, 0), (0, 230, 118), (255, 64, 255),
              (255, 150, 0), (150, 120, 255), (0, 255, 255)]
    return colors[k % len(colors)]


def render_overlay(rgb, probabilities, mapping, stride, detections, alpha=0.5, draw_peaks=True):
    """The frame with the max-over-objects heatmap blended in and the peak boxes drawn (RGB)."""
    import cv2
    h, w = rgb.shape[:2]
    out = rgb.astype(np.float32)
    if probabilities.shape[0] > 0 and alpha > 0:
        heat = probabilities.max(axis=0).astype(np.float32)
        rows, cols = heat.shape
        heat_model = cv2.resize(heat, (cols * stride, rows * stride),
                                interpolation=cv2.INTER_NEAREST)
        scale, ox, oy = mapping
        # source pixel (x, y) -> model pixel (x*scale + ox, y*scale + oy)
        m = np.float32([[scale, 0, ox], [0, scale, oy]])
        heat_src = cv2.warpAffine(heat_model, m, (w, h),
                                  flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP)
        heat_src = np.clip(heat_src, 0.0, 1.0)
        color = cv2.applyColorMap((heat_src * 255).astype(np.uint8), cv2.COLORMAP_JET)
        color = color[..., ::-1].astype(np.float32)  # BGR -> RGB
        weight = (alpha * heat_src)[..., None]
        out = out * (1.0 - weight) + color * weight
    out = np.ascontiguousarray(np.clip(out, 0, 255).astype(np.uint8))
    if draw_peaks and detections:
        thick = max(1, round(max(h, w) / 400))
        font = max(0.4, max(h, w) / 1200)
        for det, k in detections:
            c = _palette(k)
            p0 = (int(round(det.x_min)), int(round(det.y_min)))
            p1 = (int(round(det.x_max)), int(round(det.y_max)))
            cv2.rectangle(out, p0, p1, c, thick)
            cv2.circle(out, (int(round(det.peak_x)), int(round(det.peak_y))), 2 * thick + 1, c, -1)
            label = f"{det.name} {det.score:.2f}"
            org = (p0[0], max(int(12 * font / 0.4), p0[1] - 4))
            cv2.putText(out, label, org, cv2.FONT_HERSHEY_SIMPLEX, font, (0, 0, 0), thick + 2,
                        cv2.LINE_AA)
            cv2.putText(out, label, org, cv2.FONT_HERSHEY_SIMPLEX, font, c, thick, cv2.LINE_AA)
    return out


class _RosLogHandler(logging.Handler):
    """Forwards Python logging (the runtime's backends) to the node's ROS logger."""

    def __init__(self, ros_logger):
        super().__init__()
        self.ros_logger = ros_logger

    def emit(self, record):
        try:
            text = self.format(record)
            if record.levelno >= logging.ERROR:
                self.ros_logger.error(text)
            elif record.levelno >= logging.WARNING:
                self.ros_logger.warning(text)
            else:
                self.ros_logger.info(text)
        except Exception:  # noqa: BLE001 - logging must never break the node
            pass


def _python_logger(ros_logger) -> logging.Logger:
    logger = logging.getLogger("yolz_ros.runtime")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    if not any(isinstance(h, _RosLogHandler) for h in logger.handlers):
        logger.addHandler(_RosLogHandler(ros_logger))
    return logger


class _Camera:
    """Per-camera state: the newest unprocessed frame, counters and publishers."""

    def __init__(self, topic: str, key: str):
        self.topic = topic
        self.key = key
        self.resolved = topic
        self.latest = None
        self.received = 0
        self.dropped = 0
        self.processed = 0
        self.rejected = 0
        self.overlays = 0
        self.subscription = None
        self.pub_probabilities = None
        self.pub_overlay = None


class YolzNode(Node):
    def __init__(self, node_name: str = "yolz", **kwargs):
        super().__init__(node_name, **kwargs)
        self._declare_parameters()
        p = self._params_at_start()

        # -- model --------------------------------------------------------------------------
        from yolz_ros.detector import Detector
        from yolz_ros.model_info import default_model_dir
        model_dir = Path(p["model_dir"]).expanduser() if p["model_dir"] else default_model_dir()
        if not Path(model_dir).is_dir():
            raise StartupError(f"model folder {model_dir} does not exist: set the parameter "
                               "model_dir to a folder holding model.json, embedder.onnx and "
                               "detector.onnx (see docs/model_folder.md)")
        try:
            self.detector = Detector(model_dir=str(model_dir), backend=p["backend"],
                                     device=p["device"], precision=p["precision"],
                                     max_objects=p["max_objects"],
                                     cache_dir=p["cache_dir"] or None,
                                     num_threads=p["num_threads"],
                                     logger=_python_logger(self.get_logger()))
        except Exception as exc:  # noqa: BLE001 - anything here is fatal, say where
            raise StartupError(f"cannot load the model folder {model_dir}: "
                               f"{type(exc).__name__}: {exc}") from exc
        self.model_dir = Path(model_dir)
        self.info = self.detector.info
        self.model_id = self.detector.model_id
        self.get_logger().info(
            f"model {self.model_id} from {model_dir} on backend {self.detector.backend_name} "
            f"(input {self.info.input_size[1]}x{self.info.input_size[0]}, grid "
            f"{self.info.rows}x{self.info.cols})")

        # -- library -------------------------------------------------------------------------
        library_dir = (Path(p["library_dir"]).expanduser() if p["library_dir"]
                       else default_library_dir())
        try:
            self.library = ObjectLibrary(library_dir, self.model_id, logger=self.get_logger())
            self.library.load(embed_fn=self.detector.embed_views)
        except OSError as exc:
            raise StartupError(f"cannot use the object library folder {library_dir}: {exc}; "
                               "set the parameter library_dir to a writable folder") from exc
        self._objects = self.library.embeddings_matrix()  # immutable snapshot, swapped whole
        self.get_logger().info(f"object library {library_dir}: {len(self._objects.names)} "
                               f"objects {list(self._objects.names)}")

        # -- state ---------------------------------------------------------------------------
        self._cv = threading.Condition()
        self._stop = threading.Event()
        self._stats_lock = threading.Lock()
        self._latencies = collections.deque(maxlen=200)
        self._inference = collections.deque(maxlen=200)
        self._errors = 0
        self._last_error = ""
        self._diag_prev = (time.monotonic(), 0)
        self._registration_lock = threading.Lock()

        # -- callback groups -----------------------------------------------------------------
        self._image_group = MutuallyExclusiveCallbackGroup()
        self._service_group = MutuallyExclusiveCallbackGroup()
        self._diag_group = MutuallyExclusiveCallbackGroup()

        # -- cameras -------------------------------------------------------------------------
        in_qos = QoSProfile(
            history=HistoryPolicy.KEEP_LAST, depth=p["qos_depth"],
            reliability=(ReliabilityPolicy.RELIABLE if p["qos_reliability"] == "reliable"
                         else ReliabilityPolicy.BEST_EFFORT),
            durability=DurabilityPolicy.VOLATILE)
        out_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5,
                             reliability=ReliabilityPolicy.RELIABLE)
        compressed = p["image_transport"] == "compressed"
        self.cameras: list[_Camera] = []
        keys = set()
        for topic in p["image_topics"]:
            key = camera_key(topic)
            while key in keys:
                key += "_"
            keys.add(key)
            cam = _Camera(topic, key)
            prefix = "~/" if len(p["image_topics"]) == 1 else f"~/{key}/"
            if compressed:
                # like image_transport: remap the base topic, then append /compressed
                cam.resolved = self.resolve_topic_name(topic)
                cam.subscription = self.create_subscription(
                    CompressedImage, cam.resolved.rstrip("/") + "/compressed",
                    lambda msg, cam=cam: self._on_image(cam, msg), in_qos,
                    callback_group=self._image_group)
            else:
                cam.subscription = self.create_subscription(
                    Image, topic, lambda msg, cam=cam: self._on_image(cam, msg), in_qos,
                    callback_group=self._image_group)
                cam.resolved = cam.subscription.topic_name
            cam.pub_probabilities = self.create_publisher(
                ObjectProbabilities, prefix + "probabilities", out_qos)
            cam.pub_overlay = self.create_publisher(Image, prefix + "overlay", out_qos)
            self.cameras.append(cam)
            self.get_logger().info(
                f"camera {cam.resolved} ({p['image_transport']}, {p['qos_reliability']}) -> "
                f"{cam.pub_probabilities.topic_name}, {cam.pub_overlay.topic_name}")

        self.pub_diagnostics = self.create_publisher(DiagnosticArray, "/diagnostics", 10)

        # -- services ------------------------------------------------------------------------
        self.create_service(RegisterObject, "~/register_object", self._on_register,
                            callback_group=self._service_group)
        self.create_service(RemoveObject, "~/remove_object", self._on_remove,
                            callback_group=self._service_group)
        self.create_service(ListObjects, "~/list_objects", self._on_list,
                            callback_group=self._service_group)

        self.create_timer(1.0, self._publish_diagnostics, callback_group=self._diag_group)
        self._worker = threading.Thread(target=self._work, name="yolz_worker", daemon=True)
        self._worker.start()

    # ---------------------------------------------------------------------------------------
    # parameters
    def _declare_parameters(self):
        def desc(text, type_, read_only=True, fr=None, ir=None, enum=None):
            d = ParameterDescriptor(description=text + (f" ({'|'.join(enum)})" if enum else ""),
                                    type=type_, read_only=read_only)
            if fr is not None:
                d.floating_point_range = [FloatingPointRange(from_value=fr[0], to_value=fr[1],
                                                             step=0.0)]
            if ir is not None:
                d.integer_range = [IntegerRange(from_value=ir[0], to_value=ir[1], step=1)]
            if enum:
                d.additional_constraints = "one of: " + ", ".join(enum)
            return d

        S, D, I, B = (ParameterType.PARAMETER_STRING, ParameterType.PARAMETER_DOUBLE,
                      ParameterType.PARAMETER_INTEGER, ParameterType.PARAMETER_BOOL)
        SA = ParameterType.PARAMETER_STRING_ARRAY
        self._enums = {"backend": ("auto", "tensorrt", "onnxruntime"),
                       "precision": ("fp16", "fp32"),
                       "image_transport": ("raw", "compressed"),
                       "qos_reliability": ("best_effort", "reliable")}
        e = self._enums
        params = [
            ("model_dir", "", desc("model folder (model.json + ONNX); '' = the shipped default "
                                   "model", S)),
            ("backend", "auto", desc("inference backend; auto = TensorRT where it imports, "
                                     "else ONNX Runtime", S, enum=e["backend"])),
            ("device", "cuda", desc("device for inference: cuda, cuda:N or cpu (ONNX Runtime "
                                    "falls back to CPU when CUDA is unavailable)", S)),
            ("precision", "fp16", desc("TensorRT engine precision", S, enum=e["precision"])),
            ("cache_dir", "", desc("where TensorRT engines are cached; '' = backend default",
                                   S)),
            ("num_threads", 0, desc("CPU threads for ONNX Runtime; 0 = its default", I,
                                    ir=(0, 256))),
            ("threshold", -1.0, desc("detection threshold on the cell probability; < 0 = the "
                                     "model's default_threshold", D, read_only=False,
                                     fr=(-1.0, 1.0))),
            ("max_objects", 64, desc("most objects that can be registered at once", I,
                                     ir=(1, 256))),
            ("library_dir", "", desc("where registered objects are stored; '' = "
                                     "$ROS_HOME/yolz_ros/library (ROS_HOME default ~/.ros)", S)),
            ("image_transport", "raw", desc("raw: sensor_msgs/Image on <topic>; compressed: "
                                            "sensor_msgs/CompressedImage on <topic>/compressed",
                                            S, enum=e["image_transport"])),
            ("image_topics", ["image"], desc("camera topics (relative names remap); with "
                                             "several, outputs go to ~/<camera>/...", SA)),
            ("qos_reliability", "best_effort", desc("camera subscription reliability "
                                                    "(best_effort = sensor-data QoS)", S,
                                                    enum=e["qos_reliability"])),
            ("qos_depth", 5, desc("camera subscription history depth", I, ir=(1, 100))),
            ("max_rate", 0.0, desc("process at most this many frames per second in total; "
                                   "0 = as fast as possible (newer frames replace older ones "
                                   "meanwhile)", D, read_only=False, fr=(0.0, 1000.0))),
            ("max_image_pixels", 50_000_000, desc("camera frames with more pixels are skipped",
                                                  I, ir=(1, 1_000_000_000))),
            ("publish_overlay", True, desc("publish ~/overlay (computed only while someone "
                                           "subscribes)", B, read_only=False)),
            ("overlay_alpha", 0.5, desc("heatmap opacity in the overlay", D, read_only=False,
                                        fr=(0.0, 1.0))),
            ("draw_peaks", True, desc("draw detection boxes and names on the overlay", B,
                                      read_only=False)),
        ]
        for name, default, d in params:
            self.declare_parameter(name, default, d)

    def _params_at_start(self) -> dict:
        names = ["model_dir", "backend", "device", "precision", "cache_dir", "num_threads",
                 "max_objects", "library_dir", "image_transport", "image_topics",
                 "qos_reliability", "qos_depth"]
        p = {n: self.get_parameter(n).value for n in names}
        for name, allowed in self._enums.items():
            if p[name] not in allowed:
                raise StartupError(f"parameter {name}={p[name]!r} is not one of "
                                   f"{', '.join(allowed)}")
        topics = [t for t in (p["image_topics"] or []) if t.strip()]
        if not topics:
            raise StartupError("parameter image_topics is empty: give at least one camera topic")
        p["image_topics"] = topics
        return p

    def _param(self, name):
        return self.get_parameter(name).value

    # ---------------------------------------------------------------------------------------
    # frames
    def _on_image(self, cam: _Camera, msg):
        with self._cv:
            if cam.latest is not None:
                cam.dropped += 1
            cam.latest = msg
            cam.received += 1
            self._cv.notify()

    def _next_frame(self, start: int):
        """(camera, message) of the next camera with a pending frame, round robin."""
        n = len(self.cameras)
        for i in range(n):
            cam = self.cameras[(start + i) % n]
            if cam.latest is not None:
                msg, cam.latest = cam.latest, None
                return (start + i) % n, cam, msg
        return None

    def _work(self):
        turn = 0
        next_allowed = 0.0
        while not self._stop.is_set():
            rate = self._param("max_rate")
            wait = next_allowed - time.monotonic()
            if rate > 0 and wait > 0:
                self._stop.wait(wait)
                continue
            with self._cv:
                item = self._next_frame(turn)
                if item is None:
                    self._cv.wait(0.1)
                    continue
            index, cam, msg = item
            turn = index + 1
            started = time.monotonic()
            try:
                self._process(cam, msg)
            except Exception as exc:  # noqa: BLE001 - never let a frame kill the worker
                self._error(cam, f"processing a frame from {cam.resolved} failed: "
                                 f"{type(exc).__name__}: {exc}")
            if rate > 0:
                next_allowed = started + 1.0 / rate

    def _error(self, cam, text):
        with self._stats_lock:
            self._errors += 1
            self._last_error = text
            if cam is not None:
                cam.rejected += 1
        self.get_logger().warning(text + " (frame skipped)", throttle_duration_sec=5.0)

    def _decode(self, cam, msg):
        """RGB uint8 array of a camera message, or None (after a throttled warning)."""
        from yolz_ros.image import compressed_msg_to_rgb, image_msg_to_array
        max_pixels = int(self._param("max_image_pixels"))
        try:
            if isinstance(msg, CompressedImage):
                if len(msg.data) > MAX_COMPRESSED_BYTES:
                    raise ValueError(f"compressed image of {len(msg.data)} bytes is too large")
                rgb, _ = compressed_msg_to_rgb(msg, max_pixels=max_pixels)
            else:
                rgb, _ = image_msg_to_array(msg, max_pixels=max_pixels)  # alpha: unused here
            return rgb
        except ValueError as exc:  # ImageError is a ValueError
            self._error(cam, f"bad frame on {cam.resolved}: {exc}")
            return None

    def _process(self, cam: _Camera, msg):
        from yolz_ros.image import rgb_to_image_msg
        t0 = time.perf_counter()
        rgb = self._decode(cam, msg)
        if rgb is None:
            return
        snapshot = self._objects  # one immutable (names, embeddings) for this frame
        names = tuple(snapshot.names)
        info = self.info
        h, w = rgb.shape[:2]
        threshold = self._param("threshold")
        detections = []  # (ObjectDetection, k)
        if names:
            result = self.detector.detect(rgb, snapshot.embeddings)
            probabilities = np.asarray(result.probabilities, np.float32)
            lb = result.letterbox
            peaks = self.detector.peaks(result, None if threshold < 0 else threshold)
            for k, object_peaks in enumerate(peaks):
                for pk in object_peaks:
                    detections.append((ObjectDetection(
                        name=names[k], score=float(pk.score), peak_x=float(pk.peak_x),
                        peak_y=float(pk.peak_y), x_min=float(pk.x_min), y_min=float(pk.y_min),
                        x_max=float(pk.x_max), y_max=float(pk.y_max),
                        num_cells=int(pk.num_cells)), k))
            inference_ms = result.latency_ms
        else:
            probabilities = np.zeros((0, info.rows, info.cols), np.float32)
            lb = Letterbox.fit((h, w), tuple(info.input_size))
            inference_ms = 0.0
        mapping = (float(lb.scale), float(lb.offset_x), float(lb.offset_y))

        out = ObjectProbabilities()
        out.header = msg.header
        out.camera = cam.resolved
        out.model_id = self.model_id
        out.names = list(names)
        out.rows, out.cols = int(info.rows), int(info.cols)
        out.cell_width = out.cell_height = float(info.stride)
        out.scale, out.offset_x, out.offset_y = (float(v) for v in mapping)
        out.image_width, out.image_height = int(w), int(h)
        out.probabilities = array.array("f", probabilities.astype(np.float32).tobytes())
        out.detections = [d for d, _ in detections]
        cam.pub_probabilities.publish(out)

        overlay = False
        if self._param("publish_overlay") and cam.pub_overlay.get_subscription_count() > 0:
            img = render_overlay(rgb, probabilities, mapping, int(info.stride), detections,
                                 alpha=self._param("overlay_alpha"),
                                 draw_peaks=self._param("draw_peaks"))
            cam.pub_overlay.publish(rgb_to_image_msg(img, msg.header))
            overlay = True
        with self._stats_lock:
            cam.processed += 1
            cam.overlays += int(overlay)
            self._latencies.append((time.perf_counter() - t0) * 1000.0)
            self._inference.append(inference_ms)

    # ---------------------------------------------------------------------------------------
    # services
    def _names_now(self):
        return list(self._objects.names)

    def _on_register(self, request, response):
        from yolz_ros.image import image_msg_to_array
        response.success = False
        response.num_views_used = 0
        name = request.name
        n = len(request.views)
        response.view_feedback = [ViewFeedback(index=i, used=False, agreement=0.0, note="")
                                  for i in range(n)]
        response.names = self._names_now()

        def fail(message):
            response.message = message
            self.get_logger().warning(f"register_object {name!r} refused: {message}")
            return response

        try:
            validate_name(name)
        except LibraryError as exc:
            return fail(str(exc))
        if n == 0:
            return fail("no views: send 1..32 sensor_msgs/Image views of the object in 'views'")
        if n > MAX_VIEWS:
            return fail(f"{n} views sent, at most {MAX_VIEWS} are accepted: send fewer views")
        if name in self._objects.names and not request.replace:
            return fail(f"object {name!r} already exists: set replace=true to overwrite it, "
                        "or remove it first")
        if name not in self._objects.names and \
                len(self._objects.names) >= self._param("max_objects"):
            return fail(f"the library is full ({len(self._objects.names)} objects, "
                        f"max_objects={self._param('max_objects')}): remove an object or raise "
                        "max_objects")
        views, bad = [], []
        for i, view in enumerate(request.views):
            try:
                if view.width < MIN_VIEW_SIDE or view.height < MIN_VIEW_SIDE:
                    raise ValueError(f"size {view.width}x{view.height} is too small: each side "
                                     f"must be at least {MIN_VIEW_SIDE} pixels")
                if view.width > MAX_VIEW_SIDE or view.height > MAX_VIEW_SIDE:
                    raise ValueError(f"size {view.width}x{view.height} is too large: each side "
                                     f"must be at most {MAX_VIEW_SIDE} pixels (crop or scale "
                                     "the view to the object)")
                rgb, alpha = image_msg_to_array(view)
                if alpha is not None:
                    rgb = np.dstack([rgb, alpha])
                views.append(np.ascontiguousarray(rgb, dtype=np.uint8))
            except ValueError as exc:
                response.view_feedback[i].note = str(exc)
                bad.append(f"view {i}: {exc}")
        if bad:
            return fail("invalid views, nothing registered: " + "; ".join(bad) +
                        " (supported encodings: rgb8, bgr8, rgba8, bgra8, mono8, mono16)")
        with self._registration_lock:
            try:
                embedding = self.detector.embed_views(views)
            except ValueError as exc:
                return fail(f"the views could not be embedded: {exc}")
            agreement = np.asarray(embedding.agreement, np.float32).reshape(-1)
            for i, fb in enumerate(response.view_feedback):
                fb.used = True
                fb.agreement = float(agreement[i]) if i < agreement.size else 0.0
            for i in disagreeing_views(agreement):
                response.view_feedback[i].note = DISAGREE_NOTE
            try:
                replaced = name in self._objects.names
                snapshot = self.library.add(name, views, embedding, replace=request.replace)
            except LibraryError as exc:
                for fb in response.view_feedback:
                    fb.used = False
                return fail(str(exc))
            except OSError as exc:
                for fb in response.view_feedback:
                    fb.used = False
                return fail(f"storing the object in {self.library.directory} failed: {exc}")
            self._objects = snapshot  # atomic swap: frames see the old or the new set
        response.success = True
        response.num_views_used = n
        response.names = list(snapshot.names)
        outliers = [fb.index for fb in response.view_feedback if fb.note]
        response.message = (f"{'replaced' if replaced else 'registered'} {name!r} from {n} "
                            f"view{'s' if n != 1 else ''}")
        if outliers:
            response.message += (f"; views {outliers} disagree with the others: check they show "
                                 "the same object")
        self.get_logger().info(response.message)
        return response

    def _on_remove(self, request, response):
        response.success = False
        with self._registration_lock:
            try:
                validate_name(request.name)
                snapshot = self.library.remove(request.name)
            except LibraryError as exc:
                response.message = str(exc)
                response.names = self._names_now()
                return response
            except OSError as exc:
                response.message = f"removing {request.name!r} failed: {exc}"
                response.names = self._names_now()
                return response
            self._objects = snapshot
        response.success = True
        response.message = f"removed {request.name!r}"
        response.names = list(snapshot.names)
        self.get_logger().info(response.message)
        return response

    def _on_list(self, request, response):
        entries = self.library.entries()
        response.success = True
        response.model_id = self.model_id
        response.names = [n for n, _ in entries]
        response.num_views = [int(v) for _, v in entries]
        response.message = f"{len(entries)} object{'s' if len(entries) != 1 else ''}"
        if self.library.skipped:
            response.message += f"; unreadable entries skipped: {self.library.skipped}"
        return response

    # ---------------------------------------------------------------------------------------
    # diagnostics
    def _publish_diagnostics(self):
        now = time.monotonic()
        with self._stats_lock:
            processed = sum(c.processed for c in self.cameras)
            lat = sorted(self._latencies)
            inf = sorted(self._inference)
            errors, last_error = self._errors, self._last_error
        with self._cv:
            received = sum(c.received for c in self.cameras)
            dropped = sum(c.dropped for c in self.cameras)
        t_prev, processed_prev = self._diag_prev
        rate = (processed - processed_prev) / max(now - t_prev, 1e-6)
        self._diag_prev = (now, processed)

        def pct(values, q):
            return values[min(len(values) - 1, int(q * len(values)))] if values else 0.0

        names = list(self._objects.names)
        status = DiagnosticStatus()
        status.name = f"yolz_ros: {self.get_fully_qualified_name()}"
        status.hardware_id = self.model_id
        if received == 0:
            status.level, status.message = DiagnosticStatus.WARN, "no images received yet"
        elif not names:
            status.level, status.message = DiagnosticStatus.OK, "running; no objects registered"
        else:
            status.level, status.message = DiagnosticStatus.OK, f"running; {len(names)} objects"
        if errors and last_error:
            status.message += f"; {errors} frames skipped, last: {last_error}"
            if status.level == DiagnosticStatus.OK:
                status.level = DiagnosticStatus.WARN
        values = {
            "rate_hz": f"{rate:.2f}",
            "latency_p50_ms": f"{pct(lat, 0.5):.2f}",
            "latency_p95_ms": f"{pct(lat, 0.95):.2f}",
            "inference_p50_ms": f"{pct(inf, 0.5):.2f}",
            "frames_received": str(received),
            "frames_processed": str(processed),
            "frames_dropped": str(dropped),
            "frames_rejected": str(sum(c.rejected for c in self.cameras)),
            "overlays_published": str(sum(c.overlays for c in self.cameras)),
            "errors": str(errors),
            "last_error": last_error,
            "backend": str(self.detector.backend_name),
            "engine": "ready",
            "model_id": self.model_id,
            "model_dir": str(self.model_dir),
            "objects": str(len(names)),
            "object_names": ",".join(names),
            "library_dir": str(self.library.directory),
            "library_skipped": ",".join(self.library.skipped),
            "cameras": ",".join(c.resolved for c in self.cameras),
        }
        status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
        statuses = [status]
        if len(self.cameras) > 1:
            for cam in self.cameras:
                s = DiagnosticStatus(name=f"{status.name} camera {cam.resolved}",
                                     hardware_id=self.model_id, level=DiagnosticStatus.OK,
                                     message="ok" if cam.received else "no images yet")
                s.values = [KeyValue(key=k, value=str(v)) for k, v in (
                    ("frames_received", cam.received), ("frames_processed", cam.processed),
                    ("frames_dropped", cam.dropped), ("frames_rejected", cam.rejected))]
                statuses.append(s)
        msg = DiagnosticArray(status=statuses)
        msg.header.stamp = self.get_clock().now().to_msg()
        self.pub_diagnostics.publish(msg)

    # ---------------------------------------------------------------------------------------
    def stop(self):
        """Stop the worker thread (before destroy_node)."""
        self._stop.set()
        with self._cv:
            self._cv.notify_all()
        if self._worker.is_alive() and self._worker is not threading.current_thread():
            self._worker.join(timeout=5.0)

    def destroy_node(self):
        if hasattr(self, "_worker"):
            self.stop()
        return super().destroy_node()


def main(args=None):
    rclpy.init(args=args)
    logger = rclpy.logging.get_logger("yolz")
    try:
        node = YolzNode()
    except (StartupError, rclpy.exceptions.ParameterException) as exc:
        logger.fatal(str(exc))
        rclpy.try_shutdown()
        return 1
    except (KeyboardInterrupt, ExternalShutdownException):
        rclpy.try_shutdown()
        return 0
    except Exception:
        if not rclpy.ok():  # SIGINT/SIGTERM while starting: not an error
            return 0
        raise
    executor = MultiThreadedExecutor(num_threads=4)
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        # SIGINT/SIGTERM can shut the context down while the executor is building its wait set;
        # rclpy then raises RCLError instead of ExternalShutdownException. Still a clean stop.
        if rclpy.ok():
            raise
    finally:
        if rclpy.ok():
            node.get_logger().info("shutting down")
        node.destroy_node()
        executor.shutdown(timeout_sec=1.0)
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
