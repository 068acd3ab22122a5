"""One frame's processing and the worker loop: decode -> detect -> peaks -> messages -> publish;
with depth, then 3D points -> publish. Plain Python: the node hands in publishers, the detector
and a getter for the current (snapshot, settings).

The worker serves cameras in turn, newest frame of each (yolz_ros.ros.mailbox). The 3D step runs
per camera, on a thread of the camera's own (:class:`DepthLane`): the worker hands it the
processed frame and goes on, and the lane waits there for the frame's depth image, so a slow or
silent depth stream costs its own camera's 3D output and nothing else.
"""
from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, List, Optional

import numpy as np

from yolz_ros.runtime.depth import DepthError, Intrinsics, locate, merge_located
from yolz_ros.ros.depth_input import check_depth_header, depth_to_metres, stamp_seconds
from yolz_ros.ros.image_msgs import (check_frame_header, compressed_msg_to_rgb, image_msg_to_array,
                                     rgb_to_image_msg)
from yolz_ros.ros.outputs import (Frame, detection2d_array, detection3d_array, markers,
                              object_detections, probabilities_msg)
from yolz_ros.runtime.overlay import render_overlay
from yolz_ros.runtime.decode import peak_cell
from yolz_ros.ros.cameras import Camera
from yolz_ros.ros.mailbox import Mailbox
from yolz_ros.ros.params import Settings, detection_threshold

MAX_COMPRESSED_BYTES = 64 * 1024 * 1024


def decode_frame(msg, max_pixels: int) -> np.ndarray:
    """sensor_msgs/Image or CompressedImage -> RGB uint8; ValueError saying what is wrong."""
    if hasattr(msg, "format"):  # CompressedImage
        if len(msg.data) > MAX_COMPRESSED_BYTES:
            raise ValueError(f"compressed image of {len(msg.data)} bytes is too large")
        rgb, _ = compressed_msg_to_rgb(msg, max_pixels=max_pixels)
    else:
        rgb, _ = image_msg_to_array(msg, max_pixels=max_pixels)  # alpha: unused for scenes
    return rgb


def header_seconds(msg) -> float:
    """The message's header stamp in seconds; 0.0 (unstamped) when it has none."""
    try:
        return stamp_seconds(msg.header.stamp)
    except AttributeError:
        return 0.0


def analyse(rgb, header, camera: str, detector, snapshot, settings: Settings) -> Frame:
    """One frame through the detector: probabilities of every registered object (lowered where a
    cell matches one of its negative views better), its peaks at the threshold in ``settings``,
    the cell -> pixel mapping."""
    names = tuple(snapshot.names)
    result = detector.detect(rgb, snapshot.embeddings, zoom=settings.zoom,
                             negatives=getattr(snapshot, "negatives", None),
                             look_closer=settings.look_closer if settings.zoom <= 1.0 else 0)
    threshold = detection_threshold(settings.threshold, detector.info.default_threshold)
    return frame_of(result, rgb, header, camera, detector, names, threshold)


def frame_of(result, rgb, header, camera: str, detector, names, threshold: float) -> Frame:
    """A detection result of ``names`` -> the Frame the messages are made of (its peaks at
    ``threshold``); the ~/find action's result is made the same way."""
    detections = object_detections(names, detector.peaks(result, threshold))
    lb = result.letterbox
    h, w = rgb.shape[:2]
    return Frame(header=header, camera=camera, model_id=detector.model_id, names=tuple(names),
                 probabilities=np.asarray(result.probabilities, np.float32),
                 mapping=(float(lb.scale), float(lb.offset_x), float(lb.offset_y)),
                 stride=int(detector.info.stride), image_size=(int(w), int(h)),
                 detections=tuple(detections), boxes=result.boxes, threshold=threshold,
                 passes=int(result.passes))


@dataclass
class Stats:
    latencies: collections.deque = field(default_factory=lambda: collections.deque(maxlen=200))
    inference: collections.deque = field(default_factory=lambda: collections.deque(maxlen=200))
    passes: collections.deque = field(default_factory=lambda: collections.deque(maxlen=200))
    errors: int = 0
    last_error: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)


