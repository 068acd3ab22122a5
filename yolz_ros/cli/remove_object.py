"""Remove a registered object (and its stored views) from the yolz node.

    remove_object NAME [--node /yolz] [--timeout 10]

Exit code 0 when the object is gone (also when the node's answer was lost and ~/list_objects
confirms it), 1 otherwise.
"""
from __future__ import annotations

import argparse
import sys


def main(argv=None):
    import rclpy.utilities
    argv = rclpy.utilities.remove_ros_args(sys.argv if argv is None else ["x", *argv])[1:]
    parser = argparse.ArgumentParser(prog="remove_object", description=__doc__.split("\n\n")[0])
    parser.add_argument("name", help="the object to remove")
    parser.add_argument("--node", default="/yolz", help="the yolz node's name (default /yolz)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait")
    args = parser.parse_args(argv)
    from yolz_ros.cli import common
    from yolz_ros.cli.feedback import print_outcome

    def body():
        with common.connect(args.node, "yolz_remove_object") as yolz:
            outcome = yolz.remove(args.name, args.timeout)
        return print_outcome(outcome)

    return common.run_cli(body)


if __name__ == "__main__":
    sys.exit(main())
