"""launch_testing, in the standard ROS form: the shipped launch file (found by package name) in a
launch description with a namespace, the image remap, a model folder and the shipped parameter
file (edited), ReadyToTest, tests while it runs (the node starts with those parameters, answers
~/list_objects with the model it was given, publishes ~/detections for frames on the remapped
camera topic), and
tests after the shutdown (every process exited 0, nothing printed above INFO).

pytest collects it through tests/conftest.py (launch_testing's classes); `colcon test` runs it
with the ros tier. Without launch_testing (a plain clone without ../shared) it skips, and fails
under CI (tests/ros/ros2_tools.py)."""
import atexit
import os
import re
import shutil
import tempfile
import time
import unittest
from pathlib import Path

import pytest

import ros2_tools

ros2_tools.require(module_level=True)

import launch  # noqa: E402
import launch_testing.actions  # noqa: E402
import launch_testing.asserts  # noqa: E402
import numpy as np  # noqa: E402
import rclpy  # noqa: E402
import yaml  # noqa: E402
from ament_index_python.packages import get_package_share_directory  # noqa: E402
from launch.actions import IncludeLaunchDescription, SetEnvironmentVariable  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from vision_msgs.msg import Detection2DArray  # noqa: E402

from node_harness import image_msg, spin_until  # noqa: E402
from tiny_model import make_tiny_model  # noqa: E402
from yolz_ros.srv import ListObjects  # noqa: E402

NS = f"/launch_test_{os.getpid()}"
NODE = f"{NS}/yolz"
CAMERA = f"{NS}/camera"
NOISE = re.compile(r"\[(WARN|ERROR|FATAL)\]|Warning|Traceback|deprecat|Exception")


@pytest.mark.launch_test
def generate_test_description():
    # launch_testing gives this function no tmp_path: the folder goes when the test process ends
    work = Path(tempfile.mkdtemp(prefix="yolz_launch_test_"))
    atexit.register(shutil.rmtree, work, ignore_errors=True)
    model = make_tiny_model(work / "model")
    share = get_package_share_directory("yolz_ros")
    # the shipped parameter file, edited as a user would, applies to the node in its namespace
    config = yaml.safe_load(Path(share, "config", "yolz.yaml").read_text())
    [values] = [v["ros__parameters"] for v in config.values()]
    values.update(library_dir=str(work / "library"), device="cpu", precision="fp32")
    params = work / "params.yaml"
    params.write_text(yaml.safe_dump(config))
    launch_file = os.path.join(share, "launch", "yolz.launch.py")
    yolz = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(launch_file),
        launch_arguments={"namespace": NS, "image": CAMERA, "model_dir": str(model),
                          "params_file": str(params), "backend": "onnxruntime"}.items())
    return launch.LaunchDescription([
        SetEnvironmentVariable("ROS_HOME", str(work / "ros_home")),
        yolz,
        launch_testing.actions.ReadyToTest(),
    ]), {"model": model, "work": work}


class TestWhileRunning(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.context = rclpy.Context()
        rclpy.init(context=cls.context)
        cls.node = rclpy.create_node("launch_test_client", context=cls.context)
        cls.executor = rclpy.executors.SingleThreadedExecutor(context=cls.context)
        cls.executor.add_node(cls.node)

    @classmethod
    def tearDownClass(cls):
        cls.executor.shutdown()
        cls.node.destroy_node()
        rclpy.try_shutdown(context=cls.context)

    def test_node_starts_with_the_params_file(self, proc_output, work):
        proc_output.assertWaitFor(f"object library {work / 'library'}: 0 objects", timeout=60)
        proc_output.assertWaitFor(f"camera {CAMERA} (raw, best_effort) -> {NODE}/probabilities",
                                  timeout=60)

    def test_list_objects_answers_with_the_given_model(self, model):
        client = self.node.create_client(ListObjects, f"{NODE}/list_objects")
        self.assertTrue(spin_until(self.executor, client.service_is_ready, 60),
                        "no ~/list_objects")
        time.sleep(0.5)  # the server must see our reader before it answers (node_harness.Ros)
        answer = None
        for _ in range(4):  # DDS may drop an answer: ask again
            future = client.call_async(ListObjects.Request())
            if spin_until(self.executor, future.done, 5):
                answer = future.result()
                break
            client.remove_pending_request(future)
        self.assertIsNotNone(answer, "no answer from ~/list_objects")
        self.assertTrue(answer.success, answer.message)
        self.assertEqual(answer.names, [])
        self.assertTrue(answer.model_id.startswith("tiny@"), answer.model_id)

    def test_detections_for_frames_on_the_remapped_topic(self):
        got = []
        self.node.create_subscription(Detection2DArray, f"{NODE}/detections", got.append, 10)
        pub = self.node.create_publisher(Image, CAMERA, qos_profile_sensor_data)
        pixels = np.random.default_rng(0).integers(0, 256, (64, 96, 3), dtype=np.uint8)
        deadline = time.monotonic() + 60
        while not got and time.monotonic() < deadline:
            pub.publish(image_msg(pixels, "rgb8", stamp_sec=7))
            spin_until(self.executor, lambda: bool(got), 0.3)
        self.assertTrue(got, "no ~/detections")
        self.assertEqual(got[0].header.stamp.sec, 7)


@launch_testing.post_shutdown_test()
class TestAfterShutdown(unittest.TestCase):

    def test_every_process_exited_0(self, proc_info):
        launch_testing.asserts.assertExitCodes(proc_info)

    def test_nothing_above_info_was_printed(self, proc_output):
        lines = [line for output in proc_output for line in output.text.decode().splitlines()]
        self.assertTrue(lines, "no output captured")
        self.assertEqual([line for line in lines if NOISE.search(line)], [])
