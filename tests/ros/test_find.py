"""The ~/find action over real DDS: the node as its own process (the shipped model, so a detection
can be checked against where the object is), an rclpy ActionClient of the test's own node, the
CLI (`python -m yolz_ros.cli.find`, `ros2 run yolz_ros find` where the ROS 2 tools are, Ctrl-C),
and the refusals: no objects, no frame yet, unknown name, a second goal while one runs, an
inactive managed node. The stream's frames/s on ~/detections is measured before and during a
search, and printed (`-s` shows it); the only assertion on it is that frames kept coming."""
import os
import subprocess
import sys
import time

import numpy as np
from action_msgs.msg import GoalStatus
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState
from rclpy.action import ActionClient
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image
from vision_msgs.msg import Detection2DArray

import ros2_tools
from node_harness import (NODE, NS, REAL_MODEL, ROOT, image_msg, object_views, register, scene,
                          start_node, stop_node, wait_ready)
from yolz_ros.action import Find

OBJECT = (100, 60, 164, 124)  # where the frames show the object: x0, y0, x1, y1 (320x240)


def frame_pixels():
    pixels = scene(5, (240, 320))
    pixels[OBJECT[1]:OBJECT[3], OBJECT[0]:OBJECT[2]] = object_views(1)[0]
    return pixels


class Camera:
    """Frames at ``rate`` Hz from a timer of the test's node (they go out while it spins), each
    with its own stamp; ~/detections' arrival times."""

    def __init__(self, ros, rate=10.0, depth=False):
        self.ros, self.stamp, self.pixels = ros, 0, frame_pixels()
        self.arrivals, self.sent = [], {}
        self.timer = None
        self.rate = rate
        # an RGB-D camera: a depth image (16UC1, 1 m everywhere) of each frame, its calibration
        self.depth = depth and ros.node.create_publisher(Image, f"{NS}/depth",
                                                         qos_profile_sensor_data)
        self.info = depth and ros.node.create_publisher(CameraInfo, f"{NS}/camera_info",
                                                        qos_profile_sensor_data)
        self.sub = ros.node.create_subscription(
            Detection2DArray, f"{NODE}/detections",
            lambda m: self.arrivals.append(time.monotonic()), 50)

    def start(self):
        self.timer = self.ros.node.create_timer(1.0 / self.rate, self._tick)

    def _tick(self):
        self.stamp += 1
        colour = image_msg(self.pixels, "rgb8", stamp_sec=self.stamp)
        if self.depth:
            h, w = self.pixels.shape[:2]
            self.depth.publish(image_msg(np.full((h, w), 1000, np.uint16), "16UC1",
                                         stamp_sec=self.stamp))
            info = CameraInfo(header=colour.header, height=h, width=w)
            info.k = [300.0, 0.0, w / 2, 0.0, 300.0, h / 2, 0.0, 0.0, 1.0]
            self.info.publish(info)
        self.ros.frames.publish(colour)

    def rate_between(self, t0, t1):
        n = sum(t0 <= t < t1 for t in self.arrivals)
        return n, n / max(t1 - t0, 1e-6)

    def close(self):
        if self.timer is not None:
            self.ros.node.destroy_timer(self.timer)
        self.ros.node.destroy_subscription(self.sub)
        for pub in (self.depth, self.info):
            if pub:
                self.ros.node.destroy_publisher(pub)


class Finder:
    """An rclpy ActionClient of ~/find on the test's node."""

    def __init__(self, ros):
        self.ros = ros
        self.client = ActionClient(ros.node, Find, f"{NODE}/find")
        assert ros.spin_until(self.client.server_is_ready, 20.0), "~/find not available"
        ros.spin_for(0.5)  # the server matches our readers too (yolz_ros/ros/client.py)

    def send(self, feedback=None, **goal):
        sent = self.client.send_goal_async(
            Find.Goal(**goal), feedback_callback=(lambda m: feedback.append(m.feedback))
            if feedback is not None else None)
        assert self.ros.spin_until(sent.done, 20.0), "the goal was not answered"
        handle = sent.result()
        assert handle.accepted  # every goal is accepted; a refusal is an abort with a reason
        return handle

    def wait(self, handle, timeout=120.0):
        answer = handle.get_result_async()
        assert self.ros.spin_until(answer.done, timeout), "no result"
        return answer.result().status, answer.result().result

    def find(self, timeout=120.0, **goal):
        return self.wait(self.send(**goal), timeout)

    def close(self):
        self.client.destroy()


def refused(finder, text, **goal):
    status, result = finder.find(**goal)
    assert status == GoalStatus.STATUS_ABORTED and not result.success, result
    assert text in result.message, result.message
    return result


