"""A camera process for the transport-health test: WxH rgb8 frames at --rate, best effort
(sensor-data QoS, like a camera driver), stamped with the time of publishing; --drop P skips
that share of the frames at random before they are published (a simulated loss the node can
only see in the stamps). Prints {"sent": N, "skipped": M, "seconds": S} at the end. The FastDDS
profile is whatever its environment says (tests start it with and without the same-host one).

    python tests/ros/lossy_camera.py --topic /ns/image [--seconds 10] [--rate 30]
                                     [--size 640x480] [--drop 0.5]
"""
import argparse
import json
import random
import sys
import time


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--topic", required=True)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=30.0)
    ap.add_argument("--size", default="640x480")
    ap.add_argument("--drop", type=float, default=0.0)
    ap.add_argument("--wait", type=float, default=15.0, help="for a subscriber, at most (s)")
    args = ap.parse_args(argv)
    import numpy as np
    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    from yolz_ros.runtime.pacer import Pacer
    w, h = (int(v) for v in args.size.lower().split("x"))
    rclpy.init()
    node = rclpy.create_node("lossy_camera")
    pub = node.create_publisher(Image, args.topic, qos_profile_sensor_data)
    deadline = time.monotonic() + args.wait
    while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8).tobytes() for _ in range(4)]
    drop = random.Random(1)
    sent = skipped = 0
    pacer = Pacer(args.rate)
    while pacer.elapsed() < args.seconds:
        if drop.random() < args.drop:
            skipped += 1
        else:
            msg = Image(height=h, width=w, encoding="rgb8", step=w * 3,
                        data=frames[sent % 4])
            msg.header.stamp = node.get_clock().now().to_msg()
            msg.header.frame_id = "lossy_camera"
            pub.publish(msg)
            sent += 1
        pacer.wait()
    print(json.dumps({"sent": sent, "skipped": skipped,
                      "seconds": round(pacer.elapsed(), 2)}), flush=True)
    time.sleep(0.5)
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
