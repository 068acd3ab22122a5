"""Publish a folder of images or a video file as sensor_msgs/Image, like a camera.

    camera_player SOURCE [--rate 10] [--loop] [--frame-id camera] [--encoding rgb8|bgr8]
                  [--topic image] [--reliable] [--wait 5] [--ros-args -r image:=/camera/image]

The topic is relative (`image`), so namespaces and remaps apply. Sensor-data QoS (best effort)
unless --reliable. Exits after one pass over the source unless --loop.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


def frames(source: Path):
    """Yield BGR uint8 frames of a folder of images (sorted by name) or of a video file."""
    import cv2
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ValueError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {source}")
        for path in files:
            img = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if img is None:
                print(f"warning: cannot read {path}; skipped", file=sys.stderr)
                continue
            yield img
    elif source.is_file():
        capture = cv2.VideoCapture(str(source))
        if not capture.isOpened():
            raise ValueError(f"cannot open {source} as a video")
        try:
            while True:
                ok, img = capture.read()
                if not ok:
                    break
                yield img
        finally:
            capture.release()
    else:
        raise ValueError(f"{source} is neither a folder of images nor a video file")


def to_msg(bgr: np.ndarray, encoding: str, frame_id: str, stamp):
    import cv2
    from sensor_msgs.msg import Image
    pixels = bgr if encoding == "bgr8" else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    pixels = np.ascontiguousarray(pixels)
    msg = Image(height=pixels.shape[0], width=pixels.shape[1], encoding=encoding,
                is_bigendian=0, step=pixels.shape[1] * 3, data=pixels.tobytes())
    msg.header.frame_id = frame_id
    msg.header.stamp = stamp
    return msg


def main(argv=None):
    import rclpy
    import rclpy.utilities
    from rclpy.executors import ExternalShutdownException
    from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
    from sensor_msgs.msg import Image

    full = sys.argv if argv is None else ["camera_player", *argv]
    parser = argparse.ArgumentParser(prog="camera_player", description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="folder of images or a video file")
    parser.add_argument("--rate", type=float, default=10.0, help="frames per second (default 10)")
    parser.add_argument("--loop", action="store_true", help="start again at the end")
    parser.add_argument("--frame-id", default="camera", help="header.frame_id (default camera)")
    parser.add_argument("--encoding", choices=("rgb8", "bgr8"), default="rgb8")
    parser.add_argument("--topic", default="image", help="topic (default: relative 'image')")
    parser.add_argument("--reliable", action="store_true",
                        help="reliable QoS instead of sensor-data (best effort)")
    parser.add_argument("--wait", type=float, default=5.0,
                        help="seconds to wait for a subscriber before the first frame (0 = none)")
    args = parser.parse_args(rclpy.utilities.remove_ros_args(full)[1:])
    if args.rate <= 0:
        parser.error("--rate must be > 0")
    if not args.source.exists():
        print(f"error: {args.source} does not exist")
        return 1

    rclpy.init(args=full)
    node = rclpy.create_node("camera_player")
    qos = (QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE) if args.reliable
           else qos_profile_sensor_data)
    pub = node.create_publisher(Image, args.topic, qos)
    sent = 0
    try:
        deadline = time.monotonic() + args.wait
        while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        period = 1.0 / args.rate
        next_time = time.monotonic()
        while True:
            any_frame = False
            for bgr in frames(args.source):
                any_frame = True
                pub.publish(to_msg(bgr, args.encoding, args.frame_id,
                                   node.get_clock().now().to_msg()))
                sent += 1
                next_time += period
                delay = next_time - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                else:
                    next_time = time.monotonic()
            if not args.loop or not any_frame:
                break
        node.get_logger().info(f"published {sent} frames on {pub.topic_name}")
        return 0 if sent else 1
    except ValueError as exc:
        print(f"error: {exc}")
        return 1
    except (KeyboardInterrupt, ExternalShutdownException):
        return 0
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    sys.exit(main())