def cli(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "yolz_ros.cli.find", *args, "--node", NODE],
                          capture_output=True, text=True, env=os.environ.copy(), cwd=ROOT,
                          timeout=timeout)


def test_find_over_dds(ros, tmp_path):
    proc = start_node(REAL_MODEL, tmp_path / "library", tmp_path / "node.log")
    camera = None
    try:
        wait_ready(ros, proc, timeout=60.0)
        finder = Finder(ros)
        refused(finder, "no objects are registered", names=["mug"])
        assert register(ros, "mug", object_views(3)).success
        assert register(ros, "cup", object_views(3, seed=7)[:1]).success
        refused(finder, "no frame yet from", names=["mug"])

        camera = Camera(ros)
        camera.start()
        assert ros.spin_until(lambda: len(camera.arrivals) >= 3, 60.0), "no frames processed"
        refused(finder, "no object named 'plate'; registered: mug, cup", names=["mug", "plate"])
        refused(finder, "zoom 5 is out of range", zoom=5.0)

        # the stream before a search, then during one (the 1x pass + 25 tiles at 3x), and a
        # second goal meanwhile: refused, the first goes on
        ros.spin_for(1.0)
        t0 = time.monotonic()
        ros.spin_for(4.0)
        before = camera.rate_between(t0, time.monotonic())
        feedback = []
        started = time.monotonic()
        handle = finder.send(feedback, names=["mug"], zoom=3.0, time_limit_s=60.0)
        assert ros.spin_until(lambda: feedback, 30.0), "no feedback"
        second = refused(finder, "another search is running", names=["mug"])
        assert second.tiles_done == 0
        status, result = finder.wait(handle)
        during = camera.rate_between(started, time.monotonic())
        load = os.getloadavg()
        print(f"\n~/detections while no search runs: {before[0]} frames, {before[1]:.2f} /s; "
              f"during a 3x search ({result.elapsed_ms:.0f} ms, {result.tiles_done} passes): "
              f"{during[0]} frames, {during[1]:.2f} /s; load average {load[0]:.2f} "
              f"({os.cpu_count()} cores)")
        assert status == GoalStatus.STATUS_SUCCEEDED and result.success, result.message
        assert during[0] >= 2, "the stream stopped during the search"
        assert (result.tiles_done, result.tiles_total) == (26, 26), result
        assert [f.tiles_done for f in feedback] == list(range(1, 27))
        assert {f.tiles_total for f in feedback} == {26}

        # the default effort (2x: 10 passes); the detection where the object is, source pixels
        feedback = []
        status, result = finder.wait(finder.send(feedback, names=["mug"]))
        assert status == GoalStatus.STATUS_SUCCEEDED and result.success, result.message
        assert (result.tiles_done, result.tiles_total) == (10, 10)
        assert [f.tiles_done for f in feedback] == list(range(1, 11))
        assert feedback[-1].found and feedback[-1].best.name == "mug"
        assert 1 <= result.header.stamp.sec <= camera.stamp  # one of the frames sent
        assert result.header.frame_id == "camera"
        dets = result.detections.detections
        assert dets and dets[0].results[0].hypothesis.class_id == "mug", result
        assert all(d.results[0].hypothesis.class_id == "mug" for d in dets)  # not cup
        x, y = dets[0].bbox.center.position.x, dets[0].bbox.center.position.y
        assert OBJECT[0] <= x <= OBJECT[2] and OBJECT[1] <= y <= OBJECT[3], (x, y)
        assert "found" in result.message and "10 of 10 passes" in result.message
        assert len(result.detections_3d.detections) == 0  # no depth on this node

        # cancel mid-search: canceled, with what the passes done found
        feedback = []
        handle = finder.send(feedback, names=["mug"], zoom=3.0)
        assert ros.spin_until(lambda: len(feedback) >= 2, 60.0)
        handle.cancel_goal_async()
        status, result = finder.wait(handle)
        assert status == GoalStatus.STATUS_CANCELED and not result.success, result
        assert 2 <= result.tiles_done < result.tiles_total == 26, result
        assert "(canceled)" in result.message, result.message

        # the time limit: succeeded with the passes done
        status, result = finder.find(names=["mug"], zoom=3.0, time_limit_s=0.01)
        assert status == GoalStatus.STATUS_SUCCEEDED and result.success, result.message
        assert 1 <= result.tiles_done < result.tiles_total, result
        assert "time limit 0.01 s reached" in result.message, result.message

        # the CLI: found (0), refused (1, the reason), and Ctrl-C cancels (130)
        run = cli("mug")
        assert run.returncode == 0, run.stdout + run.stderr
        assert "pass 10/10" in run.stdout and "done: found" in run.stdout, run.stdout
        assert "  mug  " in run.stdout, run.stdout
        run = cli("plate", timeout=60)
        assert run.returncode == 1 and "refused: no object named 'plate'" in run.stdout, \
            run.stdout + run.stderr
        log = tmp_path / "find_cli.log"
        background = ros2_tools.Background(
            [sys.executable, "-m", "yolz_ros.cli.find", "mug", "--zoom", "3", "--node", NODE],
            tmp_path, log, cwd=ROOT)
        background.wait_for("pass 2/26", timeout=60.0, poll=lambda: ros.spin_for(0.1))
        assert background.interrupt() == 130, background.output()
        assert "canceled: " in background.output(), background.output()

        if not ros2_tools.missing():  # `ros2 run yolz_ros find`, as the README says
            out = ros2_tools.ros2("run", "yolz_ros", "find", "mug", "--node", NODE,
                                  home=tmp_path, timeout=120)
            assert "done: found" in out.stdout, out.stdout
            print(f"ros2 run yolz_ros find: {out.stdout.splitlines()[-2:]}")
        finder.close()
        assert proc.poll() is None
    finally:
        if camera is not None:
            camera.close()
        assert stop_node(proc) == 0, (tmp_path / "node.log").read_text()[-3000:]
    assert "Traceback" not in (tmp_path / "node.log").read_text()


