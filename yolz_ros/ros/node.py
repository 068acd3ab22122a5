"""The yolz ROS 2 node: wiring only (parameters, publishers, subscriptions, services, executor).

What it decides lives in plain modules beside it (yolz_ros.ros): params (the parameter table,
start-only rule, live Settings), startup (model and library), registration (service requests),
cameras / mailbox / pipeline (per-camera state, newest-frame mailbox, the worker and one frame),
outputs (messages), diagnostics; and below them the runtime (yolz_ros.runtime: detector, library,
overlay, depth maths).

Interface (node name `yolz` by default, everything relative so namespaces and remaps work):

  subscribes  image                     sensor_msgs/Image (or `image/compressed` with
                                        image_transport=compressed); one per `image_topics` entry
  subscribes  depth, camera_info         (use_depth) sensor_msgs/Image 16UC1 mm | 32FC1 m registered
                                        to the colour image, sensor_msgs/CameraInfo; one pair per
                                        camera (depth_topics, camera_info_topics)
  publishes   ~/probabilities           yolz_ros/ObjectProbabilities, one per processed frame
              ~/detections              vision_msgs/Detection2DArray, one per processed frame
              ~/detections_3d           (use_depth) vision_msgs/Detection3DArray, per processed
                                        frame with a matching depth: the visible surface's centre
              ~/markers                 (use_depth) visualization_msgs/MarkerArray, while
                                        subscribed
              ~/overlay                 sensor_msgs/Image rgb8 (computed only while subscribed)
              (several cameras: ~/<camera>/probabilities, ~/<camera>/detections, ...)
              ~/label_info              vision_msgs/LabelInfo, transient local, on every change
              /diagnostics              diagnostic_msgs/DiagnosticArray, once per second
  services    ~/register_object, ~/register_from_camera, ~/add_views, ~/remove_object,
              ~/list_objects, ~/get_object_views
  action      ~/find                    yolz_ros/action/Find: the thorough multi-scale pass on
                                        the newest frame of a camera, pass by pass (feedback,
                                        cancel, time limit; yolz_ros/ros/find.py)

Two modes: the plain node (default) configures and activates itself at start; `--managed` makes
it a lifecycle node: configure loads the model and library and creates the outputs and services,
activate subscribes to the cameras and starts the worker, deactivate stops the worker and
releases the cameras, cleanup drops the model.

Threading: one single-threaded executor (yolz_ros/ros/spin.py says why) takes every message
and request; camera callbacks only store the newest message per camera, and one worker thread
processes frames. What takes long runs off the executor and its callback awaits it, so frames,
listings and cancels are taken meanwhile: a registration's work (the embedder, GrabCut) on one
thread (registration.Registrar), so it takes at most one core from the frame worker; a ~/find
search on a thread of its own (a second goal is refused while one runs, a cancel is heard), one
network pass at a time, so the worker's frames are processed between its passes. Writes
(register/remove) are one mutually exclusive callback group, so they run one at a time, and a
listing never waits behind them (the library's listing is lock-free). The library's snapshot and
the live settings are immutable and swapped whole: a frame sees one consistent pair.
"""
from __future__ import annotations

import concurrent.futures
import functools
import logging
import signal
import sys

import rclpy
import rclpy.exceptions
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from vision_msgs.msg import Detection2DArray, Detection3DArray, LabelInfo
from visualization_msgs.msg import MarkerArray

from yolz_ros.action import Find
from yolz_ros.ros import registration
from yolz_ros.ros.find import FindAction
from yolz_ros.ros.depth_input import DepthStore
from yolz_ros.ros.diagnostics import Diagnostics
from yolz_ros.ros.cameras import Camera, camera_keys, output_prefix
from yolz_ros.ros.pipeline import Pipeline
from yolz_ros.runtime.log_throttle import ReasonThrottle
from yolz_ros.msg import ObjectProbabilities
from yolz_ros.ros.outputs import label_info
from yolz_ros.ros.params import (BY_NAME, PARAMS, ConfigError, Settings, check_changes,
                             descriptor, detection_threshold, start_config)
