"""A fixed-rate clock for anything that plays frames like a camera (camera_player, the soak,
dds_probe, the tests' cameras). Plain Python, so tools and tests import it without a CLI."""
from __future__ import annotations

import time


class Pacer:
    """Fixed-rate publishing: ``wait()`` sleeps until the next tick of ``rate`` Hz. A tick that is
    already past is not made up for when ``catch_up`` is False (the schedule restarts from now,
    as a camera that fell behind drops frames rather than bursting them)."""

    def __init__(self, rate: float, catch_up: bool = True):
        self.period = 1.0 / rate
        self.catch_up = catch_up
        self.start = self.next = time.monotonic()

    def wait(self) -> None:
        self.next += self.period
        delay = self.next - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        elif not self.catch_up:
            self.next = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.start
