"""The node's cameras: topic -> name-safe key, output namespace, and the per-camera record
(pending frame, counters, publishers, depth input, transport health)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import List

from yolz_ros.ros.transport_health import TransportHealth


def camera_key(topic: str) -> str:
    """A ROS-name-safe token for a camera topic: '/front/image_raw' -> 'front_image_raw'."""
    key = re.sub(r"[^A-Za-z0-9_]+", "_", topic).strip("_")
    key = re.sub(r"_+", "_", key) or "camera"
    return key if not key[0].isdigit() else "camera_" + key


def camera_keys(topics) -> List[str]:
    """Distinct keys for the camera topics (a clash gets '_' appended)."""
    keys: List[str] = []
    for topic in topics:
        key = camera_key(topic)
        while key in keys:
            key += "_"
        keys.append(key)
    return keys


def output_prefix(key: str, num_cameras: int) -> str:
    """'~/' with one camera, '~/<camera>/' with several."""
    return "~/" if num_cameras == 1 else f"~/{key}/"


@dataclass
class Camera:
    """Per-camera state: the newest unprocessed frame, counters and the output publishers."""
    topic: str
    key: str
    resolved: str = ""
    latest: object = None
    received: int = 0
    dropped: int = 0
    processed: int = 0
    rejected: int = 0
    overlays: int = 0
    subscription: object = None
    pub_probabilities: object = None
    pub_detections: object = None
    pub_overlay: object = None
    newest: object = None  # (message, arrival time.monotonic()) of the newest sound frame
    depth: object = None  # DepthStore when use_depth, else None
    depth_topic: str = ""
    info_topic: str = ""
    pub_detections_3d: object = None
    pub_markers: object = None
    depth_subscriptions: list = field(default_factory=list)
    located: int = 0  # detections given a 3D point
    unlocated: int = 0  # detections without one (no depth, no camera_info, no valid depth)
    skipped_3d: int = 0  # processed frames replaced by a newer one before their 3D step ran
    merged_3d: int = 0  # detections dropped as a second detection of one object's surface
    health: TransportHealth = field(default_factory=TransportHealth)  # stamps as they arrive


def find_camera(cameras: List[Camera], name: str) -> Camera:
    """The camera called ``name`` (its topic as configured, as resolved, or its key); '' = the
    only camera. LookupError saying which cameras exist."""
    name = name.strip()
    if not name:
        if len(cameras) == 1:
            return cameras[0]
        raise LookupError("this node has several cameras: name one of "
                          + ", ".join(c.resolved or c.topic for c in cameras))
    for cam in cameras:
        if name in (cam.topic, cam.resolved, cam.key, cam.resolved.rstrip("/")):
            return cam
    raise LookupError(f"no camera {name!r}; this node's cameras: "
                      + ", ".join(c.resolved or c.topic for c in cameras))