from yolz_ros.ros.spin import finished, spin_until_shutdown
from yolz_ros.srv import (AddViews, GetObjectViews, ListObjects, RegisterFromCamera,
                          RegisterObject, RemoveObject)
from yolz_ros.ros.startup import StartupError, load_detector, model_folder, open_library


class _RosLogHandler(logging.Handler):
    """Forwards Python logging (the runtime's backends, the library) to the node's ROS logger."""

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


class YolzCore:
    """Everything both node kinds share; ``node`` is an rclpy Node or LifecycleNode."""

    def __init__(self, node):
        self.node = node
        self.log = node.get_logger()
        for p in PARAMS:
            node.declare_parameter(p.name, p.default, descriptor(p))
        self.settings = Settings.from_values({n: node.get_parameter(n).value for n in BY_NAME})
        self.configured = False
        self.active = False
        self.detector = self.library = self.pipeline = self.cfg = None
        self._entities = []  # publishers, services, timers created at configure
        self._registrar = registration.Registrar()  # the embedder and GrabCut, one thread
        # a search's thread, and one to refuse a second goal on while a search runs
        self._find_pool = concurrent.futures.ThreadPoolExecutor(2, "yolz_find")
        self._wake = node.create_guard_condition(lambda: None)  # off-executor work finished
        self._image_group = MutuallyExclusiveCallbackGroup()
        # register / remove (writes): one at a time, across a registration's await too
        self._service_group = MutuallyExclusiveCallbackGroup()
        self._read_group = MutuallyExclusiveCallbackGroup()  # list: never waits behind writes
        self._diag_group = MutuallyExclusiveCallbackGroup()
        self._frame_log = ReasonThrottle(period_s=5.0)  # per reason, not one for all frames
        self._depth_group = MutuallyExclusiveCallbackGroup()
        self._find_group = ReentrantCallbackGroup()  # ~/find: a search, its cancel, a refusal
        self._find = FindAction(self)
        self._diagnostics = Diagnostics(f"yolz_ros: {node.get_fully_qualified_name()}",
                                        warn=self.log.warning)  # lossy or late cameras
        node.add_on_set_parameters_callback(self._on_set_parameters)

    # -- parameters --------------------------------------------------------------------------
    def _on_set_parameters(self, parameters):
        changes = {p.name: p.value for p in parameters}
        reason = check_changes(changes, self.configured)
        if reason:
            return SetParametersResult(successful=False, reason=reason)
        self.settings = self.settings.updated(changes)
        if "threshold" in changes and self.configured:
            self._publish_label_info()
        return SetParametersResult(successful=True)

    # -- lifecycle ---------------------------------------------------------------------------
    def configure(self):
        """Load the model and the library; create the outputs and services (StartupError)."""
        node = self.node
        try:
            cfg = start_config({n: node.get_parameter(n).value for n in BY_NAME})
        except ConfigError as exc:
            raise StartupError(str(exc)) from None
        detector = load_detector(cfg, _python_logger(self.log))
        info = detector.info
        self.log.info(f"model {detector.model_id} from {model_folder(cfg)} on backend "
                      f"{detector.backend_name} (input {info.input_size[1]}x{info.input_size[0]}, "
                      f"grid {info.rows}x{info.cols})")
        library = open_library(cfg, detector, self.log)
        names = list(library.snapshot.names)
        self.log.info(f"object library {library.directory}: {len(names)} objects {names}")
        self.cfg, self.detector, self.library = cfg, detector, library

        out_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5,
                             reliability=ReliabilityPolicy.RELIABLE)
        latched = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                             reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        cameras = []
        for topic, key in zip(cfg.image_topics, camera_keys(cfg.image_topics)):
            cam = Camera(topic, key)
            prefix = output_prefix(key, len(cfg.image_topics))
            cam.pub_probabilities = self._output(ObjectProbabilities, prefix + "probabilities",
                                                 out_qos)
            cam.pub_detections = self._output(Detection2DArray, prefix + "detections", out_qos)
            cam.pub_overlay = self._output(Image, prefix + "overlay", out_qos)
            cameras.append(cam)
        if cfg.use_depth:
            for cam, depth, info in zip(cameras, cfg.depth_topics, cfg.camera_info_topics):
                prefix = output_prefix(cam.key, len(cameras))
                cam.depth, cam.depth_topic, cam.info_topic = DepthStore(), depth, info
                cam.pub_detections_3d = self._output(Detection3DArray, prefix + "detections_3d",
                                                     out_qos)
                cam.pub_markers = self._output(MarkerArray, prefix + "markers", out_qos)
        transform = None
        if cfg.target_frame:
            from yolz_ros.ros.transform import TargetFrame
            try:
                transform = TargetFrame(node, cfg.target_frame)
            except RuntimeError as exc:
                raise StartupError(str(exc)) from None
        self.pipeline = Pipeline(cameras, detector, cfg.max_image_pixels, self._frame_state,
                                 self._frame_error, self._frame_warning, transform)
        self.pub_label_info = self._output(LabelInfo, "~/label_info", latched)
        # /diagnostics reports every state, inactive included: a plain publisher
        self.pub_diagnostics = self._keep(node.create_publisher(DiagnosticArray, "/diagnostics",
                                                                10))
        g = self._service_group
        self._keep(node.create_service(RegisterObject, "~/register_object", self._on_register,
                                       callback_group=g))
        self._keep(node.create_service(RemoveObject, "~/remove_object", self._on_remove,
                                       callback_group=g))
        self._keep(node.create_service(RegisterFromCamera, "~/register_from_camera",
                                       self._on_register_from_camera, callback_group=g))
        self._keep(node.create_service(AddViews, "~/add_views", self._on_add_views,
                                       callback_group=g))
        self._keep(node.create_service(GetObjectViews, "~/get_object_views",
                                       self._on_get_object_views, callback_group=g))
        self._keep(node.create_service(ListObjects, "~/list_objects", self._on_list,
                                       callback_group=self._read_group))
        self._keep(ActionServer(node, Find, "~/find", execute_callback=self._on_find,
                                goal_callback=lambda goal: GoalResponse.ACCEPT,
                                cancel_callback=lambda goal_handle: CancelResponse.ACCEPT,
                                callback_group=self._find_group))
        self._keep(node.create_timer(1.0, self._publish_diagnostics,
                                     callback_group=self._diag_group))
        self.configured = True

    def activate(self):
        """Subscribe to the cameras and start the worker."""
        node, cfg = self.node, self.cfg
        in_qos = QoSProfile(
            history=HistoryPolicy.KEEP_LAST, depth=cfg.qos_depth,
            reliability=(ReliabilityPolicy.RELIABLE if cfg.qos_reliability == "reliable"
                         else ReliabilityPolicy.BEST_EFFORT),
            durability=DurabilityPolicy.VOLATILE)
        for cam in self.pipeline.cameras:
            put = functools.partial(self.pipeline.receive, cam)
            if cfg.image_transport == "compressed":
                # like image_transport: remap the base topic, then append /compressed
                cam.resolved = node.resolve_topic_name(cam.topic)
                cam.subscription = node.create_subscription(
                    CompressedImage, cam.resolved.rstrip("/") + "/compressed", put, in_qos,
                    callback_group=self._image_group)
            else:
                cam.subscription = node.create_subscription(
                    Image, cam.topic, put, in_qos, callback_group=self._image_group)
                cam.resolved = cam.subscription.topic_name
            self.log.info(f"camera {cam.resolved} ({cfg.image_transport}, "
                          f"{cfg.qos_reliability}) -> {cam.pub_probabilities.topic_name}, "
                          f"{cam.pub_detections.topic_name}, {cam.pub_overlay.topic_name}")
            if cam.depth is not None:
                on_depth = functools.partial(self.pipeline.receive_depth, cam)
                on_info = functools.partial(self.pipeline.receive_info, cam)
                g = self._depth_group
                subs = [node.create_subscription(Image, cam.depth_topic, on_depth, in_qos,
                                                 callback_group=g),
                        node.create_subscription(CameraInfo, cam.info_topic, on_info, in_qos,
                                                 callback_group=g)]
                cam.depth_topic, cam.info_topic = (sub.topic_name for sub in subs)
                cam.depth_subscriptions = subs
                self.log.info(f"depth {cam.depth_topic} + {cam.info_topic} -> "
                              f"{cam.pub_detections_3d.topic_name}, {cam.pub_markers.topic_name}"
                              f" (frame: {cfg.target_frame or 'the image header frame_id'})")
        self.pipeline.start()
        self.active = True
        self._publish_label_info()  # (re)latched now that the outputs publish

    def deactivate(self):
        """Stop the worker and release the cameras (pending frames count as dropped)."""
        self.active = False
        if self.pipeline is None:
            return
        for cam in self.pipeline.cameras:
            if cam.subscription is not None:
                self.node.destroy_subscription(cam.subscription)
                cam.subscription = None
            for sub in cam.depth_subscriptions:
                self.node.destroy_subscription(sub)
            cam.depth_subscriptions = []
        self.pipeline.stop()
        self.pipeline.mailbox.clear()

    def cleanup(self):
        """Drop the outputs, the services, the library and the model."""
        self.deactivate()
        for entity in reversed(self._entities):
            self._destroy(entity)
        self._entities = []
        self.configured = False
        self.detector = self.library = self.pipeline = self.cfg = None

    def _keep(self, entity):
        self._entities.append(entity)
        return entity

    def _output(self, msg_type, topic, qos):
        """An output publisher: a lifecycle publisher on the managed node (it publishes only
        while active, as nav2-style managers expect), a plain one on the plain node."""
        create = getattr(self.node, "create_lifecycle_publisher", self.node.create_publisher)
        return self._keep(create(msg_type, topic, qos))

    def _destroy(self, entity):
        node = self.node
        if type(entity).__name__ == "LifecyclePublisher":
            node.destroy_lifecycle_publisher(entity)
            return
        if isinstance(entity, ActionServer):
            entity.destroy()
            return
        for kind, destroy in (("Publisher", node.destroy_publisher),
                              ("Service", node.destroy_service),
                              ("Timer", node.destroy_timer)):
            if type(entity).__name__.endswith(kind):
                destroy(entity)
                return

    # -- frames ------------------------------------------------------------------------------
    def _frame_state(self):
        return self.library.snapshot, self.settings

    def _frame_error(self, text):
        if not rclpy.ok():  # shutting down: a frame in flight finds its publishers gone
            return
        line = self._frame_log.allow(text + " (frame skipped)")
        if line is not None:
            self.log.warning(line)

    def _frame_warning(self, text):
        line = self._frame_log.allow(text)
        if line is not None:
            self.log.warning(line)

    # -- services ----------------------------------------------------------------------------
    async def _off_executor(self, pool, fn, *args):
        """``fn(*args)`` on ``pool``'s thread, awaited: the executor takes messages meanwhile."""
        return await finished(pool.submit(fn, *args), self._wake)

    async def _on_register(self, request, response):
        snapshot = await self._off_executor(
            self._registrar, registration.register, request, response, self.library,
            self.detector.embed_views, self.cfg.max_objects)
        return self._registered(snapshot, "register_object", request.name, response)

    async def _on_register_from_camera(self, request, response):
        snapshot = await self._off_executor(
            self._registrar, registration.register_from_camera, request, response,
            self.library, self.detector.embed_views, self.pipeline.cameras,
            self.cfg.max_objects, self.settings.register_max_age, self.cfg.max_image_pixels,
            self.detector.object_mask, self.detector.info.tokens.dim)
        return self._registered(snapshot, "register_from_camera", request.name, response)

    async def _on_add_views(self, request, response):
        snapshot = await self._off_executor(
            self._registrar, registration.add_views, request, response, self.library,
            self.detector.embed_views, self.detector.info.tokens.dim, self.cfg.max_objects)
        return self._registered(snapshot, "add_views", request.name, response)

    async def _on_find(self, goal_handle):
        return await self._off_executor(self._find_pool, self._find.execute, goal_handle)

    def _on_get_object_views(self, request, response):
        return registration.get_object_views(request, response, self.library)

    def _registered(self, snapshot, service, name, response):
        """Log a registration's outcome; on success publish the new label_info."""
        if snapshot is None:
            self.log.warning(f"{service} {name!r} refused: {response.message}")
        else:
            self.log.info(response.message)
            self._publish_label_info()
        return response

    def _on_remove(self, request, response):
        snapshot = registration.remove(request, response, self.library)
        if snapshot is None:
            self.log.warning(f"remove_object {request.name!r} refused: {response.message}")
        else:
            self.log.info(response.message)
            self._publish_label_info()
        return response

    def _on_list(self, request, response):
        return registration.list_objects(response, self.library, self.detector.model_id)

    # -- outputs -----------------------------------------------------------------------------
    def _publish_label_info(self):
        threshold = detection_threshold(self.settings.threshold,
                                        self.detector.info.default_threshold)
        self.pub_label_info.publish(label_info(self.library.snapshot.names, threshold,
                                               self.node.get_clock().now().to_msg()))

    def _publish_diagnostics(self):
        state = "active" if self.active else ("inactive" if self.configured else "unconfigured")
        self.pub_diagnostics.publish(self._diagnostics.build(
            state=state, pipeline=self.pipeline, detector=self.detector,
            model_dir=self.detector.info.directory if self.detector else "",
            library=self.library, names=list(self.library.snapshot.names),
            stamp=self.node.get_clock().now().to_msg()))


