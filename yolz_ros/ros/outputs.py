"""A detection result -> the node's messages: ObjectProbabilities (ours), and
vision_msgs/Detection2DArray and vision_msgs/LabelInfo (the standard ones).

Plain functions over message types; no node, no publishing.
"""
from __future__ import annotations

import array
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np

from yolz_ros.msg import ObjectDetection, ObjectProbabilities


@dataclass(frozen=True)
class Frame:
    """Everything the messages of one processed frame are made of."""
    header: object  # std_msgs/Header of the camera image
    camera: str  # resolved camera topic
    model_id: str
    names: Tuple[str, ...]  # grid order
    probabilities: np.ndarray  # float32 [K, rows, cols]
    mapping: Tuple[float, float, float]  # scale, offset_x, offset_y (source -> model pixels)
    stride: int  # model pixels per cell
    image_size: Tuple[int, int]  # source (width, height)
    detections: Tuple[Tuple[ObjectDetection, int], ...]  # (detection, object index k)
    boxes: Optional[np.ndarray] = None  # float32 [rows, cols, 4] cell boxes, source pixels
    threshold: float = 0.0  # the detection threshold the peaks were decoded with
    passes: int = 0  # network passes the detector made for it (1 + zoom or look_closer tiles)


def object_detections(names: Sequence[str], peaks) -> List[Tuple[ObjectDetection, int]]:
    """Per-object peak lists (Detector.peaks) -> [(ObjectDetection, k)], in object order."""
    out = []
    for k, object_peaks in enumerate(peaks):
        for pk in object_peaks:
            out.append((ObjectDetection(
                name=names[k], score=float(pk.score), peak_x=float(pk.peak_x),
                peak_y=float(pk.peak_y), x_min=float(pk.x_min), y_min=float(pk.y_min),
                x_max=float(pk.x_max), y_max=float(pk.y_max), num_cells=int(pk.num_cells)), k))
    return out


def probabilities_msg(frame: Frame) -> ObjectProbabilities:
    out = ObjectProbabilities()
    out.header = frame.header
    out.camera = frame.camera
    out.model_id = frame.model_id
    out.names = list(frame.names)
    k, rows, cols = frame.probabilities.shape
    out.rows, out.cols = int(rows), int(cols)
    out.cell_width = out.cell_height = float(frame.stride)
    out.scale, out.offset_x, out.offset_y = (float(v) for v in frame.mapping)
    out.image_width, out.image_height = (int(v) for v in frame.image_size)
    out.probabilities = array.array(
        "f", np.ascontiguousarray(frame.probabilities, np.float32).tobytes())
    out.detections = [d for d, _ in frame.detections]
    return out


def detection2d(det: ObjectDetection, header):
    """One ObjectDetection -> vision_msgs/Detection2D: class_id = object name, score = peak
    probability, bbox = the region's box (centre and size, source pixels, axis-aligned)."""
    from vision_msgs.msg import Detection2D, ObjectHypothesisWithPose
    out = Detection2D()
    out.header = header
    hypothesis = ObjectHypothesisWithPose()
    hypothesis.hypothesis.class_id = det.name
    hypothesis.hypothesis.score = float(det.score)
    # The pose is the peak cell's centre in pixels (z = 0): where the object most likely is.
    hypothesis.pose.pose.position.x = float(det.peak_x)
    hypothesis.pose.pose.position.y = float(det.peak_y)
    hypothesis.pose.pose.orientation.w = 1.0
    out.results = [hypothesis]
    out.bbox.center.position.x = (float(det.x_min) + float(det.x_max)) / 2.0
    out.bbox.center.position.y = (float(det.y_min) + float(det.y_max)) / 2.0
    out.bbox.center.theta = 0.0
    out.bbox.size_x = float(det.x_max) - float(det.x_min)
    out.bbox.size_y = float(det.y_max) - float(det.y_min)
    out.id = ""  # no tracking
    return out


def detection2d_array(frame: Frame):
    from vision_msgs.msg import Detection2DArray
    out = Detection2DArray()
    out.header = frame.header
    out.detections = [detection2d(d, frame.header) for d, _ in frame.detections]
    return out


def label_info(names: Sequence[str], threshold: float, stamp=None, frame_id: str = ""):
    """vision_msgs/LabelInfo: class_map = (index in the grid, object name) for every registered
    object; threshold = the detection threshold in use."""
    from vision_msgs.msg import LabelInfo, VisionClass
    out = LabelInfo()
    if stamp is not None:
        out.header.stamp = stamp
    out.header.frame_id = frame_id
    out.class_map = [VisionClass(class_id=i, class_name=n) for i, n in enumerate(names)]
    out.threshold = float(threshold)
    return out


def detection3d_array(header, located):
    """vision_msgs/Detection3DArray from [(ObjectDetection, Point3D)]: class_id = object name,
    score = peak probability, pose and bbox centre = the 3D point (metres, header's frame),
    bbox size = the extent of the visible surface points; orientation identity (unknown)."""
    from vision_msgs.msg import Detection3D, Detection3DArray, ObjectHypothesisWithPose
    out = Detection3DArray()
    out.header = header
    for det, point in located:
        d = Detection3D()
        d.header = header
        hypothesis = ObjectHypothesisWithPose()
        hypothesis.hypothesis.class_id = det.name
        hypothesis.hypothesis.score = float(det.score)
        x, y, z = point.xyz
        for pose in (hypothesis.pose.pose, d.bbox.center):
            pose.position.x, pose.position.y, pose.position.z = float(x), float(y), float(z)
            pose.orientation.w = 1.0
        d.results = [hypothesis]
        d.bbox.size.x, d.bbox.size.y, d.bbox.size.z = (float(v) for v in point.size)
        d.id = ""
        out.detections.append(d)
    return out


def markers(header, located, lifetime_s: float = 0.5):
    """visualization_msgs/MarkerArray for rviz: a sphere at each 3D point and its name above it;
    the first marker clears the previous frame's."""
    from builtin_interfaces.msg import Duration
    from visualization_msgs.msg import Marker, MarkerArray
    clear = Marker(action=Marker.DELETEALL)
    clear.header = header
    out = MarkerArray(markers=[clear])
    life = Duration(sec=int(lifetime_s), nanosec=int((lifetime_s % 1) * 1e9))
    for i, (det, point) in enumerate(located):
        x, y, z = point.xyz
        for kind in (Marker.SPHERE, Marker.TEXT_VIEW_FACING):
            m = Marker(ns="yolz", id=2 * i + (kind == Marker.TEXT_VIEW_FACING), type=kind,
                       action=Marker.ADD, lifetime=life)
            m.header = header
            m.pose.position.x, m.pose.position.y, m.pose.position.z = x, y, z
            m.pose.orientation.w = 1.0
            m.color.r, m.color.g, m.color.b, m.color.a = 1.0, 0.3, 0.1, 0.9
            if kind == Marker.SPHERE:
                m.scale.x = m.scale.y = m.scale.z = max(0.02, min(0.3, max(point.size[:2])))
            else:
                m.pose.position.y -= 0.05 + 0.5 * point.size[1]  # above (optical y is down)
                m.scale.z = 0.05
                m.text = f"{det.name} {det.score:.2f} ({z:.2f} m)"
            out.markers.append(m)
    return out
