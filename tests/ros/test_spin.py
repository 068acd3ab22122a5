"""spin_until_shutdown: returns when the context shuts down, re-raises real errors."""
import threading
import time

import pytest
import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor

from yolz_ros.ros.spin import spin_until_shutdown


@pytest.fixture
def context():
    ctx = Context()
    rclpy.init(context=ctx)
    yield ctx
    rclpy.try_shutdown(context=ctx)


def _executor(ctx, callback, period=0.01):
    node = rclpy.create_node("spin_test", context=ctx)
    node.create_timer(period, callback)
    executor = SingleThreadedExecutor(context=ctx)
    executor.add_node(node)
    return node, executor


def test_returns_when_the_context_shuts_down_from_another_thread(context):
    # What a signal handler does: shut the context down while the executor waits.
    node, executor = _executor(context, lambda: None, period=10.0)
    threading.Timer(0.3, context.shutdown).start()
    start = time.monotonic()
    spin_until_shutdown(executor, period=0.1)
    assert time.monotonic() - start < 5.0
    node.destroy_node()


def test_returns_when_a_callback_shuts_the_context_down(context):
    calls = []

    def stop():
        calls.append(1)
        if len(calls) == 3:
            context.shutdown()

    node, executor = _executor(context, stop)
    spin_until_shutdown(executor, period=0.05)
    assert len(calls) == 3
    node.destroy_node()


def test_a_callback_error_is_raised_while_the_context_is_alive(context):
    def fail():
        raise ValueError("boom")

    node, executor = _executor(context, fail)
    with pytest.raises(ValueError, match="boom"):
        spin_until_shutdown(executor, period=0.05)
    node.destroy_node()


def test_until_ends_the_spin_and_says_so(context):
    calls = []
    node, executor = _executor(context, lambda: calls.append(1))
    assert spin_until_shutdown(executor, period=0.05, until=lambda: len(calls) >= 2) is True
    assert len(calls) == 2 and context.ok()
    context.shutdown()
    assert spin_until_shutdown(executor, until=lambda: False) is False
    node.destroy_node()
