"""The newest-frame mailbox: one pending frame per camera, taken round robin by the worker.

A frame replaced before it was processed counts as dropped: the node never queues stale frames.
"""
from __future__ import annotations

import threading
from typing import List

from yolz_ros.ros.cameras import Camera


class Mailbox:
    """The newest message per camera, taken round robin by one worker."""

    def __init__(self, cameras: List[Camera]):
        self.cameras = cameras
        self.cv = threading.Condition()
        self._turn = 0

    def put(self, cam: Camera, msg) -> None:
        with self.cv:
            if cam.latest is not None:
                cam.dropped += 1
            cam.latest = msg
            cam.received += 1
            self.cv.notify()

    def take(self, timeout: float):
        """(camera, message) of the next camera with a pending frame, or None after ``timeout``."""
        with self.cv:
            item = self._next()
            if item is None:
                self.cv.wait(timeout)
                item = self._next()
            return item

    def _next(self):
        n = len(self.cameras)
        for i in range(n):
            index = (self._turn + i) % n
            cam = self.cameras[index]
            if cam.latest is not None:
                msg, cam.latest = cam.latest, None
                self._turn = index + 1
                return cam, msg
        return None

    def clear(self) -> None:
        """Forget pending frames (they count as dropped)."""
        with self.cv:
            for cam in self.cameras:
                if cam.latest is not None:
                    cam.latest = None
                    cam.dropped += 1

    def wake(self) -> None:
        with self.cv:
            self.cv.notify_all()

    def counts(self):
        with self.cv:
            return (sum(c.received for c in self.cameras), sum(c.dropped for c in self.cameras))


