"""How many camera frames does DDS deliver on one host? A plain publisher and a plain subscriber.

    python -m tools.dds_probe [--seconds 20] [--rate 30] [--size 640x480] [--reliable]
                                [--profile config/fastdds_same_host.xml | --no-profile]
                                [--json out.json]

Runs a publisher process (the synthetic camera, yolz_ros/ros/synthetic_camera.py: rgb8 at
--rate, best effort unless --reliable) and
a subscriber in this process (sensor-data QoS, depth 5, a callback that only counts), both with
the same FastDDS setting, and prints frames sent / received. No yolz node: this isolates the
transport from inference. ``--profile`` points FastDDS at the profile for both sides
(FASTRTPS_DEFAULT_PROFILES_FILE on Fast DDS 2.x: Humble, Jazzy; FASTDDS_... on 3.x, Kilted; the
same-host profile shipped in config/ is the default); ``--no-profile`` measures FastDDS's
defaults.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from yolz_ros.ros.dds import current_profile, set_profile  # noqa: E402
DEFAULT_PROFILE = ROOT / "config" / "fastdds_same_host.xml"


def subscriber(args) -> dict:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import Image

    from yolz_ros.ros.synthetic_camera import camera_qos
    env = os.environ.copy()
    profile = current_profile()
    if args.profile_side == "sub":
        set_profile(env, None)
    elif args.profile_side == "pub":
        set_profile(os.environ, None)
    cmd = [sys.executable, "-m", "yolz_ros.ros.synthetic_camera", "--seconds", str(args.seconds),
           "--rate", str(args.rate), "--size", f"{args.width}x{args.height}",
           "--topic", args.topic]
    if args.reliable:
        cmd.append("--reliable")
    rclpy.init()
    node = rclpy.create_node("dds_probe_sub")
    qos = camera_qos(args.reliable)
    received = [0]

    def on_image(msg):
        received[0] += 1
    node.create_subscription(Image, args.topic, on_image, qos)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    try:
        while proc.poll() is None:
            executor.spin_once(timeout_sec=0.05)
        end = time.monotonic() + 0.5
        while time.monotonic() < end:
            executor.spin_once(timeout_sec=0.05)
        out = proc.stdout.read().strip().splitlines()
        pub = json.loads(out[-1]) if out else {"sent": 0, "seconds": 0}
    finally:
        if proc.poll() is None:
            proc.kill()
        node.destroy_node()
        rclpy.try_shutdown()
    sent = pub["sent"]
    return {"profile": profile, "profile_side": args.profile_side if profile else "",
            "builtin_transports": os.environ.get("FASTDDS_BUILTIN_TRANSPORTS", ""),
            "reliable": args.reliable, "rate_hz": args.rate,
            "size": f"{args.width}x{args.height}", "sent": sent, "received": received[0],
            "delivered_fraction": round(received[0] / sent, 4) if sent else 0.0,
            "seconds": round(pub["seconds"], 2),
            "received_per_s": round(received[0] / pub["seconds"], 2) if pub["seconds"] else 0}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--topic", default=f"/dds_probe_{os.getpid()}/image",
                        help=argparse.SUPPRESS)  # this run's own: other runs may share the domain
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=30.0)
    parser.add_argument("--size", default="640x480")
    parser.add_argument("--reliable", action="store_true")
    parser.add_argument("--profile", type=Path, default=DEFAULT_PROFILE)
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--profile-side", choices=("both", "pub", "sub"), default="both",
                        help="which process uses the profile (default both)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    args.width, args.height = (int(v) for v in args.size.lower().split("x"))
    if args.no_profile:
        set_profile(os.environ, None)
    else:
        set_profile(os.environ, args.profile.resolve())
    result = subscriber(args)
    print(json.dumps(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