class DepthLane:
    """The 3D step of one camera on a thread of its own: the newest processed frame of the
    camera waits here for its depth image. A frame replaced before its 3D step started is
    skipped (``handle_skipped``); the worker never waits."""

    def __init__(self, cam: Camera, handle: Callable, handle_skipped: Callable):
        self.cam = cam
        self.handle = handle  # (cam, header, frame, settings) -> None
        self.handle_skipped = handle_skipped  # (cam, frame) -> None
        self._cv = threading.Condition()
        self._pending = None  # (header, frame, settings)
        self._stop = False
        self._thread: Optional[threading.Thread] = None

    def start(self) -> None:
        self._stop = False
        self._thread = threading.Thread(target=self._run, name=f"yolz_3d_{self.cam.key}",
                                        daemon=True)
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def put(self, header, frame: Frame, settings: Settings) -> None:
        with self._cv:
            replaced, self._pending = self._pending, (header, frame, settings)
            self._cv.notify()
        if replaced is not None:
            self.handle_skipped(self.cam, replaced[1])

    def stop(self, timeout: float = 5.0) -> None:
        with self._cv:
            self._stop = True
            pending, self._pending = self._pending, None
            self._cv.notify_all()
        if pending is not None:
            self.handle_skipped(self.cam, pending[1])
        t = self._thread
        if t is not None and t.is_alive() and t is not threading.current_thread():
            t.join(timeout=timeout)
        self._thread = None

    def _run(self) -> None:
        while True:
            with self._cv:
                self._cv.wait_for(lambda: self._stop or self._pending is not None)
                if self._stop:
                    return
                (header, frame, settings), self._pending = self._pending, None
            self.handle(self.cam, header, frame, settings)


