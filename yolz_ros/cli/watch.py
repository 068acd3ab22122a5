"""Print what the yolz node finds, frame by frame: each detection's name, score and pixel box,
and its 3D point when the node has depth.

    watch [--node /yolz] [--camera CAMERA] [--frames N] [--timeout 30]

Reads ~/detections (vision_msgs/Detection2DArray) and, when published, ~/detections_3d
(vision_msgs/Detection3DArray) of the node; with several cameras give --camera (the key the
node's outputs use, e.g. cam_a_image). Exits after N frames (default: until Ctrl-C).
"""
from __future__ import annotations

import argparse
import sys
import time


def describe_2d(msg) -> str:
    """One line for a Detection2DArray."""
    parts = []
    for d in msg.detections:
        h = d.results[0].hypothesis if d.results else None
        x0 = d.bbox.center.position.x - d.bbox.size_x / 2
        y0 = d.bbox.center.position.y - d.bbox.size_y / 2
        parts.append(f"{h.class_id if h else '?'} {h.score if h else 0:.2f} box "
                     f"[{x0:.0f} {y0:.0f} {x0 + d.bbox.size_x:.0f} {y0 + d.bbox.size_y:.0f}]")
    return "; ".join(parts) or "nothing"


def describe_3d(msg) -> str:
    """One line for a Detection3DArray: name and x, y, z in metres in its frame."""
    parts = []
    for d in msg.detections:
        p = d.bbox.center.position
        name = d.results[0].hypothesis.class_id if d.results else "?"
        parts.append(f"{name} at x={p.x:+.3f} y={p.y:+.3f} z={p.z:.3f} m")
    return ("; ".join(parts) or "no 3D point") + f" ({msg.header.frame_id})"


def main(argv=None):
    import rclpy
    import rclpy.utilities
    from rclpy.executors import SingleThreadedExecutor
    from vision_msgs.msg import Detection2DArray, Detection3DArray

    from yolz_ros.ros.spin import spin_until_shutdown

    full = sys.argv if argv is None else ["watch", *argv]
    parser = argparse.ArgumentParser(prog="watch", description=__doc__.split("\n\n")[0])
    parser.add_argument("--node", default="/yolz", help="the yolz node's name (default /yolz)")
    parser.add_argument("--camera", default="", help="camera key with several cameras")
    parser.add_argument("--frames", type=int, default=0, help="stop after N frames (0 = never)")
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="give up when no frame arrives for this long (s)")
    args = parser.parse_args(rclpy.utilities.remove_ros_args(full)[1:])
    prefix = args.node.rstrip("/") + (f"/{args.camera}" if args.camera else "")

    rclpy.init(args=full)
    node = rclpy.create_node("yolz_watch")
    shown = [0]
    last = [time.monotonic()]

    def on_2d(msg):
        last[0] = time.monotonic()
        print(f"{msg.header.stamp.sec}.{msg.header.stamp.nanosec:09d}  {describe_2d(msg)}",
              flush=True)
        shown[0] += 1

    def on_3d(msg):
        print(f"{msg.header.stamp.sec}.{msg.header.stamp.nanosec:09d}  3D: {describe_3d(msg)}",
              flush=True)

    node.create_subscription(Detection2DArray, f"{prefix}/detections", on_2d, 10)
    node.create_subscription(Detection3DArray, f"{prefix}/detections_3d", on_3d, 10)

    def silent() -> bool:
        return time.monotonic() - last[0] > args.timeout

    def done() -> bool:
        return silent() or 0 < args.frames <= shown[0]

    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        if spin_until_shutdown(executor, period=0.1, until=done) and silent():
            print(f"error: no detections from {prefix}/detections for {args.timeout:.0f} s: "
                  "is the node running and the camera publishing?")
            return 1
        return 0
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    sys.exit(main())
