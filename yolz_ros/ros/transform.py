"""The 3D output in another frame (parameter target_frame), through tf2.

With target_frame '' (the default) nothing is transformed: points stay in the image's optical
frame, header.frame_id unchanged. With a target frame, each frame's points go through the
transform tf2 holds at the image's stamp (tf2_ros must be installed: on a ROS system it is; the
PyPI wheels this project tests with have no tf2, so that path is not exercised here).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Tuple

import numpy as np


def rotate(q: Tuple[float, float, float, float], v: np.ndarray) -> np.ndarray:
    """Rotate vector v by the unit quaternion q = (x, y, z, w)."""
    x, y, z, w = q
    u = np.array([x, y, z], np.float64)
    v = np.asarray(v, np.float64)
    return v + 2.0 * np.cross(u, np.cross(u, v) + w * v)


def apply_transform(transform, xyz) -> Tuple[float, float, float]:
    """geometry_msgs/Transform applied to a point: R * p + t."""
    r, t = transform.rotation, transform.translation
    p = rotate((r.x, r.y, r.z, r.w), np.asarray(xyz)) + np.array([t.x, t.y, t.z])
    return tuple(float(a) for a in p)


def transform_located(stamped, header, located):
    """(header in the target frame, [(det, Point3D)] moved by a TransformStamped)."""
    from std_msgs.msg import Header
    out = Header(stamp=header.stamp, frame_id=stamped.header.frame_id)
    moved = [(det, replace(p, xyz=apply_transform(stamped.transform, p.xyz)))
             for det, p in located]
    return out, moved


class TargetFrame:
    """Callable (header, located) -> the same in ``target_frame``, for the frame pipeline."""

    def __init__(self, node, target_frame: str, timeout_s: float = 0.05):
        try:
            import tf2_ros
        except ImportError:
            raise RuntimeError(f"target_frame={target_frame!r} needs tf2_ros, which is not "
                               "installed here; leave target_frame empty to publish in the "
                               "camera's optical frame") from None
        from rclpy.duration import Duration
        self.target = target_frame
        self.timeout = Duration(seconds=timeout_s)
        self.buffer = tf2_ros.Buffer()
        self.listener = tf2_ros.TransformListener(self.buffer, node)

    def __call__(self, header, located):
        from rclpy.time import Time
        stamped = self.buffer.lookup_transform(self.target, header.frame_id,
                                               Time.from_msg(header.stamp), self.timeout)
        return transform_located(stamped, header, located)
