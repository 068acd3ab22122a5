"""List the objects registered with the yolz node.

    list_objects [--node /yolz] [--timeout 10]

One line per object: its views and, where it has any, its negative views (look-alikes it is
not).
"""
from __future__ import annotations

import argparse
import sys


def main(argv=None):
    import rclpy.utilities
    argv = rclpy.utilities.remove_ros_args(sys.argv if argv is None else ["x", *argv])[1:]
    parser = argparse.ArgumentParser(prog="list_objects", description=__doc__.split("\n\n")[0])
    parser.add_argument("--node", default="/yolz", help="the yolz node's name (default /yolz)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait")
    args = parser.parse_args(argv)
    from yolz_ros.cli import common

    def body():
        with common.connect(args.node, "yolz_list_objects") as yolz:
            response = yolz.list_objects(args.timeout)
        if not response.success:
            print("failed: " + response.message)
            return 1
        print(f"model {response.model_id}: {response.message}")
        negatives = list(response.num_negative_views)
        if len(negatives) != len(response.names):
            negatives = [0] * len(response.names)
        for name, views, negs in zip(response.names, response.num_views, negatives):
            more = f", {negs} negative view{'s' if negs != 1 else ''}" if negs else ""
            print(f"  {name}  ({views} views{more})")
        return 0

    return common.run_cli(body)


if __name__ == "__main__":
    sys.exit(main())
