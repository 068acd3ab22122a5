"""Shared helpers of the command-line tools: one service call with a timeout."""
from __future__ import annotations

import time

import rclpy
import rclpy.exceptions
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor


def service_name(node: str, service: str) -> str:
    node = node.rstrip("/") or "/yolz"
    if not node.startswith("/"):
        node = "/" + node
    return f"{node}/{service}"


def call_service(srv_type, name: str, request, timeout: float, client_name: str):
    """Call ``name`` once. Returns the response, or raises TimeoutError saying what to check."""
    rclpy.init()
    node = rclpy.create_node(client_name)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        client = node.create_client(srv_type, name)
        deadline = time.monotonic() + timeout
        while not client.service_is_ready():
            if time.monotonic() > deadline:
                raise TimeoutError(f"service {name} is not available after {timeout:.0f} s: is "
                                   "the yolz node running (check --node and ROS_DOMAIN_ID)?")
            executor.spin_once(timeout_sec=0.05)
        future = client.call_async(request)
        while not future.done():
            if time.monotonic() > deadline:
                raise TimeoutError(f"no answer from {name} within {timeout:.0f} s "
                                   "(raise --timeout)")
            executor.spin_once(timeout_sec=0.05)
        return future.result()
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()


def run_cli(fn):
    """Run a CLI body; Ctrl-C and shutdown give exit code 130 / 1 without a traceback."""
    try:
        return fn()
    except (KeyboardInterrupt, ExternalShutdownException):
        return 130
    except TimeoutError as exc:
        print(f"error: {exc}")
        return 1
