"""Register an object with the yolz node from image files.

    register NAME img1.jpg img2.png ... [--replace | --append | --negative] [--node /yolz]
             [--timeout 30]

--append adds the images as more views of the registered object NAME (~/add_views); --negative
stores them as its negative views: look-alikes NAME is not (~/add_views with negative, at most
4 per object), so cells that match them better than NAME are lowered.

PNG files with an alpha channel are sent as rgba8 (the alpha masks the object); other images as
rgb8, grayscale as mono8, 16-bit grayscale as mono16. Exit code 0 when the object is registered
(also when the node's answer was lost and ~/list_objects confirms it), 1 otherwise.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np


def read_view(path: str):
    """An image file -> sensor_msgs/Image (rgb8, rgba8, mono8 or mono16). Raises ValueError."""
    import cv2
    from sensor_msgs.msg import Image

    from yolz_ros.runtime.image import ImageError, check_encoded_size
    from yolz_ros.runtime.limits import MAX_VIEW_PIXELS, MAX_VIEW_SIDE
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ValueError(f"cannot read image file {path}: {exc}") from None
    if data[:8] == b"\x89PNG\r\n\x1a\n" or data[:2] == b"\xff\xd8":
        try:  # the size from the header, before decoding (a small file can declare gigapixels)
            check_encoded_size(data, MAX_VIEW_PIXELS, MAX_VIEW_SIDE)
        except ImageError as exc:
            raise ValueError(f"{path}: {exc}") from None
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if pixels is None:
        raise ValueError(f"cannot read image file {path}")
    if pixels.ndim == 2:
        encoding = "mono16" if pixels.dtype == np.uint16 else "mono8"
    else:
        if pixels.dtype == np.uint16:
            pixels = (pixels >> 8).astype(np.uint8)
        if pixels.shape[2] == 4:
            pixels, encoding = cv2.cvtColor(pixels, cv2.COLOR_BGRA2RGBA), "rgba8"
        else:
            pixels, encoding = cv2.cvtColor(pixels[:, :, :3], cv2.COLOR_BGR2RGB), "rgb8"
    if pixels.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"{path}: unsupported pixel type {pixels.dtype}")
    pixels = np.ascontiguousarray(pixels)
    h, w = pixels.shape[:2]
    return Image(height=h, width=w, encoding=encoding, is_bigendian=0,
                 step=pixels.strides[0], data=pixels.tobytes())


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="register", description=__doc__.split("\n\n")[0])
    parser.add_argument("name", help="object name ([A-Za-z0-9_.-], 1..64 characters)")
    parser.add_argument("images", nargs="+", help="reference view image files (1..32)")
    change = parser.add_mutually_exclusive_group()
    change.add_argument("--replace", action="store_true", help="overwrite an existing object")
    change.add_argument("--append", action="store_true",
                        help="add the images as more views of the registered object NAME")
    change.add_argument("--negative", action="store_true",
                        help="the images show a look-alike: store them as negative views of "
                             "the registered object NAME")
    parser.add_argument("--node", default="/yolz", help="the yolz node's name (default /yolz)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait (default 30)")
    return parser.parse_args(argv)


def main(argv=None):
    import rclpy.utilities
    argv = rclpy.utilities.remove_ros_args(sys.argv if argv is None else ["register", *argv])[1:]
    args = parse_args(argv)
    from yolz_ros.cli import common
    from yolz_ros.cli.feedback import print_outcome
    from yolz_ros.srv import AddViews, RegisterObject

    def body():
        adding = args.append or args.negative
        if adding:
            request = AddViews.Request(name=args.name, negative=args.negative)
        else:
            request = RegisterObject.Request(name=args.name, replace=args.replace)
        for path in args.images:
            try:
                request.views.append(read_view(path))
            except ValueError as exc:
                print(f"error: {exc}")
                return 1
        with common.connect(args.node, "yolz_register") as yolz:
            if adding:
                outcome = yolz.add_views(request, args.timeout)
            else:
                outcome = yolz.register(request, args.timeout)
        # a refusal's notes are on the images sent; an added view's feedback is on the object's
        labels = args.images if not adding or not outcome.success else ()
        return print_outcome(outcome, labels)

    return common.run_cli(body)


if __name__ == "__main__":
    sys.exit(main())
