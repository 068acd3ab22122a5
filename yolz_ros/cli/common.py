"""Shared helpers of the command-line tools: a client of the node's services that reports the
library's true state even when an answer is lost (yolz_ros.ros.client), and the exit codes."""
from __future__ import annotations

import sys

from rclpy.executors import ExternalShutdownException


def service_name(node: str, service: str) -> str:
    from yolz_ros.ros.client import service_prefix
    return f"{service_prefix(node)}/{service}"


def note(text: str) -> None:
    print(f"note: {text}", file=sys.stderr, flush=True)


def connect(node: str, client_name: str):
    """A YolzClient of the node ``node`` (use it as a context manager). The ROS arguments of the
    command line (remaps, ...) apply; an answer that does not come is noted on stderr. Tests
    replace this function."""
    from yolz_ros.ros.client import connect as connect_client
    return connect_client(node, client_name, on_note=note)


def run_cli(fn):
    """Run a CLI body; Ctrl-C and shutdown give exit code 130 / 1 without a traceback."""
    try:
        return fn()
    except (KeyboardInterrupt, ExternalShutdownException):
        return 130
    except TimeoutError as exc:
        print(f"error: {exc}")
        return 1
