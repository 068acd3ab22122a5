"""The generated interfaces over real DDS: a topic round trip and a service between processes;
vision_msgs' wire compatibility."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rclpy

import node_harness
from sensor_msgs.msg import Image

from yolz_ros.msg import ObjectDetection, ObjectProbabilities
from yolz_ros.srv import ListObjects, RegisterObject, RemoveObject

HERE = Path(__file__).parent


@pytest.fixture
def ros_context():
    context = rclpy.Context()
    rclpy.init(context=context)
    yield context
    rclpy.try_shutdown(context=context)


def spin_until(context, nodes, done, timeout=10.0):
    executor = rclpy.executors.SingleThreadedExecutor(context=context)
    for node in nodes:
        executor.add_node(node)
    try:
        return node_harness.spin_until(executor, done, timeout)
    finally:
        executor.shutdown()


def test_interfaces_import():
    assert RemoveObject.Request().name == ""
    assert list(ListObjects.Response().names) == []


def test_object_probabilities_round_trip(ros_context):
    pub_node = rclpy.create_node("probs_pub", context=ros_context)
    sub_node = rclpy.create_node("probs_sub", context=ros_context)
    received = []
    sub_node.create_subscription(ObjectProbabilities, "probabilities", received.append, 10)
    pub = pub_node.create_publisher(ObjectProbabilities, "probabilities", 10)

    msg = ObjectProbabilities()
    msg.header.frame_id = "camera_color_optical_frame"
    msg.header.stamp.sec = 42
    msg.names = ["mug", "drill"]
    msg.rows, msg.cols = 3, 4
    msg.cell_width = msg.cell_height = 16.0
    msg.scale, msg.offset_x, msg.offset_y = 0.5, 0.0, 8.0
    msg.image_width, msg.image_height = 128, 80
    grid = np.linspace(0, 1, 2 * 3 * 4, dtype=np.float32)
    msg.probabilities = grid.tolist()
    msg.detections = [ObjectDetection(name="mug", score=0.9, peak_x=10.0, peak_y=20.0)]

    def publish_until_received():
        if not received:
            pub.publish(msg)
        return bool(received)

    assert spin_until(ros_context, [pub_node, sub_node], publish_until_received)
    got = received[0]
    assert got.header.frame_id == "camera_color_optical_frame" and got.header.stamp.sec == 42
    assert list(got.names) == ["mug", "drill"]
    np.testing.assert_array_equal(np.asarray(got.probabilities, np.float32), grid)
    assert got.detections[0].name == "mug" and got.detections[0].score == pytest.approx(0.9)


def test_register_object_between_processes(ros_context):
    server = subprocess.Popen([sys.executable, str(HERE / "register_server.py")],
                              stdout=subprocess.PIPE, text=True, env=os.environ.copy())
    try:
        assert server.stdout.readline().strip() == "ready"
        node = rclpy.create_node("register_client", context=ros_context)
        client = node.create_client(RegisterObject, "register_object")
        assert spin_until(ros_context, [node], client.service_is_ready)

        rng = np.random.default_rng(0)
        request = RegisterObject.Request(name="mug", replace=False)
        sums = []
        for i in range(4):
            pixels = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
            sums.append(int(pixels.sum()))
            request.views.append(Image(height=480, width=640, encoding="rgb8", step=640 * 3,
                                       data=pixels.tobytes()))
        future = client.call_async(request)
        assert spin_until(ros_context, [node], future.done, timeout=20.0)
        response = future.result()
        assert response.success and response.num_views_used == 4
        assert response.message == "mug:" + ",".join(map(str, sums))
        assert [f.note for f in response.view_feedback] == ["640x480"] * 4
        server.terminate()
        assert server.wait(timeout=10) == 0  # SIGTERM is a clean stop
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


# RIHS01 type hashes of the upstream vision_msgs 4.1.1 definitions (Humble..Kilted share them),
# measured by building upstream's .msg files with rosidl. The hash covers every field's name and
# type and every nested type, so equal hashes = the same wire format and type identity: a node
# built against the real vision_msgs matches our publishers.
VISION_MSGS_RIHS01 = {
    "BoundingBox2D": "RIHS01_008eacbb0cf8f26e83795547bed013eec3675485ef386ec056d80eaaf1c1ce2f",
    "Detection2D": "RIHS01_0d12b69df5c593b3455b7346fac8205437a7d4bcb09b9e0e0b2dde787ded38ea",
    "Detection2DArray": "RIHS01_214274120007f4a683866481336b70310268cfa107aebe9d594a6acf75bda968",
    "LabelInfo": "RIHS01_3d37df4015cdf660cc851c51897f2acd957e1ca6205ba0a99aebffb9406b0783",
    "ObjectHypothesis": "RIHS01_51da43cec11c01957a64d1e05a24acd18aae7745ec30b74348ad5f6d634f7f90",
    "ObjectHypothesisWithPose":
        "RIHS01_41c12344c0396c48b81df12467c192d99b2a0eb1463c5c37194e4223251c80bc",
    "Point2D": "RIHS01_eab0e83f44ab4de92ceaf76dd7d0e7638f2bdd1d16ffbe16c7a136c48e407247",
    "Pose2D": "RIHS01_b0b5d1d7b4c20dd4fcde3ed1d4b289a919290572007d67a97043814db25d3648",
    "VisionClass": "RIHS01_1e4a11f0fed50b5623cb8ff26ca0e37952a48a9c074d16f804b44e9164c2037a",
    # the 3D output (Detection3DArray): measured the same way, from upstream's 4.1.1 .msg files
    "BoundingBox3D": "RIHS01_bbb73a65c163d7f9bb29009c7bde9f7faa576bd2d23299c4511d19230dab4698",
    "Detection3D": "RIHS01_ddd703be132ab0b69d33121f1bb034132bfbb3b0ac5f9fb1516005ba1c8a265b",
    "Detection3DArray":
        "RIHS01_793f5eab9595ac1c0da07873cc859db42eae51f0ee76056db8562515d830e018",
}


def test_vision_msgs_are_wire_compatible_with_upstream():
    from ament_index_python.packages import get_package_share_directory
    share = Path(get_package_share_directory("vision_msgs")) / "msg"
    if not (share / "Detection2DArray.json").exists():
        pytest.skip("this ROS distribution has no type descriptions (Humble)")
    for name, want in VISION_MSGS_RIHS01.items():
        description = json.loads((share / f"{name}.json").read_text())
        got = {h["type_name"]: h["hash_string"] for h in description["type_hashes"]}
        assert got[f"vision_msgs/msg/{name}"] == want, name