class Pipeline:
    """Processes frames from the mailbox on one worker thread and publishes the results.

    ``state()`` returns the current (snapshot, settings); both are immutable and swapped whole
    by their owners, so a frame sees one consistent pair. ``on_error(text)`` is told about every
    skipped frame (the node logs it, throttled)."""

    def __init__(self, cameras: List[Camera], detector, max_image_pixels: int,
                 state: Callable, on_error: Callable[[str], None],
                 on_warning: Optional[Callable[[str], None]] = None,
                 transform: Optional[Callable] = None):
        self.cameras = cameras
        self.mailbox = Mailbox(cameras)
        self.detector = detector
        self.max_image_pixels = int(max_image_pixels)
        self.state = state
        self.on_error = on_error
        self.on_warning = on_warning or on_error
        self.transform = transform  # (header, [(det, Point3D)]) -> same in target_frame, or None
        self.stats = Stats()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.lanes = {cam.key: DepthLane(cam, self._publish_3d_safely, self._skipped_3d)
                      for cam in cameras}

    # -- worker ------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the worker, and a 3D lane per camera with depth."""
        self._stop.clear()
        for cam in self.cameras:
            if cam.depth is not None:
                self.lanes[cam.key].start()
        self._thread = threading.Thread(target=self._work, name="yolz_worker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self.mailbox.wake()
        t = self._thread
        if t is not None and t.is_alive() and t is not threading.current_thread():
            t.join(timeout=timeout)
        self._thread = None
        for lane in self.lanes.values():
            lane.stop(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _work(self) -> None:
        next_allowed = 0.0
        while not self._stop.is_set():
            wait = next_allowed - time.monotonic()
            if wait > 0:
                self._stop.wait(wait)
                continue
            item = self.mailbox.take(0.1)
            if item is None:
                continue
            cam, msg = item
            started = time.monotonic()
            _, settings = self.state()
            try:
                self.process(cam, msg)
            except Exception as exc:  # noqa: BLE001 - never let a frame kill the worker
                self.error(cam, f"processing a frame from {cam.resolved} failed: "
                                f"{type(exc).__name__}: {exc}")
            rate = settings.max_rate
            next_allowed = started + 1.0 / rate if rate > 0 else 0.0

    # -- one frame ---------------------------------------------------------------------------
    def receive(self, cam: Camera, msg) -> None:
        """The subscription callback: a frame that fails the cheap header checks is counted and
        reported at once; a sound one becomes the camera's newest pending frame."""
        try:
            check_frame_header(msg, self.max_image_pixels, MAX_COMPRESSED_BYTES)
        except ValueError as exc:
            with self.mailbox.cv:
                cam.received += 1
            self.error(cam, f"bad frame on {cam.resolved}: {exc}")
            return
        cam.newest = (msg, time.monotonic())  # what register_from_camera cuts views from
        cam.health.colour_arrived(header_seconds(msg))
        self.mailbox.put(cam, msg)

    def receive_depth(self, cam: Camera, msg) -> None:
        """The depth subscription callback: a sound depth image joins the camera's recent ones."""
        try:
            check_depth_header(msg, self.max_image_pixels)
        except DepthError as exc:
            self.warn(f"bad depth image on {cam.depth_topic}: {exc} (no 3D for its frames)")
            return
        cam.health.depth_arrived(header_seconds(msg))
        cam.depth.put_depth(msg)

    def receive_info(self, cam: Camera, msg) -> None:
        cam.depth.put_info(msg)

    def warn(self, text: str) -> None:
        """A problem that costs 3D output but not the frame (throttled by the node)."""
        self.on_warning(text)

    def error(self, cam: Optional[Camera], text: str) -> None:
        with self.stats.lock:
            self.stats.errors += 1
            self.stats.last_error = text
            if cam is not None:
                cam.rejected += 1
        self.on_error(text)

    def process(self, cam: Camera, msg) -> Optional[Frame]:
        """Decode, detect, publish ~/probabilities, ~/detections and (while subscribed)
        ~/overlay. A bad frame is counted and reported, and None returned."""
        t0 = time.perf_counter()
        try:
            rgb = decode_frame(msg, self.max_image_pixels)
        except ValueError as exc:  # ImageError is a ValueError
            self.error(cam, f"bad frame on {cam.resolved}: {exc}")
            return None
        snapshot, settings = self.state()
        started = time.perf_counter()
        frame = analyse(rgb, msg.header, cam.resolved, self.detector, snapshot, settings)
        inference_ms = (time.perf_counter() - started) * 1e3 if frame.names else 0.0
        cam.pub_probabilities.publish(probabilities_msg(frame))
        if cam.pub_detections is not None:
            cam.pub_detections.publish(detection2d_array(frame))
        overlay = False
        if settings.publish_overlay and cam.pub_overlay is not None and \
                cam.pub_overlay.get_subscription_count() > 0:
            img = render_overlay(rgb, frame.probabilities, frame.mapping, frame.stride,
                                 frame.detections, alpha=settings.overlay_alpha,
                                 draw_peaks=settings.draw_peaks)
            cam.pub_overlay.publish(rgb_to_image_msg(img, msg.header))
            overlay = True
        if cam.depth is not None:
            self.hand_3d(cam, msg.header, frame, settings)
        with self.stats.lock:
            cam.processed += 1
            cam.overlays += int(overlay)
            self.stats.latencies.append((time.perf_counter() - t0) * 1000.0)
            self.stats.inference.append(inference_ms)
            self.stats.passes.append(frame.passes)
        return frame

    # -- 3D ----------------------------------------------------------------------------------
    def hand_3d(self, cam: Camera, header, frame: Frame, settings: Settings) -> None:
        """The frame's 3D step: on the camera's lane when the pipeline runs (the worker goes on),
        else here and now (a pipeline driven by hand, as in tests)."""
        lane = self.lanes.get(cam.key)
        if lane is not None and lane.running:
            lane.put(header, frame, settings)
        else:
            self._publish_3d_safely(cam, header, frame, settings)

    def _publish_3d_safely(self, cam: Camera, header, frame: Frame, settings: Settings) -> None:
        try:
            self.publish_3d(cam, header, frame, settings)
        except Exception as exc:  # noqa: BLE001 - never let a frame kill the lane
            self.warn(f"no 3D for {cam.resolved}: {type(exc).__name__}: {exc}")

    def _skipped_3d(self, cam: Camera, frame: Frame) -> None:
        with self.stats.lock:
            cam.skipped_3d += 1
            cam.unlocated += len(frame.detections)

    def depth_of(self, cam: Camera, header, settings: Settings):
        """(depth image, camera_info) of the frame with ``header``: the depth image that matches
        its stamp, or None (and a warning)."""
        stamp = stamp_seconds(header.stamp)
        depth_msg, why = cam.depth.match(stamp, settings.depth_tolerance, settings.depth_timeout)
        if depth_msg is None:
            if not cam.depth.starting():  # its first depth image may still be on its way
                self.warn(f"no 3D for {cam.resolved}: {why} ({cam.depth_topic})")
            return None
        info = cam.depth.info_for(stamp, settings.depth_tolerance)
        if info is None:
            self.warn(f"no 3D for {cam.resolved}: no camera_info received on {cam.info_topic}")
            return None
        return depth_msg, info

    def locate_frame(self, cam: Camera, header, frame: Frame, settings: Settings, depth=None):
        """[(detection, Point3D)] of a processed frame from its matching depth image and the
        camera_info (``depth``: that pair, taken before; None: matched now), or None (and a
        warning) when the frame cannot have 3D output."""
        depth = depth or self.depth_of(cam, header, settings)
        if depth is None:
            return None
        depth_msg, info = depth
        w, h = frame.image_size
        try:
            intrinsics = Intrinsics.from_camera_info(info)
            intrinsics.check_image(w, h, "colour image")
            if (depth_msg.width, depth_msg.height) != (w, h):
                raise DepthError(f"the depth image is {depth_msg.width}x{depth_msg.height} but "
                                 f"the colour image is {w}x{h}: the node needs depth registered "
                                 "to the colour image (e.g. aligned_depth_to_color)")
            depth_m = depth_to_metres(depth_msg)
        except DepthError as exc:
            self.warn(f"no 3D for {cam.resolved}: {exc}")
            return None
        found = []
        for det, k in frame.detections:
            rc = peak_cell(frame.boxes, det.peak_x, det.peak_y)
            point, why = locate(depth_m, intrinsics, frame.probabilities[k], frame.boxes, rc,
                                frame.threshold)
            if point is None:
                self.warn(f"no 3D for {det.name!r} on {cam.resolved}: {why}")
                continue
            found.append((det, k, point))
        # two detections of one object that found the same surface are one (the stronger)
        kept = merge_located([(k, point) for _, k, point in found])
        if len(kept) < len(found):
            with self.stats.lock:
                cam.merged_3d += len(found) - len(kept)
        return [(found[i][0], found[i][2]) for i in kept]

    def located_3d(self, cam: Camera, header, frame: Frame, settings: Settings, depth=None):
        """(header, [(detection, Point3D)]) of a processed frame, in target_frame when one is
        set, or None (and a warning) when the frame cannot have 3D output (``depth`` as
        locate_frame's). Counts the frame's located and unlocated detections."""
        located = self.locate_frame(cam, header, frame, settings, depth)
        with self.stats.lock:
            n = len(located) if located is not None else 0
            cam.located += n
            cam.unlocated += len(frame.detections) - n
        if located is None:
            return None
        if self.transform is not None:
            try:
                header, located = self.transform(header, located)
            except Exception as exc:  # noqa: BLE001 - a missing transform costs this frame's 3D
                self.warn(f"no 3D for {cam.resolved}: {exc}")
                return None
        return header, located

    def publish_3d(self, cam: Camera, header, frame: Frame, settings: Settings) -> None:
        out = self.located_3d(cam, header, frame, settings)
        if out is None:
            return
        header, located = out
        cam.pub_detections_3d.publish(detection3d_array(header, located))
        if settings.publish_markers and cam.pub_markers is not None and \
                cam.pub_markers.get_subscription_count() > 0:
            cam.pub_markers.publish(markers(header, located))
