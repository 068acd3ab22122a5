"""A made-up camera: WxH rgb8 noise frames at a fixed rate (runtime/pacer.py) on one topic,
stamped as published, with sensor-data QoS (best effort, as a camera driver) unless reliable.
The soak, dds_probe and the transport tests run it as a process of its own:

    python -m yolz_ros.ros.synthetic_camera --topic /ns/image [--seconds 10] [--rate 30]
        [--size 640x480] [--drop 0.5] [--wait 15] [--reliable] [--counts FILE]

--drop P skips that share of the frames at random before they are published (a loss the node
can see only in the stamps); --wait waits that long for a subscriber first; --counts FILE is
rewritten every 0.25 s with {"t", "sent", "since"} (the soak reads the count while it runs);
--seconds 0 runs until SIGTERM or SIGINT. Prints {"sent", "skipped", "seconds"} at the end. The
FastDDS profile is whatever its environment says.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import time
from pathlib import Path

import numpy as np

from yolz_ros.runtime.pacer import Pacer

MAX_LAG_S = 1.0  # behind by more (a stalled machine): skip ahead instead of bursting frames


def camera_qos(reliable: bool = False):
    """What a camera driver publishes with: sensor data (best effort), or reliable depth 5."""
    from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
    return (QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE) if reliable
            else qos_profile_sensor_data)


def wait_for_subscribers(publishers, timeout: float) -> bool:
    """Wait up to ``timeout`` s until every publisher has a subscriber (a message sent before
    its subscriber matched is lost, even when reliable); True when they all have one."""
    deadline = time.monotonic() + timeout
    while any(p.get_subscription_count() == 0 for p in publishers):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


class SyntheticCamera:
    """Noise frames of ``width`` x ``height`` on ``topic`` from ``node`` (an rclpy node)."""

    def __init__(self, node, topic: str, width: int, height: int, reliable: bool = False,
                 frame_id: str = "synthetic_camera", num_frames: int = 4, seed: int = 0):
        from sensor_msgs.msg import Image
        self.node = node
        self.publisher = node.create_publisher(Image, topic, camera_qos(reliable))
        rng = np.random.default_rng(seed)
        self.frames = [Image(height=height, width=width, encoding="rgb8", step=width * 3,
                             data=rng.integers(0, 256, (height, width, 3), np.uint8).tobytes())
                       for _ in range(num_frames)]
        for msg in self.frames:
            msg.header.frame_id = frame_id
        self.sent = self.skipped = 0

    def publish(self) -> None:
        """The next frame, stamped now."""
        msg = self.frames[self.sent % len(self.frames)]
        msg.header.stamp = self.node.get_clock().now().to_msg()
        self.publisher.publish(msg)
        self.sent += 1

    def run(self, rate: float, seconds: float = 0.0, drop: float = 0.0, stop=lambda: False,
            on_tick=None) -> dict:
        """Publish at ``rate`` Hz for ``seconds`` (0: until ``stop()``), skipping a ``drop``
        share of the ticks at random; ``on_tick(self)`` after each. The counts and the time."""
        dice = random.Random(1)
        pacer = Pacer(rate, max_lag=MAX_LAG_S)
        while not stop() and (seconds <= 0 or pacer.elapsed() < seconds):
            if drop and dice.random() < drop:
                self.skipped += 1
            else:
                self.publish()
            if on_tick is not None:
                on_tick(self)
            pacer.wait()
        return {"sent": self.sent, "skipped": self.skipped, "seconds": round(pacer.elapsed(), 3)}


class _CountsFile:
    """The camera's count in a file, rewritten atomically at most every 0.25 s."""

    def __init__(self, path: str):
        self.path, self.last = Path(path), 0.0
        self.since = time.monotonic()

    def __call__(self, camera: SyntheticCamera, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self.last > 0.25:
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"t": time.time(), "sent": camera.sent,
                                       "since": self.since}))
            os.replace(tmp, self.path)
            self.last = now


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--topic", required=True)
    ap.add_argument("--seconds", type=float, default=10.0, help="0 = until SIGTERM/SIGINT")
    ap.add_argument("--rate", type=float, default=30.0)
    ap.add_argument("--size", default="640x480")
    ap.add_argument("--drop", type=float, default=0.0)
    ap.add_argument("--wait", type=float, default=15.0, help="for a subscriber, at most (s)")
    ap.add_argument("--reliable", action="store_true")
    ap.add_argument("--counts", default="", help="file of the running count (the soak's)")
    args = ap.parse_args(argv)
    import rclpy
    w, h = (int(v) for v in args.size.lower().split("x"))
    rclpy.init(args=[])
    node = rclpy.create_node("synthetic_camera")
    camera = SyntheticCamera(node, args.topic, w, h, args.reliable)
    stopped = []
    signal.signal(signal.SIGTERM, lambda *a: stopped.append(True))
    if args.wait > 0 and wait_for_subscribers([camera.publisher], args.wait):
        time.sleep(0.5)  # the subscriber's side of the match, too
    counts = _CountsFile(args.counts) if args.counts else None
    try:
        result = camera.run(args.rate, args.seconds, args.drop,
                            stop=lambda: bool(stopped) or not rclpy.ok(), on_tick=counts)
    except KeyboardInterrupt:
        result = {"sent": camera.sent, "skipped": camera.skipped, "seconds": None}
    if counts is not None:
        counts(camera, force=True)
    print(json.dumps(result), flush=True)
    time.sleep(0.5 if rclpy.ok() else 0.0)  # the last frames still on their way
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
