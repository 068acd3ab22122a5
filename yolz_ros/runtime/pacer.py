"""A fixed-rate clock for anything that plays frames like a camera (camera_player, the synthetic
camera of the soak, dds_probe and the tests). Plain Python, so tools and tests import it without
a CLI."""
from __future__ import annotations

import math
import time


class Pacer:
    """Fixed-rate publishing: ``wait()`` sleeps until the next tick of ``rate`` Hz. Ticks missed
    by up to ``max_lag`` seconds are made up for at once; a longer lag restarts the schedule
    from now (``max_lag`` 0: never made up, as a camera that fell behind drops frames rather
    than bursting them)."""

    def __init__(self, rate: float, max_lag: float = math.inf):
        self.period = 1.0 / rate
        self.max_lag = max_lag
        self.start = self.next = time.monotonic()

    def wait(self) -> None:
        self.next += self.period
        delay = self.next - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        elif -delay > self.max_lag:
            self.next = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.start
