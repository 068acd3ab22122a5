"""The README's quick start and the node's documented commands, run as written with the ROS 2
tools over DDS: `ros2 launch yolz_ros yolz.launch.py` by package name (with its arguments, plain
and managed), `ros2 run yolz_ros <cli>`, `ros2 service call`, `ros2 topic echo --once`,
`ros2 param set`, `ros2 lifecycle set`, and Ctrl-C at the end (exit 0, nothing left running, no
warning printed). The tools: tests/ros/ros2_tools.py (they skip without ../shared, fail under CI).

Each test has the ROS domain of this run (tests/conftest.py) to itself, so the node can keep the
README's name /yolz; ROS_HOME is the test's tmp folder (logs, the default object library)."""
import os
import re
import threading
import time

import cv2
import numpy as np
import pytest
import yaml
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image

import ros2_tools
from node_harness import image_msg, object_views
from ros2_tools import Background, ros2

pytestmark = pytest.mark.usefixtures("tools")

# What ros2 launch of the shipped launch file must never print, at start-up or at shutdown.
NOISE = re.compile(r"\[(WARN|ERROR|FATAL)\]|Warning|Traceback|deprecat|Exception")
CTRL_C = "[WARNING] [launch]: user interrupted with ctrl-c (SIGINT)"
DECLARED = {"image", "params_file", "model_dir", "backend", "namespace", "rviz", "managed",
            "dds_profile", "use_depth", "depth", "camera_info"}
PROFILE_VAR = ("FASTRTPS_DEFAULT_PROFILES_FILE"
               if os.environ.get("ROS_DISTRO", "kilted") in ("humble", "iron", "jazzy")
               else "FASTDDS_DEFAULT_PROFILES_FILE")


@pytest.fixture(scope="module")
def tools(tmp_path_factory):
    ros2_tools.require()
    home = tmp_path_factory.mktemp("ros_home")
    yield home
    ros2_tools.stop_daemon(home)


def frame(size=(240, 320), with_object=True, stamp=0):
    """A camera frame (rgb8): noise, with the registered object's view pasted in."""
    rng = np.random.default_rng(stamp)
    pixels = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
    if with_object:
        view = object_views(1)[0]
        pixels[60:60 + view.shape[0], 100:100 + view.shape[1]] = view
    return image_msg(pixels, "rgb8", stamp_sec=stamp)


def passes_per_frame(home) -> float:
    """The node's /diagnostics value passes_per_frame (network passes per recent frame)."""
    out = echo_once("/diagnostics", home)
    found = re.search(r"key: passes_per_frame\s+value: '?([0-9.]+)", out)
    assert found, out
    return float(found.group(1))


class Camera:
    """The test's camera: 320x240 frames on ``topic`` at 5 Hz from the test's own rclpy node, in
    a thread of its own while running (start / stop)."""

    def __init__(self, ros, topic, depth="", camera_info=""):
        self.ros, self.stamp = ros, 1
        self.pub = ros.node.create_publisher(Image, topic, qos_profile_sensor_data)
        # an RGB-D camera: a depth image (16UC1, 1 m everywhere) of each frame, and its calibration
        self.depth = depth and ros.node.create_publisher(Image, depth, qos_profile_sensor_data)
        self.info = camera_info and ros.node.create_publisher(CameraInfo, camera_info,
                                                              qos_profile_sensor_data)
        self._stop, self._thread = threading.Event(), None

    def start(self):
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.wait(0.2):
            colour = frame(stamp=self.stamp)
            if self.depth:
                h, w = colour.height, colour.width
                self.depth.publish(image_msg(np.full((h, w), 1000, np.uint16), "16UC1",
                                             stamp_sec=self.stamp))
                info = CameraInfo(header=colour.header, height=h, width=w)
                info.k = [300.0, 0.0, w / 2, 0.0, 300.0, h / 2, 0.0, 0.0, 1.0]
                self.info.publish(info)
            self.pub.publish(colour)
            self.stamp += 1

    def stop(self):
        if self._thread:
            self._stop.set()
            self._thread.join()
            self._thread = None

    def close(self):
        self.stop()
        for pub in (self.pub, self.depth, self.info):
            if pub:
                self.ros.node.destroy_publisher(pub)


