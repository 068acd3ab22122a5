"""Publish a folder of images or a video file as sensor_msgs/Image, like a camera.

    camera_player SOURCE [--rate 10] [--loop] [--frame-id camera] [--encoding rgb8|bgr8]
                  [--topic image] [--reliable] [--wait 5] [--ros-args -r image:=/camera/image]
                  [--depth DIR [--depth-topic depth] [--depth-encoding 16UC1|32FC1]]
                  [--camera-info FILE.yaml [--info-topic camera_info]]

The topics are relative (`image`, `depth`, `camera_info`), so namespaces and remaps apply.
Sensor-data QoS (best effort) unless --reliable. Exits after one pass over the source unless --loop.

An RGB-D camera: --depth DIR holds one 16-bit PNG (millimetres, 0 = no data) per colour frame,
paired by sorted file name, and registered to the colour image (same size, same optical frame).
--camera-info publishes the ROS calibration YAML as sensor_msgs/CameraInfo. All messages of one
frame carry the same header (stamp and frame_id).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from yolz_ros.ros.image_msgs import array_to_image_msg
from yolz_ros.runtime.depth import parse_camera_info
from yolz_ros.runtime.pacer import Pacer

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


def image_files(folder: Path) -> list[Path]:
    """The folder's image files, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def frames(source: Path):
    """Yield BGR uint8 frames of a folder of images (sorted by name) or of a video file."""
    import cv2
    if source.is_dir():
        files = image_files(source)
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


def read_depth(path: Path) -> np.ndarray:
    """A 16-bit depth PNG -> uint16 millimetres [H, W]; ValueError when it is not one."""
    import cv2
    mm = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if mm is None or mm.dtype != np.uint16 or mm.ndim != 2:
        raise ValueError(f"{path} is not a single-channel 16-bit depth PNG (millimetres)")
    return mm


def paired_files(source: Path, depth: Path) -> list[tuple[Path, Path]]:
    """(colour, depth) file pairs by sorted name; ValueError unless the counts match."""
    colour = image_files(source)
    depths = image_files(depth) if depth.is_dir() else []
    if not colour or len(depths) != len(colour):
        raise ValueError(f"{depth} has {len(depths)} depth images for {len(colour)} colour "
                         f"images in {source}: one 16-bit depth PNG per colour image is needed")
    return list(zip(colour, depths))


def rgbd_frames(source: Path, depth: Path):
    """Yield (BGR uint8 [H, W, 3], depth uint16 mm [H, W]) pairs; an unreadable colour image
    is skipped with its depth, so the pairing never shifts."""
    import cv2
    for colour_path, depth_path in paired_files(source, depth):
        bgr = cv2.imread(str(colour_path), cv2.IMREAD_COLOR)
        if bgr is None:
            print(f"warning: cannot read {colour_path}; skipped with its depth", file=sys.stderr)
            continue
        mm = read_depth(depth_path)
        if mm.shape != bgr.shape[:2]:
            raise ValueError(f"{depth_path} is {mm.shape[1]}x{mm.shape[0]}, its colour image "
                             f"{bgr.shape[1]}x{bgr.shape[0]}: registered depth has its size")
        yield bgr, mm


def read_camera_info(path: Path) -> dict:
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read camera info {path}: {exc}") from None
    try:
        return parse_camera_info(text)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def camera_info_msg(info: dict, header):
    from sensor_msgs.msg import CameraInfo
    msg = CameraInfo(width=info["width"], height=info["height"],
                     distortion_model=info["distortion_model"], d=info["d"], k=info["k"],
                     r=info["r"], p=info["p"])
    msg.header = header
    return msg


def depth_msg(mm: np.ndarray, encoding: str, header):
    """uint16 millimetres -> Image: 16UC1 as is, or 32FC1 metres with no data (0) as NaN."""
    if encoding == "32FC1":
        pixels = mm.astype(np.float32) / 1000.0
        pixels[mm == 0] = np.nan
    else:
        pixels = mm
    return array_to_image_msg(pixels, encoding, header)


def to_msg(bgr: np.ndarray, encoding: str, frame_id: str, stamp):
    import cv2
    pixels = bgr if encoding == "bgr8" else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    msg = array_to_image_msg(pixels, encoding)
    msg.header.frame_id = frame_id
    msg.header.stamp = stamp
    return msg


