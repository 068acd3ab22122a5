"""Spinning the node, and waiting on other threads without holding the executor.

The node spins a SingleThreadedExecutor: rclpy 9's MultiThreadedExecutor spent most of a core
re-building its wait set for a 30 Hz camera (measured: 11 s of CPU in a 12 s 640x480 run, a third
of the frames lost before the callback; 1 s and none lost single-threaded). Work that takes long
(a registration, a ~/find search) runs on a thread of its own and its callback awaits it
(`finished`), so the executor keeps taking frames and answering the other services meanwhile.

rclpy's own `spin()` waits without a timeout. When a signal shuts the context down while the
executor is between waits, the wake-up can be lost and the process waits for ever (seen on
Jazzy with the lifecycle node and with a bare service server: the process never exited), or
the executor, building its next wait set on a dead context, raises RCLError instead of
ExternalShutdownException. Waking every `period` seconds re-checks the context, and either
exception after shutdown counts as a clean stop.
"""
from __future__ import annotations

import concurrent.futures
import types
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


@types.coroutine
def _suspend():
    yield  # back to the executor; it resumes this task on its next wake-up


async def finished(future: concurrent.futures.Future, wake):
    """In a callback (an rclpy task): the result of `future`, computed on another thread,
    without blocking the executor. `wake` (the node's guard condition) is triggered when it is
    done, so the task resumes at once rather than on the next message."""
    def trigger(_):
        try:
            wake.trigger()
        except Exception:  # noqa: BLE001 - the node was destroyed meanwhile: nothing to wake
            pass
    future.add_done_callback(trigger)
    while not future.done():
        await _suspend()
    return future.result()