def echo_once(topic, home, timeout=60.0):
    """`ros2 topic echo --once TOPIC`: its output. Run
    again while the topic "does not appear to be published yet": the ros2 daemon, started by the
    first ros2 command, takes a moment to see the node's topics."""
    deadline = time.monotonic() + timeout
    log = home / f"echo_{topic.strip('/').replace('/', '_')}.log"
    while True:
        echo = Background(["ros2", "topic", "echo", "--once", topic], home, log)
        try:
            while echo.proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)
            out = echo.output()
            if echo.proc.poll() == 0:
                return out
            assert "does not appear to be published yet" in out \
                and time.monotonic() < deadline, \
                f"ros2 topic echo --once {topic}: {echo.proc.returncode}:\n{out}"
            time.sleep(0.5)
        finally:
            if echo.proc.poll() is None:
                echo.kill()


def quiet(launch):
    """The launch's output has no warning, error or traceback (but launch's own note of the
    Ctrl-C, which it prints as a warning whatever it runs)."""
    out = launch.output()
    bad = [line for line in out.splitlines() if NOISE.search(line) and line != CTRL_C]
    assert not bad, "ros2 launch printed:\n" + "\n".join(bad) + "\n\n" + out[-3000:]


def shut_down(launch):
    """Ctrl-C: exit code 0, every process it started gone, nothing printed but INFO."""
    code = launch.interrupt()
    assert code == 0, f"ros2 launch exited {code} on SIGINT:\n{launch.output()[-3000:]}"
    assert not launch.orphans(), f"left running: {launch.orphans()}"
    quiet(launch)


def test_launch_file_arguments_and_executables(tools):
    """`ros2 launch --show-args` lists the documented arguments, `--print` shows the rviz2 node
    with the shipped display config (rviz2 itself is not in the pip environment), and
    `ros2 pkg executables` every CLI of the package."""
    out = ros2("launch", "yolz_ros", "yolz.launch.py", "--show-args", home=tools).stdout
    assert set(re.findall(r"^\s+'(\w+)':", out, re.M)) == DECLARED, out
    assert not NOISE.search(out), out
    out = ros2("launch", "yolz_ros", "yolz.launch.py", "rviz:=true", "--print",
               home=tools).stdout
    assert "pkg='rviz2', exec='rviz2'" in out and "config/yolz.rviz" in out, out
    assert "'--managed'" in out, out  # the lifecycle node of managed:=true
    out = ros2("pkg", "executables", "yolz_ros", home=tools).stdout
    assert set(out.split()) == {"yolz_ros", "yolz_node", "register", "register_from_camera",
                                "watch", "list_objects", "remove_object", "camera_player",
                                "library", "find"}, out


def test_readme_quick_start(tools, ros):
    """The quick start as written (model: the shipped one, installed with the package; the
    photos: three views of a made-up object in photos/), then Ctrl-C."""
    home = tools
    photos = home / "photos"
    photos.mkdir()
    for i, view in enumerate(object_views(3)):
        cv2.imwrite(str(photos / f"mug_{i}.jpg"), cv2.cvtColor(view, cv2.COLOR_RGB2BGR))
    camera = Camera(ros, "/camera/color/image_raw")
    launch = Background(["ros2", "launch", "yolz_ros", "yolz.launch.py",
                         "image:=/camera/color/image_raw"], home, home / "launch_readme.log")
    try:
        # the node is up (label_info is latched at activation) before the first call; a call
        # that still goes unanswered fails with the node's own log, to tell a lost reply from a
        # stalled node
        echo_once("/yolz/label_info", home)
        try:
            listed = ros2(shell='ros2 service call /yolz/list_objects yolz_ros/srv/ListObjects'
                          ' "{}"', home=home).stdout
        except pytest.fail.Exception as exc:
            pytest.fail(f"{exc}\nlaunch log:\n{launch.output()}", pytrace=False)
        assert "success=True" in listed and "names=[]" in listed, listed
        node_pid = [p for p in launch.processes() if "yolz_node" in " ".join(p.cmdline())]
        assert node_pid, launch.processes()
        # the same-host FastDDS profile reaches the node through its environment
        profile = node_pid[0].environ().get(PROFILE_VAR, "")
        assert profile.endswith("share/yolz_ros/config/fastdds_same_host.xml"), profile

        out = ros2(shell="ros2 run yolz_ros register mug photos/mug_*.jpg", home=home)
        assert "mug" in out.stdout, out.stdout
        out = ros2("run", "yolz_ros", "list_objects", home=home).stdout
        assert "mug" in out, out
        assert "class_name: mug" in echo_once("/yolz/label_info", home)

        # from a box on the camera's newest frame
        camera.start()
        out = ros2(shell="ros2 run yolz_ros register_from_camera cup --box 120 80 260 240",
                   home=home)
        assert "cup" in out.stdout, out.stdout

        # watch: one line per frame, until Ctrl-C
        watch = Background(["ros2", "run", "yolz_ros", "watch"], home, home / "watch.log")
        try:
            watch.wait_for(".000000000  ", timeout=60)
        finally:
            assert watch.interrupt() == 0, watch.output()
        assert not watch.orphans()

        # the threshold, at run time: the next frame is decoded with it (every cell passes 0)
        camera.stop()
        out = ros2("param", "set", "/yolz", "threshold", "0.0", home=home).stdout
        assert "Set parameter successful" in out, out
        camera.start()
        assert "class_id: mug" in echo_once("/yolz/detections", home)
        out = ros2("param", "set", "/yolz", "threshold", "0.6", home=home).stdout
        assert "Set parameter successful" in out, out
        assert "threshold: 0.6" in echo_once("/yolz/label_info", home)
        # a bad value is refused with the reason, and the threshold stays
        out = ros2("param", "set", "/yolz", "threshold", "1.5", home=home, check=False).stdout
        assert "Setting parameter failed" in out and "1.5" in out, out
        out = ros2("param", "set", "/yolz", "threshold", "high", home=home, check=False).stdout
        assert "Setting parameter failed" in out, out
        out = ros2("param", "get", "/yolz", "threshold", home=home).stdout
        assert "0.6" in out, out

        # look closer, at run time: /diagnostics counts the extra network passes per frame
        assert passes_per_frame(home) == 1.0
        out = ros2("param", "set", "/yolz", "look_closer", "2", home=home).stdout
        assert "Set parameter successful" in out, out
        deadline = time.monotonic() + 60
        while passes_per_frame(home) <= 1.0:
            assert time.monotonic() < deadline, "look_closer 2 made no extra passes"

        out = ros2("run", "yolz_ros", "remove_object", "mug", home=home)
        out = ros2("run", "yolz_ros", "list_objects", home=home).stdout
        assert "mug" not in out and "cup" in out, out
        quiet(launch)
        shut_down(launch)
    finally:
        camera.close()
        if launch.proc.poll() is None:
            launch.kill()


