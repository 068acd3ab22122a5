"""Move registered objects between yolz nodes as `.yolz` archive files.

    library export NAME -o FILE.yolz [--force] [--node /yolz] [--timeout 30]
    library import FILE.yolz [--name NEW_NAME] [--replace] [--node /yolz] [--timeout 30]
    library list [--node /yolz] [--timeout 10]

An archive carries the object's reference views and its negative views (look-alikes it is not;
format yolz-object/2, see yolz_ros/runtime/archive.py), not its embedding: the importing node
embeds the views with its own model. An import registers the object (~/register_object), then
adds its negative views (~/add_views with negative). Exit code 0 on success (an import whose
answer was lost counts when ~/list_objects confirms it), 1 otherwise.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="library", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    export = commands.add_parser("export", help="write a registered object to a .yolz file")
    export.add_argument("name", help="the registered object")
    export.add_argument("-o", "--output", required=True, help="the archive to write (.yolz)")
    export.add_argument("--force", action="store_true", help="overwrite an existing file")

    imp = commands.add_parser("import", help="register the object of a .yolz file")
    imp.add_argument("archive", help="the .yolz file")
    imp.add_argument("--name", help="register under this name instead of the archive's")
    imp.add_argument("--replace", action="store_true", help="overwrite an existing object")

    listing = commands.add_parser("list", help="list the registered objects")
    for sub, timeout in ((export, 30.0), (imp, 30.0), (listing, 10.0)):
        sub.add_argument("--node", default="/yolz", help="the yolz node's name (default /yolz)")
        sub.add_argument("--timeout", type=float, default=timeout,
                         help=f"seconds to wait (default {timeout:.0f})")
    return parser.parse_args(argv)


def export_object(args) -> int:
    from yolz_ros.cli import common
    from yolz_ros.runtime.archive import write_archive
    from yolz_ros.ros.image_msgs import image_msg_to_view

    if Path(args.output).exists() and not args.force:  # before asking the node for the views
        print(f"error: {args.output} exists; choose another file or add --force")
        return 1
    with common.connect(args.node, "yolz_library") as yolz:  # a read: asked again if lost
        response = yolz.get_object_views(args.name, args.timeout)
    if not response.success:
        print(f"error: {response.message}")
        return 1
    views = [image_msg_to_view(msg) for msg in response.views]
    negatives = [image_msg_to_view(msg) for msg in response.negative_views]
    write_archive(args.output, args.name, views, response.model_id, response.created,
                  overwrite=args.force, negatives=negatives)
    more = (f", {len(negatives)} negative view{'s' if len(negatives) != 1 else ''}"
            if negatives else "")
    print(f"ok: exported {args.name} ({len(views)} views{more}, embedded by model "
          f"{response.model_id or '?'}) to {args.output}")
    return 0


def import_object(args) -> int:
    from yolz_ros.cli import common
    from yolz_ros.cli.feedback import print_outcome
    from yolz_ros.runtime.archive import read_archive
    from yolz_ros.ros.image_msgs import view_to_image_msg
    from yolz_ros.runtime.library import validate_name
    from yolz_ros.srv import AddViews, RegisterObject

    archive = read_archive(args.archive)
    name = validate_name(args.name) if args.name is not None else archive.name
    negatives = len(archive.negatives)
    print(f"{args.archive}: object {archive.name}, {len(archive.views)} views"
          + (f", {negatives} negative view{'s' if negatives != 1 else ''}" if negatives else "")
          + (f", embedded by model {archive.model_id}" if archive.model_id else "")
          + (f", created {archive.created}" if archive.created else ""))
    request = RegisterObject.Request(name=name, replace=args.replace,
                                     views=[view_to_image_msg(v) for v in archive.views])
    with common.connect(args.node, "yolz_library") as yolz:
        outcome = yolz.register(request, args.timeout)
        labels = [f"views/view_{i:03d}.png" for i in range(len(archive.views))]
        code = print_outcome(outcome, labels)
        if code != 0 or not negatives:
            return code
        more = AddViews.Request(name=name, negative=True,
                                views=[view_to_image_msg(v) for v in archive.negatives])
        outcome = yolz.add_views(more, args.timeout)
    if not outcome.success:
        outcome.message += (f" ({name!r} is registered without its negative views: add them "
                            "with register --negative)")
    labels = [f"negatives/negative_{i:03d}.png" for i in range(negatives)]
    return print_outcome(outcome, labels if not outcome.success else ())


def list_objects(args) -> int:
    from yolz_ros.cli import list_objects as list_cli
    return list_cli.main(["--node", args.node, "--timeout", str(args.timeout)])


def main(argv=None):
    import rclpy.utilities
    argv = rclpy.utilities.remove_ros_args(sys.argv if argv is None else ["library", *argv])[1:]
    args = parse_args(argv)
    from yolz_ros.cli.common import run_cli

    def body():
        command = {"export": export_object, "import": import_object, "list": list_objects}
        try:
            return command[args.command](args)
        except ValueError as exc:  # ArchiveError, a bad --name, a view the node sent oddly
            print(f"error: {exc}")
            return 1

    return run_cli(body)


if __name__ == "__main__":
    sys.exit(main())