def main(argv=None):
    import rclpy
    import rclpy.utilities
    from rclpy.executors import ExternalShutdownException
    from sensor_msgs.msg import Image

    from yolz_ros.ros.synthetic_camera import camera_qos, wait_for_subscribers

    full = sys.argv if argv is None else ["camera_player", *argv]
    parser = argparse.ArgumentParser(prog="camera_player", description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="folder of images or a video file")
    parser.add_argument("--rate", type=float, default=10.0, help="frames per second (default 10)")
    parser.add_argument("--loop", action="store_true", help="start again at the end")
    parser.add_argument("--frame-id", default="camera",
                        help="header.frame_id of every message (default camera); a registered "
                             "colour/depth pair shares the colour camera's optical frame")
    parser.add_argument("--encoding", choices=("rgb8", "bgr8"), default="rgb8")
    parser.add_argument("--topic", default="image", help="topic (default: relative 'image')")
    parser.add_argument("--reliable", action="store_true",
                        help="reliable QoS instead of sensor-data (best effort)")
    parser.add_argument("--wait", type=float, default=5.0,
                        help="seconds to wait for a subscriber on each topic (colour, depth, "
                             "camera_info) before the first frame (0 = none)")
    parser.add_argument("--depth", type=Path, default=None, metavar="DIR",
                        help="folder of 16-bit depth PNGs (mm, 0 = no data), one per colour "
                             "frame by sorted name, registered to the colour image")
    parser.add_argument("--depth-topic", default="depth", help="default: relative 'depth'")
    parser.add_argument("--depth-encoding", choices=("16UC1", "32FC1"), default="16UC1",
                        help="16UC1: millimetres as stored; 32FC1: metres, no data as NaN")
    parser.add_argument("--camera-info", type=Path, default=None, metavar="FILE.yaml",
                        help="ROS camera calibration YAML, published as sensor_msgs/CameraInfo")
    parser.add_argument("--info-topic", default="camera_info",
                        help="default: relative 'camera_info'")
    args = parser.parse_args(rclpy.utilities.remove_ros_args(full)[1:])
    if args.rate <= 0:
        parser.error("--rate must be > 0")
    if not args.source.exists():
        print(f"error: {args.source} does not exist")
        return 1
    info = None
    try:
        if args.camera_info is not None:
            info = read_camera_info(args.camera_info)
        if args.depth is not None:
            if not args.source.is_dir():
                raise ValueError("--depth needs SOURCE to be a folder of colour images")
            paired_files(args.source, args.depth)  # fails early on a count mismatch
    except ValueError as exc:
        print(f"error: {exc}")
        return 1

    rclpy.init(args=full)
    node = rclpy.create_node("camera_player")
    qos = camera_qos(args.reliable)
    pub = node.create_publisher(Image, args.topic, qos)
    depth_pub = node.create_publisher(Image, args.depth_topic, qos) if args.depth else None
    info_pub = None
    if info is not None:
        from sensor_msgs.msg import CameraInfo
        info_pub = node.create_publisher(CameraInfo, args.info_topic, qos)
    sent = 0
    try:
        # every topic: an RGB-D consumer needs the whole set
        wait_for_subscribers([p for p in (pub, depth_pub, info_pub) if p is not None], args.wait)
        pacer = Pacer(args.rate, max_lag=0.0)
        while rclpy.ok():  # SIGINT/SIGTERM shut the context down: stop publishing
            any_frame = False
            source = rgbd_frames(args.source, args.depth) if args.depth \
                else ((bgr, None) for bgr in frames(args.source))
            for bgr, mm in source:
                if not rclpy.ok():
                    break
                any_frame = True
                msg = to_msg(bgr, args.encoding, args.frame_id, node.get_clock().now().to_msg())
                # Depth and info go first, so a subscriber holding the colour has the whole set.
                if mm is not None:
                    depth_pub.publish(depth_msg(mm, args.depth_encoding, msg.header))
                if info_pub is not None:
                    info_pub.publish(camera_info_msg(info, msg.header))
                pub.publish(msg)
                sent += 1
                pacer.wait()
            if not args.loop or not any_frame:
                break
        # print, not the ROS logger: after a signal the context (and /rosout) is gone
        print(f"published {sent} frames on {pub.topic_name}", flush=True)
        return 0 if sent else 1
    except ValueError as exc:
        print(f"error: {exc}")
        return 1
    except (KeyboardInterrupt, ExternalShutdownException):
        return 0
    except Exception:
        if rclpy.ok():
            raise
        return 0  # a signal shut the context down between the check and a publish
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    sys.exit(main())
