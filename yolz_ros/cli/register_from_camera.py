"""Register an object from what a camera sees.

    register_from_camera NAME --box X0 Y0 X1 Y1 [--mask MASK.png] [--camera TOPIC]
                         [--replace | --append | --negative] [--node /yolz] [--timeout 30]
    register_from_camera NAME --interactive [--topic image] [--replace | --append | --negative]
                         [--node /yolz]

With --box and/or --mask the node cuts the view from the newest frame it holds of the camera
(~/register_from_camera): the box corners are frame pixels; the mask is a PNG of the frame's
size whose non-zero pixels are the object (alone, its bounding box is the box).

With --interactive this tool shows the camera itself: press SPACE to freeze a frame, drag a box
on it, ENTER to confirm (ESC or c to cancel), q to quit. The crop of that frozen frame is sent
(~/register_object, or ~/add_views with --append or --negative), so the box applies to exactly
the frame shown.

--negative: the box shows a look-alike of the registered object NAME (the blue mug beside the red
one); the view is stored as a negative view of NAME, and cells that match it better than NAME
are lowered. Needs a display and an OpenCV with GUI support (opencv-python, not -headless).
Exit code 0 when the view is registered (also when the node's answer was lost and
~/list_objects confirms it), 1 otherwise.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
from typing import NamedTuple, Optional, Sequence

import numpy as np

GUI_PACKAGE = "opencv-python==5.0.0.93"
WINDOW = "register_from_camera"
HELP_TEXT = "SPACE: freeze and draw a box   q: quit"


class GuiUnavailable(RuntimeError):
    """No window can be opened here; the message says why and what to install."""


class Roi(NamedTuple):
    """A box in frame pixels, as sensor_msgs/RegionOfInterest holds it."""
    x: int
    y: int
    width: int
    height: int


# ------------------------------------------------------------------------------------------
# plain functions (no ROS, no window)
def roi_from_corners(x0: int, y0: int, x1: int, y1: int) -> Roi:
    """Corners (top-left inclusive, bottom-right exclusive) -> Roi; ValueError if empty."""
    if min(x0, y0, x1, y1) < 0:
        raise ValueError(f"box corners must be >= 0, got {x0} {y0} {x1} {y1}")
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"box {x0} {y0} {x1} {y1} is empty: X1 must be greater than X0 and "
                         "Y1 greater than Y0 (the corners are X0 Y0 X1 Y1)")
    return Roi(x0, y0, x1 - x0, y1 - y0)


def parse_box(values: Sequence[str]) -> Roi:
    """The four strings of --box -> Roi; ValueError saying what is wrong."""
    if len(values) != 4:
        raise ValueError(f"--box needs four numbers X0 Y0 X1 Y1, got {len(values)}")
    try:
        corners = [int(v) for v in values]
    except ValueError:
        raise ValueError(f"--box needs whole pixel numbers X0 Y0 X1 Y1, got "
                         f"{' '.join(values)}") from None
    return roi_from_corners(*corners)


def read_mask(path: str) -> np.ndarray:
    """A mask image file -> HxW uint8, 255 where the file is non-zero. ValueError if unreadable."""
    import cv2

    from yolz_ros.runtime.image import ImageError, check_encoded_size
    from yolz_ros.runtime.limits import MAX_IMAGE_PIXELS
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ValueError(f"cannot read mask file {path}: {exc.strerror or exc}") from None
    try:  # the size from the header first: a small file can declare gigapixels
        check_encoded_size(data, MAX_IMAGE_PIXELS)
    except ImageError as exc:
        raise ValueError(f"mask {path}: {exc}") from None
    mask = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    if mask is None:
        raise ValueError(f"cannot decode mask file {path}")
    return np.where(mask != 0, 255, 0).astype(np.uint8)


def gui_backend(build_info: str) -> str:
    """The GUI backend named in cv2.getBuildInformation() ('NONE' for headless; '' unknown)."""
    match = re.search(r"^\s*GUI:\s*(\S+)", build_info, re.MULTILINE)
    return match.group(1) if match else ""


def no_gui_message() -> str:
    return (f"this OpenCV has no GUI support (opencv-python-headless); for --interactive "
            f"install the GUI variant in its place: pip uninstall opencv-python-headless && "
            f"pip install {GUI_PACKAGE}")


def gui_problem(environ=None, build_info: Optional[str] = None) -> str:
    """Why an OpenCV window cannot be opened here ('' if nothing speaks against it)."""
    environ = os.environ if environ is None else environ
    if not environ.get("DISPLAY") and not environ.get("WAYLAND_DISPLAY"):
        return ("no display (DISPLAY and WAYLAND_DISPLAY are unset): --interactive needs a "
                "desktop session or X forwarding (ssh -X); or give --box/--mask instead")
    if build_info is None:
        import cv2
        build_info = cv2.getBuildInformation()
    if gui_backend(build_info).upper() == "NONE":
        return no_gui_message()
    return ""


# ------------------------------------------------------------------------------------------
# messages and printing
def roi_msg(roi: Roi):
    from sensor_msgs.msg import RegionOfInterest
    return RegionOfInterest(x_offset=roi.x, y_offset=roi.y, width=roi.width, height=roi.height)


def mask_msg(mask: np.ndarray):
    from sensor_msgs.msg import Image
    mask = np.ascontiguousarray(mask, np.uint8)
    return Image(height=mask.shape[0], width=mask.shape[1], encoding="mono8", is_bigendian=0,
                 step=mask.shape[1], data=mask.tobytes())


def describe_frame(header, roi: Roi) -> str:
    stamp = f"{header.stamp.sec}.{header.stamp.nanosec:09d}"
    return (f"frame: stamp {stamp}, frame_id {header.frame_id!r}; box {roi.x} {roi.y} "
            f"{roi.x + roi.width} {roi.y + roi.height} ({roi.width}x{roi.height})")


# ------------------------------------------------------------------------------------------
# the node cuts the view: ~/register_from_camera
def register_on_node(args, roi: Roi) -> int:
    from yolz_ros.cli import common
    from yolz_ros.cli.feedback import print_outcome
    from yolz_ros.srv import RegisterFromCamera

    request = RegisterFromCamera.Request(name=args.name, camera=args.camera, box=roi_msg(roi),
                                         replace=args.replace, append=args.append,
                                         negative=args.negative)
    if args.mask:
        request.mask = mask_msg(read_mask(args.mask))
    with common.connect(args.node, "yolz_register_from_camera") as yolz:
        outcome = yolz.register_from_camera(request, args.timeout)
    code = print_outcome(outcome)
    if outcome.success and outcome.response is not None:  # a refusal cut nothing
        box = outcome.response.box
        print(describe_frame(outcome.response.frame_header,
                             Roi(box.x_offset, box.y_offset, box.width, box.height)))
    elif outcome.success:
        print("frame: not known (the node's answer was lost; the view is registered)")
    return code


# ------------------------------------------------------------------------------------------
# this tool cuts the view: --interactive
def open_window() -> None:
    """Open the window, or GuiUnavailable (a GUI-less OpenCV fails here)."""
    import cv2
    try:
        cv2.namedWindow(WINDOW, cv2.WINDOW_AUTOSIZE)
    except cv2.error:
        raise GuiUnavailable(no_gui_message()) from None


def _show(rgb: np.ndarray) -> np.ndarray:
    """The frame as shown: BGR, with the key help drawn on a copy."""
    import cv2
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    shown = bgr.copy()
    cv2.putText(shown, HELP_TEXT, (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 255, 255), 1)
    cv2.imshow(WINDOW, shown)
    return bgr


def _select_box(bgr: np.ndarray) -> Optional[Roi]:
    """Let the operator drag a box on the frozen frame; None if cancelled (ESC or c)."""
    import cv2
    x, y, w, h = cv2.selectROI(WINDOW, bgr, showCrosshair=True, fromCenter=False)
    return Roi(int(x), int(y), int(w), int(h)) if w > 0 and h > 0 else None


def pick_from_stream(node, executor, topic: str):
    """Show the newest frames until the operator freezes one and draws a box on it.
    Returns (frame RGB, header, roi), or None when the operator quits."""
    import cv2
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    from yolz_ros.runtime.image import ImageError
    from yolz_ros.ros.image_msgs import image_msg_to_array
    newest = {}
    node.create_subscription(Image, topic, lambda msg: newest.update(msg=msg),
                             qos_profile_sensor_data)
    shown = None  # (rgb, bgr, header) of the frame in the window
    warned = False
    while True:
        executor.spin_once(timeout_sec=0.01)
        msg = newest.pop("msg", None)
        if msg is not None:
            try:
                rgb, _ = image_msg_to_array(msg)
                shown = (rgb, _show(rgb), msg.header)
            except ImageError as exc:
                if not warned:
                    print(f"warning: frame refused: {exc}", file=sys.stderr)
                    warned = True
        key = cv2.waitKey(15) & 0xFF
        if key == ord("q") or cv2.getWindowProperty(WINDOW, cv2.WND_PROP_VISIBLE) < 1:
            return None
        if key == ord(" ") and shown is not None:
            rgb, bgr, header = shown  # frozen: this is the frame the box is drawn on
            roi = _select_box(bgr)
            if roi is not None:
                return rgb, header, roi
            _show(rgb)


def grab_interactively(topic: str, ros_argv: Sequence[str]):
    """(frame RGB, header, roi) chosen on the live camera ``topic``, or None if the operator
    quit. ``ros_argv`` (the command line) carries remaps such as ``--ros-args -r image:=...``.
    The ROS context is shut down again before this returns (the service call makes its own)."""
    import cv2
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    rclpy.init(args=list(ros_argv))
    node = rclpy.create_node("yolz_register_from_camera_view")
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        open_window()
        print(f"showing {node.resolve_topic_name(topic)}: " + HELP_TEXT
              + "; on the box: ENTER confirms, ESC or c cancels")
        return pick_from_stream(node, executor, topic)
    finally:
        cv2.destroyAllWindows()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()


def register_interactively(args, ros_argv: Sequence[str]) -> int:
    from yolz_ros.cli import common
    from yolz_ros.cli.feedback import print_outcome
    from yolz_ros.runtime.crop import crop_view
    from yolz_ros.ros.image_msgs import view_to_image_msg
    from yolz_ros.srv import AddViews, RegisterObject

    problem = gui_problem()
    if problem:
        print(f"error: {problem}")
        return 1
    picked = grab_interactively(args.topic, ros_argv)
    if picked is None:
        print("cancelled: nothing registered")
        return 1
    frame, header, roi = picked
    views = [view_to_image_msg(crop_view(frame, tuple(roi))[0])]
    with common.connect(args.node, "yolz_register_from_camera") as yolz:
        if args.append or args.negative:
            outcome = yolz.add_views(AddViews.Request(name=args.name, views=views,
                                                      negative=args.negative), args.timeout)
        else:
            outcome = yolz.register(RegisterObject.Request(name=args.name, views=views,
                                                           replace=args.replace), args.timeout)
    code = print_outcome(outcome)
    print(describe_frame(header, roi))
    return code


# ------------------------------------------------------------------------------------------
def parse_args(argv):
    parser = argparse.ArgumentParser(prog="register_from_camera",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("name", help="object name ([A-Za-z0-9_.-], 1..64 characters)")
    parser.add_argument("--box", nargs=4, metavar=("X0", "Y0", "X1", "Y1"),
                        help="the object's box in frame pixels (top-left, bottom-right)")
    parser.add_argument("--mask", help="PNG of the frame's size, non-zero = the object")
    parser.add_argument("--camera", default="",
                        help="the node's camera topic ('' = its only camera)")
    parser.add_argument("--interactive", action="store_true",
                        help="show the camera here and draw the box on a frozen frame")
    parser.add_argument("--topic", default="image",
                        help="--interactive: the camera topic to show (default: relative "
                             "'image')")
    parser.add_argument("--replace", action="store_true", help="overwrite an existing object")
    parser.add_argument("--append", action="store_true",
                        help="add the view to the existing object NAME")
    parser.add_argument("--negative", action="store_true",
                        help="the box shows a look-alike: store the view as a negative view "
                             "of the existing object NAME")
    parser.add_argument("--node", default="/yolz", help="the yolz node's name (default /yolz)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait (default 30)")
    return parser.parse_args(argv)


def usage_problem(args) -> str:
    """What is wrong with the combination of options ('' if nothing)."""
    if args.replace and args.append:
        return "--replace and --append exclude each other"
    if args.negative and (args.replace or args.append):
        return "--negative adds a look-alike's view to the existing object; leave out " \
               "--replace and --append"
    if args.interactive and (args.box or args.mask):
        return "--interactive draws the box on the frame; leave out --box and --mask"
    if not args.interactive and not (args.box or args.mask):
        return "give --box X0 Y0 X1 Y1 and/or --mask MASK.png, or use --interactive"
    return ""


def main(argv=None):
    import rclpy.utilities
    full = sys.argv if argv is None else ["register_from_camera", *argv]
    args = parse_args(rclpy.utilities.remove_ros_args(full)[1:])
    from yolz_ros.cli.common import run_cli
    from yolz_ros.runtime.library import validate_name

    def body():
        try:
            problem = usage_problem(args)
            if problem:
                raise ValueError(problem)
            validate_name(args.name)
            if args.interactive:
                return register_interactively(args, full)
            # no box: the node takes the mask's bounding box
            return register_on_node(args, parse_box(args.box) if args.box else Roi(0, 0, 0, 0))
        except (ValueError, GuiUnavailable) as exc:  # bad box or mask or name, no GUI
            print(f"error: {exc}")
            return 1

    return run_cli(body)


if __name__ == "__main__":
    sys.exit(main())
