"""Spinning until SIGINT/SIGTERM, in a way that always returns.

rclpy's own `spin()` waits without a timeout. When a signal shuts the context down while the
executor is between waits, the wake-up can be lost and the process waits for ever (seen on
Jazzy with the lifecycle node and with a bare service server: the process never exited), or
the executor, building its next wait set on a dead context, raises RCLError instead of
ExternalShutdownException. Waking every `period` seconds re-checks the context, and either
exception after shutdown counts as a clean stop.
"""
from __future__ import annotations

from collections.abc import Callable

from rclpy.executors import Executor, ExternalShutdownException


def spin_until_shutdown(executor: Executor, period: float = 0.5,
                        until: Callable[[], bool] | None = None) -> bool:
    """Run the executor's callbacks until its context is shut down, or until `until()` is true
    (checked after every wake-up). Returns whether `until` ended it."""
    try:
        while executor.context.ok():
            if until is not None and until():
                return True
            executor.spin_once(timeout_sec=period)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        if executor.context.ok():  # a real error, not the shutdown race
            raise
    return False
