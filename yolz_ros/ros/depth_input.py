"""Depth images and camera_info from their topics: header checks, metres, and the per-camera
store that matches a colour frame to its depth image by stamp.

The maths from depth to a 3D point is yolz_ros.runtime.depth; this module reads messages.
"""
from __future__ import annotations

import collections
import threading
import time

import numpy as np

from yolz_ros.ros.image_msgs import check_layout, msg_pixels
from yolz_ros.runtime.depth import DepthError
from yolz_ros.runtime.image import check_size

DEPTH_ENCODINGS = {"16uc1": (np.uint16, 0.001), "mono16": (np.uint16, 0.001),
                   "32fc1": (np.float32, 1.0)}

STREAM_ALIVE_S = 1.0  # a frame waits for its depth only if a depth image came this recently
# A depth topic's first image may arrive after the first colour frames (discovery of the depth
# publisher takes longer): for this long after the store is made, "none yet" is not a warning.
FIRST_DEPTH_GRACE_S = 3.0


def check_depth_header(msg, max_pixels: int) -> None:
    """Encoding, size and layout of a depth image, without touching its pixels."""
    enc = str(msg.encoding).lower()
    if enc not in DEPTH_ENCODINGS:
        raise DepthError(f"depth encoding {msg.encoding!r} is not supported: use 16UC1 "
                         "(millimetres) or 32FC1 (metres)")
    dtype, _ = DEPTH_ENCODINGS[enc]
    try:
        check_size(msg.height, msg.width, max_pixels)
        check_layout(msg, 1, dtype, len(msg.data))
    except ValueError as exc:
        raise DepthError(f"depth image: {exc}") from None


def depth_to_metres(msg) -> np.ndarray:
    """sensor_msgs/Image 16UC1 (mm) or 32FC1 (m) -> float32 HxW metres, NaN where there is no
    depth (0, NaN, inf, negative)."""
    enc = str(msg.encoding).lower()
    check_depth_header(msg, max_pixels=msg.width * msg.height or 1)
    dtype, scale = DEPTH_ENCODINGS[enc]
    raw = msg_pixels(msg, 1, dtype)
    metres = raw.astype(np.float32) * np.float32(scale)
    metres[~np.isfinite(metres) | (metres <= 0)] = np.nan
    return metres


def stamp_seconds(stamp) -> float:
    return float(stamp.sec) + float(stamp.nanosec) * 1e-9


class DepthStore:
    """The recent depth images and the newest camera_info of one camera, for matching to colour
    frames by stamp. Callbacks put; the worker waits (briefly) for a depth that matches."""

    def __init__(self, keep: int = 10):
        self._depth = collections.deque(maxlen=keep)  # (stamp seconds, msg)
        self._infos = collections.deque(maxlen=keep)  # (stamp seconds, msg)
        self.depth_received = 0
        self.info_received = 0
        self._last_arrival = -float("inf")
        self.created = time.monotonic()
        self._cv = threading.Condition()

    def put_depth(self, msg) -> None:
        with self._cv:
            self._depth.append((stamp_seconds(msg.header.stamp), msg))
            self.depth_received += 1
            self._last_arrival = time.monotonic()
            self._cv.notify_all()

    def put_info(self, msg) -> None:
        with self._cv:
            self._infos.append((stamp_seconds(msg.header.stamp), msg))
            self.info_received += 1

    def info_for(self, stamp: float, tolerance: float):
        """The camera_info of the frame at ``stamp``: the one with the nearest stamp within
        ``tolerance`` (a driver publishes one per frame), else the newest (one published once
        or rarely); None before any arrived."""
        with self._cv:
            if not self._infos:
                return None
            t, msg = min(self._infos, key=lambda item: abs(item[0] - stamp))
            return msg if abs(t - stamp) <= tolerance else self._infos[-1][1]

    def match(self, stamp: float, tolerance: float, timeout: float):
        """(depth msg, stamp difference) of the depth nearest ``stamp`` within ``tolerance``
        seconds, waiting up to ``timeout`` s (wall time) for one to arrive; (None, why not)."""
        with self._cv:
            best = self._nearest(stamp)
            streaming = time.monotonic() - self._last_arrival < STREAM_ALIVE_S
            if (best is None or abs(best[0] - stamp) > tolerance) and timeout > 0 and streaming:
                # a depth published with the colour frame may still be on its way (a depth
                # topic that is silent is not waited for: frames would queue behind it)
                self._cv.wait_for(lambda: self._has_match(stamp, tolerance), timeout)
                best = self._nearest(stamp)
            if best is None:
                return None, "no depth image received yet"
            dt = best[0] - stamp
            if abs(dt) > tolerance:
                return None, (f"no depth image within {tolerance:.3f} s of the frame (nearest "
                              f"is {dt:+.3f} s away): is the depth topic publishing, in sync?")
            return best[1], dt

    def starting(self) -> bool:
        """No depth image yet, and the store is too young for that to mean anything."""
        return (self.depth_received == 0
                and time.monotonic() - self.created < FIRST_DEPTH_GRACE_S)

    def _nearest(self, stamp: float):
        return min(self._depth, key=lambda item: abs(item[0] - stamp), default=None)

    def _has_match(self, stamp: float, tolerance: float) -> bool:
        best = self._nearest(stamp)
        return best is not None and abs(best[0] - stamp) <= tolerance