def test_find_in_3d_with_depth(ros, tmp_path):
    """use_depth: the result's detections_3d, located on the depth image of the searched frame
    as ~/detections_3d is (1 m everywhere here, so z = 1)."""
    proc = start_node(REAL_MODEL, tmp_path / "library", tmp_path / "depth.log", "use_depth:=true")
    camera = None
    try:
        wait_ready(ros, proc, timeout=60.0)
        finder = Finder(ros)
        assert register(ros, "mug", object_views(3)).success
        camera = Camera(ros, depth=True)
        camera.start()
        assert ros.spin_until(lambda: len(camera.arrivals) >= 3, 60.0), "no frames processed"
        status, result = finder.find(names=["mug"], zoom=1.5)
        assert status == GoalStatus.STATUS_SUCCEEDED and result.success, result.message
        assert (result.tiles_done, result.tiles_total) == (5, 5)
        dets = result.detections_3d.detections
        assert len(dets) == 1 and dets[0].results[0].hypothesis.class_id == "mug", result
        assert result.detections_3d.header.stamp == result.header.stamp
        p = dets[0].bbox.center.position
        u, v = 160 + 300 * p.x / p.z, 120 + 300 * p.y / p.z  # back into the image
        assert abs(p.z - 1.0) < 0.05 and OBJECT[0] <= u <= OBJECT[2] and \
            OBJECT[1] <= v <= OBJECT[3], p
        finder.close()
    finally:
        if camera is not None:
            camera.close()
        assert stop_node(proc) == 0, (tmp_path / "depth.log").read_text()[-3000:]
    assert "Traceback" not in (tmp_path / "depth.log").read_text()


def change_state(ros, transition):
    r = ros.call(ChangeState, f"{NODE}/change_state",
                 ChangeState.Request(transition=Transition(id=transition)))
    return r.success


def test_find_refused_while_inactive_and_stopped_by_deactivate(ros, tmp_path):
    """Managed: configured but inactive, a goal is refused; active, it runs; deactivated in the
    middle of a search, the search ends aborted with the reason, and the node keeps serving."""
    log = tmp_path / "managed.log"
    proc = start_node(REAL_MODEL, tmp_path / "library", log, managed=True)
    camera = None
    try:
        assert change_state(ros, Transition.TRANSITION_CONFIGURE)
        wait_ready(ros, proc, timeout=60.0)
        assert register(ros, "mug", object_views(3)).success
        finder = Finder(ros)
        refused(finder, "the node is inactive (lifecycle)", names=["mug"])
        assert change_state(ros, Transition.TRANSITION_ACTIVATE)
        refused(finder, "no frame yet", names=["mug"])
        camera = Camera(ros)
        camera.start()
        assert ros.spin_until(lambda: len(camera.arrivals) >= 3, 60.0), "no frames processed"
        feedback = []
        handle = finder.send(feedback, names=["mug"], zoom=3.0)
        assert ros.spin_until(lambda: feedback, 60.0), "no feedback"
        assert change_state(ros, Transition.TRANSITION_DEACTIVATE)
        status, result = finder.wait(handle)
        assert status == GoalStatus.STATUS_ABORTED and not result.success, result
        assert "the node was deactivated" in result.message, result.message
        assert 1 <= result.tiles_done < result.tiles_total == 26, result
        refused(finder, "the node is inactive (lifecycle)", names=["mug"])
        assert proc.poll() is None
        finder.close()
    finally:
        if camera is not None:
            camera.close()
        assert stop_node(proc) == 0, log.read_text()[-3000:]
    assert "Traceback" not in log.read_text()
