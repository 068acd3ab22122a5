"""A minimal RegisterObject server run as a separate process by test_interfaces.py.

It answers with what it received (view count and sizes), so the test can check that images
travelled intact across processes over DDS.
"""
import sys

import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor

from yolz_ros.msg import ViewFeedback
from yolz_ros.ros.spin import spin_until_shutdown
from yolz_ros.srv import RegisterObject


def handle(request, response):
    response.success = len(request.views) > 0
    response.num_views_used = len(request.views)
    sums = []
    for i, view in enumerate(request.views):
        pixels = np.frombuffer(bytes(view.data), dtype=np.uint8)
        sums.append(int(pixels.sum()))
        response.view_feedback.append(
            ViewFeedback(index=i, used=True, agreement=1.0, note=f"{view.width}x{view.height}"))
    response.message = f"{request.name}:" + ",".join(map(str, sums))
    response.names = [request.name]
    return response


def main():
    rclpy.init()
    node = rclpy.create_node("test_register_server")
    node.create_service(RegisterObject, "register_object", handle)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    print("ready", flush=True)
    try:
        spin_until_shutdown(executor, period=0.1)  # returns on SIGTERM (rclpy.spin may not)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    sys.exit(main())
