"""Remove a registered object (and its stored views) from the yolz node.

    remove_object NAME [--node /yolz] [--timeout 10]
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
    from yolz_ros.cli.common import call_service, run_cli, service_name
    from yolz_ros.srv import RemoveObject

    def body():
        response = call_service(RemoveObject, service_name(args.node, "remove_object"),
                                RemoveObject.Request(name=args.name), args.timeout,
                                "yolz_remove_object")
        print(("ok: " if response.success else "failed: ") + response.message)
        print("registered objects: " + (", ".join(response.names) or "(none)"))
        return 0 if response.success else 1

    return run_cli(body)


if __name__ == "__main__":
    sys.exit(main())