class YolzNode(Node):
    """The plain node: configured and active from the start (StartupError stops it)."""

    def __init__(self, node_name: str = "yolz", **kwargs):
        super().__init__(node_name, **kwargs)
        self.core = YolzCore(self)
        self.core.configure()
        self.core.activate()

    def destroy_node(self):
        if hasattr(self, "core"):
            self.core.deactivate()
        return super().destroy_node()


def _lifecycle_node_class():
    from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn

    class YolzLifecycleNode(LifecycleNode):
        """The managed node: configure / activate / deactivate / cleanup / shutdown."""

        def __init__(self, node_name: str = "yolz", **kwargs):
            super().__init__(node_name, **kwargs)
            self.core = YolzCore(self)

        def on_configure(self, state):
            try:
                self.core.configure()
            except StartupError as exc:
                self.get_logger().error(f"configure failed: {exc}")
                self.core.cleanup()
                return TransitionCallbackReturn.FAILURE
            return TransitionCallbackReturn.SUCCESS

        def on_activate(self, state):
            result = super().on_activate(state)  # enables the lifecycle publishers first
            self.core.activate()
            return result

        def on_deactivate(self, state):
            self.core.deactivate()
            return super().on_deactivate(state)

        def on_cleanup(self, state):
            self.core.cleanup()
            return TransitionCallbackReturn.SUCCESS

        def on_shutdown(self, state):
            self.core.cleanup()
            return TransitionCallbackReturn.SUCCESS

        def destroy_node(self):
            if hasattr(self, "core"):
                self.core.deactivate()
            return super().destroy_node()

    return YolzLifecycleNode


USAGE = "usage: yolz_node [--managed] [--ros-args ...]"


def main(args=None):
    argv = list(sys.argv if args is None else args)
    own = rclpy.utilities.remove_ros_args(argv)[1:]
    if any(a not in ("--managed",) for a in own):
        print(f"unknown arguments {own}; {USAGE}", file=sys.stderr)
        return 2
    managed = "--managed" in own
    rclpy.init(args=argv)
    logger = rclpy.logging.get_logger("yolz")
    try:
        node = _lifecycle_node_class()() if managed else YolzNode()
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
    if managed:
        node.get_logger().info("managed mode: waiting for configure (lifecycle transitions on "
                               f"{node.get_fully_qualified_name()}/change_state)")
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        spin_until_shutdown(executor)
    finally:
        # Shutting down: a further SIGINT must not cut destroy_node short (a KeyboardInterrupt in
        # the pipeline's join, then an abort). Ctrl-C under `ros2 launch` sends two: the
        # terminal's to the whole process group, and the one launch passes on.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if rclpy.ok():
            node.get_logger().info("shutting down")
        node.destroy_node()
        executor.shutdown(timeout_sec=1.0)
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