def test_launch_arguments_and_lifecycle(tools, ros, tiny_model, tmp_path):
    """managed:=true with the image, depth and camera_info remaps, a params file and a model
    folder; then the lifecycle from the command line, as in the README (the namespace argument:
    test_launch_yolz.py)."""
    home = tools
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"yolz": {"ros__parameters": {
        "threshold": 0.35, "library_dir": str(tmp_path / "library"), "device": "cpu",
        "precision": "fp32"}}}))
    camera = Camera(ros, "/cam2/image", "/cam2/depth", "/cam2/camera_info").start()
    launch = Background(["ros2", "launch", "yolz_ros", "yolz.launch.py", "managed:=true",
                         "image:=/cam2/image", "use_depth:=true",
                         "depth:=/cam2/depth", "camera_info:=/cam2/camera_info",
                         f"params_file:={params}", f"model_dir:={tiny_model}",
                         "backend:=onnxruntime"], home, home / "launch_managed.log")
    node = "/yolz"
    try:
        def lifecycle(*args):
            return ros2("lifecycle", *args, home=home).stdout

        deadline = time.monotonic() + 60
        while "unconfigured" not in (state := ros2("lifecycle", "get", node, home=home,
                                                   check=False).stdout):
            assert time.monotonic() < deadline and launch.proc.poll() is None, \
                state + launch.output()[-3000:]
            time.sleep(0.5)
        assert "Transitioning successful" in lifecycle("set", node, "configure")
        assert "inactive" in lifecycle("get", node)
        out = ros2("param", "get", node, "threshold", home=home).stdout
        assert "0.35" in out, out  # from the params file
        out = ros2(shell=f'ros2 service call {node}/list_objects yolz_ros/srv/ListObjects "{{}}"',
                   home=home).stdout
        assert "success=True" in out and "tiny" in out, out  # the model folder's model
        assert "Transitioning successful" in lifecycle("set", node, "activate")
        assert "active" in lifecycle("get", node)
        info = ros2("node", "info", node, home=home).stdout
        for topic in ("/cam2/image", "/cam2/depth", "/cam2/camera_info"):
            assert topic in info, info  # the remaps
        echo_once(f"{node}/detections", home)  # frames come in on the remapped topic ...
        echo_once(f"{node}/detections_3d", home)  # ... with depth and camera_info
        assert "Transitioning successful" in lifecycle("set", node, "deactivate")
        assert "inactive" in lifecycle("get", node)
        assert "Transitioning successful" in lifecycle("set", node, "cleanup")
        assert "unconfigured" in lifecycle("get", node)
        shut_down(launch)
    finally:
        camera.close()
        if launch.proc.poll() is None:
            launch.kill()
