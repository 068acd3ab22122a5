"""What the DDS tests share: the test's own rclpy context and client node (Ros), the node
under test as its own process (start_node / wait_ready / stop_node), messages and made-up
objects, and the service calls. The fixtures `ros` and `tiny_model` are in conftest.py."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image

from yolz_ros.ros.client import RosTransport
from yolz_ros.ros.image_msgs import array_to_image_msg
from yolz_ros.runtime.model_info import DEFAULT_MODEL
from yolz_ros.srv import ListObjects, RegisterObject, RemoveObject

HERE = Path(__file__).parent
ROOT = HERE.parent
REAL_MODEL = Path(os.environ.get("YOLZ_TEST_MODEL", ROOT / "models" / DEFAULT_MODEL))
# The node runs in a namespace of this test run's own, so another run on the same machine that
# happens to share the ROS domain cannot answer our calls or feed our topics.
NS = f"/yolz_test_{os.getpid()}"
NODE = f"{NS}/yolz"


def image_msg(pixels, encoding, stamp_sec=0, frame_id="camera"):
    """A frame as a camera sends it: stamped ``stamp_sec`` s, from ``frame_id``."""
    msg = array_to_image_msg(pixels, encoding)
    msg.header.stamp.sec = int(stamp_sec)
    msg.header.frame_id = frame_id
    return msg


def object_views(n=3, seed=0, size=64):
    """Views of a made-up object: a striped disc, on plain gray, in slightly different poses."""
    rng = np.random.default_rng(seed)
    views = []
    for i in range(n):
        img = np.full((size, size, 3), 114, np.uint8)
        cv2.circle(img, (size // 2, size // 2), size // 3, (220, 40, 40), -1)
        for y in range(0, size, 8):
            cv2.line(img, (0, y + i), (size, y + i + 4), (250, 220, 30), 2)
        img = cv2.add(img, rng.integers(0, 8, img.shape, dtype=np.uint8))
        views.append(img)
    return views


def scene(seed=0, size=(120, 160)):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (*size, 3), dtype=np.uint8)


def spin_until(executor, done, timeout=10.0):
    """Spin ``executor`` until ``done()`` is true or ``timeout`` s pass; returns ``done()``.
    The one wait loop of the DDS tests."""
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.02)
    return done()


class Ros:
    """The test's own rclpy context, node and executor (those of a RosTransport of the node
    under test, yolz_ros/ros/client.py: the one service client), plus a /diagnostics listener
    and a frames publisher."""

    def __init__(self):
        # settle 0.5 s: we see the server's request reader before the server sees our response
        # reader; an answer sent in between is dropped (rmw_fastrtps waits only 100 ms for it)
        self.transport = RosTransport(NODE, "yolz_test_client", args=[], settle=0.5)
        self.node, self.executor = self.transport.node, self.transport.executor
        self.diagnostics = []
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 50)
        self.frames = self.node.create_publisher(Image, f"{NS}/image", qos_profile_sensor_data)

    def _on_diag(self, msg):
        for status in msg.status:
            if status.name.endswith(f" {NODE}"):
                self.diagnostics.append({kv.key: kv.value for kv in status.values})

    def spin_until(self, done, timeout=10.0):
        return spin_until(self.executor, done, timeout)

    def spin_for(self, seconds):
        self.spin_until(lambda: False, seconds)

    def _ready(self, srv_type, name, timeout):
        key = self.transport.add_service(srv_type, name)
        try:
            self.transport.wait_ready([key], timeout)
        except TimeoutError:
            raise AssertionError(f"{name} not available") from None
        return key

    def client(self, srv_type, name, timeout=20.0):
        """A client of service ``name``, ready to call (created once)."""
        return self.transport.clients[self._ready(srv_type, name, timeout)]

    def try_call(self, srv_type, name, request, timeout=20.0):
        """The answer, or None if none came in ``timeout`` s (DDS can drop an answer)."""
        return self.transport.call(self._ready(srv_type, name, timeout), request, timeout)

    def call(self, srv_type, name, request, timeout=20.0, idempotent=False):
        """The answer to ``request``; an idempotent request is sent again every 5 s until
        answered (a lost answer is not the behaviour under test)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            answer = self.try_call(srv_type, name, request, min(left, 5.0) if idempotent else left)
            if answer is not None or time.monotonic() >= deadline:
                break
        assert answer is not None, f"no answer from {name}"
        return answer

    def fresh_diagnostics(self, timeout=5.0, where=lambda d: True):
        """The first /diagnostics status (of /yolz) published after this call that fits."""
        start = len(self.diagnostics)
        found = []

        def done():
            found[:] = [d for d in self.diagnostics[start:] if where(d)]
            return bool(found)
        assert self.spin_until(done, timeout), "no fitting /diagnostics from the node"
        return found[0]

    def publish_frames(self, frames, period=0.0):
        assert self.spin_until(lambda: self.frames.get_subscription_count() > 0, 10.0)
        for msg in frames:
            self.frames.publish(msg)
            if period:
                self.spin_for(period)

    def close(self):
        self.transport.close()


def start_node(model_dir, library_dir, log_path, *params, remaps=(), managed=False):
    cmd = [sys.executable, "-m", "yolz_ros.ros.node"] + (["--managed"] if managed else []) + [
           "--ros-args",
           "--params-file", str(ROOT / "config" / "yolz.yaml"),  # the shipped defaults load
           "-p", f"model_dir:={model_dir}", "-p", f"library_dir:={library_dir}",
           "-p", "backend:=onnxruntime", "-p", "device:=cpu", "-p", "precision:=fp32"]
    for p in params:
        cmd += ["-p", p]
    cmd += ["-r", f"__ns:={NS}"]
    for r in remaps:
        cmd += ["-r", r]
    log = open(log_path, "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                            env=os.environ.copy())
    proc.log_path = log_path
    log.close()
    return proc


def stop_node(proc, timeout=15.0):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail("the node did not exit within %.0f s of SIGTERM:\n%s"
                    % (timeout, Path(proc.log_path).read_text()[-3000:]))


def wait_ready(ros, proc, timeout=30.0):
    client = ros.node.create_client(ListObjects, f"{NODE}/list_objects")
    ok = ros.spin_until(lambda: client.service_is_ready() or proc.poll() is not None, timeout)
    ros.node.destroy_client(client)
    assert ok and proc.poll() is None, \
        "node did not start:\n" + Path(proc.log_path).read_text()[-3000:]


def register(ros, name, views, replace=False, encoding="rgb8"):
    request = RegisterObject.Request(name=name, replace=replace)
    request.views = [v if isinstance(v, Image) else image_msg(v, encoding) for v in views]
    return ros.call(RegisterObject, f"{NODE}/register_object", request)


def list_objects(ros):
    return ros.call(ListObjects, f"{NODE}/list_objects", ListObjects.Request(), idempotent=True)


def remove(ros, name):
    return ros.call(RemoveObject, f"{NODE}/remove_object", RemoveObject.Request(name=name))
