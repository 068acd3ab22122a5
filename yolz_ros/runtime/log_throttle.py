"""Per-reason log throttling: each kind of problem reaches the log at most once per period.

A single throttle for all rejected frames lets the most frequent reason hide the others (one
5 s throttle, 30 bad frames/s of one kind: a second kind never shows). Here the reason is the
message with its numbers, sizes and quoted values blanked (``reason_key``), so "data has 10
bytes" and "data has 12 bytes" are one reason, "unsupported encoding" another; each reason has
its own period, and the next line of a reason says how many were suppressed meanwhile.
"""
from __future__ import annotations

import collections
import re
import threading
import time
from typing import Callable, Optional

_NUMBERS = re.compile(r"\d+(?:\.\d+)?")
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")


def reason_key(text: str) -> str:
    """The message with numbers and quoted values replaced: one key per kind of problem."""
    return _NUMBERS.sub("#", _QUOTED.sub("'…'", text))[:200]


class ReasonThrottle:
    """``allow(text)`` -> None to stay quiet, else the text to log (with a suppressed count).
    Thread-safe; remembers at most ``max_reasons`` reasons (least recently seen dropped)."""

    def __init__(self, period_s: float = 5.0, max_reasons: int = 64,
                 clock: Callable[[], float] = time.monotonic):
        self.period_s = float(period_s)
        self.max_reasons = int(max_reasons)
        self.clock = clock
        self._lock = threading.Lock()
        self._seen: "collections.OrderedDict[str, list]" = collections.OrderedDict()

    def allow(self, text: str) -> Optional[str]:
        key = reason_key(text)
        now = self.clock()
        with self._lock:
            entry = self._seen.get(key)
            if entry is not None:
                self._seen.move_to_end(key)
                if now - entry[0] < self.period_s:
                    entry[1] += 1
                    return None
                suppressed = entry[1]
                entry[0], entry[1] = now, 0
            else:
                suppressed = 0
                self._seen[key] = [now, 0]
                while len(self._seen) > self.max_reasons:
                    self._seen.popitem(last=False)
        if suppressed:
            return f"{text} ({suppressed} more like this in the last {self.period_s:.0f} s)"
        return text
