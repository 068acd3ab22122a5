"""Depth -> 3D: where a detected object is in the camera's optical frame.

Plain Python (numpy; message objects are read by attribute). Reading depth images from their
topics and matching them to frames is yolz_ros.ros.depth_input.

Assumptions (docs/robot_workflow.md, 3D from depth): the depth image is *registered to the colour
image* (same size, same optical frame, pixel (u, v) of one is pixel (u, v) of the other), as
RealSense `aligned_depth_to_color`, Azure Kinect `depth_to_rgb` or ZED depth publish it. Units come
from the encoding: 16UC1 = millimetres, 32FC1 = metres; 0, NaN, inf and negative values mean "no
depth". The optical frame is x right, y down, z forward (REP 103); the point is in metres.

A detection's 3D point is the centre of the object's visible surface: the detection's strongest
cells seed a segmentation of the depth image (reference depth, depth band, minus the support
plane and depth jumps, the connected area; see ``locate``), and the point is the mean of that
surface's points back-projected through the camera matrix K. The detection grid is coarse
(16 px cells); the depth segmentation gives the object's own pixels, so the point does not move
with how well the cells happen to cover the object. The search starts from the object's whole
region (the connected cells above the hysteresis threshold around the peak, as decoding joins
them) and its window grows while the surface runs into the window's edge: a detection whose
strongest evidence is one cell at the object's end still gets the whole surface (a
fixed window around such a cell cuts a 155 px object: 4.1 cm off its surface's centre).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import cv2
import numpy as np

from yolz_ros.runtime.decode import LOW_FRACTION, region_mask

BAND_MIN_M = 0.05  # surface candidates lie within this of the reference depth, or within ...
WINDOW_GROW = 1.0  # ... the region's size; the search window is the region grown by its size,
WINDOW_MIN_CELLS = 4  # and by at least this many cells; while the surface reaches the window's
WINDOW_TRIES = 4  # edge, the window is the surface grown the same way (at most this often),
WINDOW_REACH_M = 1.0  # reaching at most this far (metres at the object's depth) from the region
PLANE_TOL_M = 0.012  # a pixel this close to the support plane belongs to the plane
PLANE_MIN_SHARE = 0.2  # a plane counts when it holds this share of the window's points
PLANE_SAMPLES = 3000  # points the plane is fitted on (a random subset; deterministic seed)
PLANE_ITERATIONS = 64
EDGE_M = 0.01  # neighbours whose depths differ by more than EDGE_M + 1 % of the range are on
#                different surfaces
MIN_SURFACE_PIXELS = 20  # fewer valid pixels than this on the surface: no 3D point


class DepthError(ValueError):
    """Depth or camera_info that cannot be used; the message says what is wrong."""


@dataclass(frozen=True)
class Intrinsics:
    """The pinhole part of sensor_msgs/CameraInfo: K = [fx 0 cx; 0 fy cy; 0 0 1] for an image
    of width x height pixels (pixel (u, v) integer = the centre of that pixel)."""
    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    @classmethod
    def from_camera_info(cls, msg) -> "Intrinsics":
        k = [float(v) for v in msg.k]
        if len(k) != 9 or not all(np.isfinite(k)) or k[0] <= 0 or k[4] <= 0:
            raise DepthError(f"camera_info has no usable camera matrix K (fx={k[0] if k else 0}, "
                             f"fy={k[4] if len(k) > 4 else 0}): is the camera calibrated?")
        if msg.width <= 0 or msg.height <= 0:
            raise DepthError(f"camera_info size {msg.width}x{msg.height} is empty")
        return cls(k[0], k[4], k[2], k[5], int(msg.width), int(msg.height))

    def check_image(self, width: int, height: int, what: str) -> None:
        if (width, height) != (self.width, self.height):
            raise DepthError(f"camera_info is for {self.width}x{self.height} images but the "
                             f"{what} is {width}x{height}: publish the camera_info of the colour "
                             "image the depth is registered to")


def parse_camera_info(text: str) -> dict:
    """A ROS camera calibration YAML -> {width, height, distortion_model, d, k, r, p} (lists of
    floats). Raises ValueError saying what is missing or malformed."""
    import yaml
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"not valid YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise ValueError("not a camera calibration YAML (expected a mapping)")

    def matrix(key, size, default=None):
        entry = doc.get(key)
        if entry is None and default is not None:
            return default
        data = entry.get("data") if isinstance(entry, dict) else None
        if not isinstance(data, list) or (size and len(data) != size):
            raise ValueError(f"{key}.data must be a list of {size or 'some'} numbers")
        try:
            return [float(x) for x in data]
        except (TypeError, ValueError):
            raise ValueError(f"{key}.data must hold numbers") from None

    try:
        width, height = int(doc["image_width"]), int(doc["image_height"])
    except (KeyError, TypeError, ValueError):
        raise ValueError("image_width and image_height (integers) are required") from None
    k = matrix("camera_matrix", 9)
    return {"width": width, "height": height,
            "distortion_model": str(doc.get("distortion_model", "plumb_bob")),
            "d": matrix("distortion_coefficients", 0, []),
            "k": k, "r": matrix("rectification_matrix", 9, [1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0]),
            "p": matrix("projection_matrix", 12, k[:3] + [0.0] + k[3:6] + [0.0] + k[6:] + [0.0])}


MERGE_SLACK_M = 0.01  # two points within half the larger extent + this are one object
MERGE_OVERLAP = 0.5  # two surfaces whose boxes share this much of the smaller one are one


@dataclass(frozen=True)
class Point3D:
    xyz: Tuple[float, float, float]  # metres, optical frame
    size: Tuple[float, float, float]  # 5-95 % extent of the surface points, metres
    pixels: int  # surface pixels that made it
    box: Tuple[int, int, int, int] = (0, 0, 0, 0)  # the surface's pixels: u0, v0, u1, v1 (excl.)


def region_cells(grid: np.ndarray, peak_rc: Tuple[int, int], threshold: float,
                 low_fraction: float = LOW_FRACTION) -> np.ndarray:
    """Bool [rows, cols]: the object's whole region, the 4-connected cells >= the hysteresis
    threshold (``low_fraction`` x threshold; 1 = the threshold) that hold the peak cell."""
    return region_mask(grid, peak_rc, threshold, low_fraction)


def same_object(a: Point3D, b: Point3D) -> bool:
    """Two located detections are one object: each point lies within the other's extent (half
    the larger size on every axis, plus MERGE_SLACK_M), or their surfaces' pixel boxes overlap
    by MERGE_OVERLAP of the smaller one at one depth (within the larger depth extent +
    BAND_MIN_M: not an object in front of another)."""
    d = np.abs(np.subtract(a.xyz, b.xyz))
    if np.all(d <= np.maximum(a.size, b.size) / 2 + MERGE_SLACK_M):
        return True
    if d[2] > max(a.size[2], b.size[2]) + BAND_MIN_M:
        return False
    iw = min(a.box[2], b.box[2]) - max(a.box[0], b.box[0])
    ih = min(a.box[3], b.box[3]) - max(a.box[1], b.box[1])
    if iw <= 0 or ih <= 0:
        return False
    smaller = min((a.box[2] - a.box[0]) * (a.box[3] - a.box[1]),
                  (b.box[2] - b.box[0]) * (b.box[3] - b.box[1]))
    return smaller > 0 and iw * ih >= MERGE_OVERLAP * smaller


def merge_located(items) -> list:
    """Indices of ``items`` [(object index k, Point3D)] to keep: in order (strongest first per
    object), a detection of the same object as a kept one (``same_object``) is dropped."""
    kept = []
    for i, (k, point) in enumerate(items):
        if not any(items[j][0] == k and same_object(items[j][1], point) for j in kept):
            kept.append(i)
    return kept


def _pixels_of(cells: np.ndarray, boxes: np.ndarray, shape) -> np.ndarray:
    """Bool HxW: the source pixels of the given cells (boxes [rows, cols, 4] source pixels)."""
    out = np.zeros(shape, bool)
    h, w = shape
    for r, c in zip(*np.nonzero(cells)):
        x0, y0, x1, y1 = boxes[r, c]
        xa, xb = int(np.floor(x0)), min(w, int(np.ceil(x1)))
        ya, yb = int(np.floor(y0)), min(h, int(np.ceil(y1)))
        out[max(0, ya):yb, max(0, xa):xb] = True
    return out


def _window(y0: int, y1: int, x0: int, x1: int, shape, cell: float,
            limit=None) -> Tuple[slice, slice]:
    """The search window around pixels y0..y1, x0..x1 (inclusive): that box grown on every side
    by its own size (at least WINDOW_MIN_CELLS cells), clipped to an image of ``shape`` and to
    ``limit`` (y0, y1, x0, x1) when given. The object can reach past what found it."""
    h, w = shape
    gx = int(max(WINDOW_MIN_CELLS * cell, WINDOW_GROW * (x1 - x0 + 1)))
    gy = int(max(WINDOW_MIN_CELLS * cell, WINDOW_GROW * (y1 - y0 + 1)))
    ly0, ly1, lx0, lx1 = limit if limit is not None else (0, h - 1, 0, w - 1)
    return (slice(max(0, ly0, y0 - gy), min(h, ly1 + 1, y1 + gy + 1)),
            slice(max(0, lx0, x0 - gx), min(w, lx1 + 1, x1 + gx + 1)))


def _back_project(depth: np.ndarray, intrinsics: Intrinsics, u0: int, v0: int) -> np.ndarray:
    """[h, w, 3] optical-frame points of a depth crop whose top-left pixel is (u0, v0)."""
    h, w = depth.shape
    v, u = np.mgrid[v0:v0 + h, u0:u0 + w]
    z = np.where(np.isfinite(depth), depth, 0.0).astype(np.float64)
    return np.stack([(u - intrinsics.cx) * z / intrinsics.fx,
                     (v - intrinsics.cy) * z / intrinsics.fy, z], axis=-1)


def _plane(points: np.ndarray, rng: np.random.Generator):
    """RANSAC: (unit normal, offset, inlier count) of the plane through most ``points``."""
    best, best_n = None, 0
    for _ in range(PLANE_ITERATIONS):
        a, b, c = points[rng.choice(len(points), 3, replace=False)]
        normal = np.cross(b - a, c - a)
        norm = np.linalg.norm(normal)
        if norm < 1e-12:
            continue
        normal /= norm
        offset = -float(normal @ a)
        n = int((np.abs(points @ normal + offset) < PLANE_TOL_M).sum())
        if n > best_n:
            best, best_n = (normal, offset), n
    return best, best_n


def support_plane(points: np.ndarray, outside_core: np.ndarray, core: np.ndarray):
    """Bool mask of ``points`` [h, w, 3] on the surface the object stands on or leans against:
    the largest plane among the points outside the core (valid ones), unless the core lies on
    it (then it is the object's own face, and the next largest plane is tried once)."""
    rng = np.random.default_rng(0)
    sample = points[outside_core]
    for _ in range(2):
        if len(sample) < 3 * 10:
            break
        fit = sample if len(sample) <= PLANE_SAMPLES else \
            sample[rng.choice(len(sample), PLANE_SAMPLES, replace=False)]
        plane, n = _plane(fit, rng)
        if plane is None or n < PLANE_MIN_SHARE * len(fit):
            break
        normal, offset = plane
        on = np.abs(points @ normal + offset) < PLANE_TOL_M
        if not core.any() or on[core].mean() < 0.5:
            return on
        sample = sample[np.abs(sample @ normal + offset) >= PLANE_TOL_M]
    return np.zeros(points.shape[:2], bool)


def depth_edges(depth: np.ndarray, z_ref: float) -> np.ndarray:
    """Bool mask of pixels next to a depth jump (two valid neighbours on different surfaces)."""
    jump = EDGE_M + 0.01 * z_ref
    out = np.zeros(depth.shape, bool)
    with np.errstate(invalid="ignore"):
        dx = np.abs(np.diff(depth, axis=1)) > jump  # NaN compares False: holes are no edges
        dy = np.abs(np.diff(depth, axis=0)) > jump
    out[:, 1:] |= dx
    out[:, :-1] |= dx
    out[1:, :] |= dy
    out[:-1, :] |= dy
    return out


def locate(depth_m: np.ndarray, intrinsics: Intrinsics, grid: np.ndarray, boxes: np.ndarray,
           peak_rc: Tuple[int, int], threshold: float,
           low_fraction: float = LOW_FRACTION) -> Tuple[Optional[Point3D], str]:
    """The 3D point of one detection, or (None, why not): the centre of the visible surface of
    the object, segmented in the depth image from the detection's strongest cells.

    1. reference depth: the median valid depth of the peak cell (where the cells straddle two
       objects, the one the peak is on), else of the region's strongest cells (the upper half
       of its scores);
    2. the region is the object's whole region: the connected cells >= ``low_fraction`` x
       threshold around the peak (decode.region_mask); in a window around it, candidates are
       valid pixels within max(5 cm, the region's size in metres) of the reference, minus the
       support plane (the table or wall the object touches, RANSAC) and minus pixels at depth
       jumps;
    3. the surface is the connected candidate area that holds most of the strongest cells; while
       it runs into the window's edge (not the image's), the window grows around it (up to
       WINDOW_TRIES times, at most WINDOW_REACH_M from the region) and step 2-3 run again; the
       back-projected points' mean is the point, their 5-95 % extent the size.

    depth_m: float32 HxW metres (NaN = none), registered to the colour image; grid: the object's
    probabilities [rows, cols]; boxes: cell boxes [rows, cols, 4] in source pixels; peak_rc: the
    peak cell; threshold: the detection threshold."""
    region = region_cells(grid, peak_rc, threshold, low_fraction)
    score = float(grid[peak_rc])
    core = region & (grid >= threshold + 0.5 * (score - threshold))
    core[peak_rc] = True
    core_px = _pixels_of(core, boxes, depth_m.shape)
    peak = np.zeros_like(core)
    peak[peak_rc] = True
    z_ref = None
    for cells in (peak, core):  # the peak cell's depth, else the strongest cells'
        values = depth_m[_pixels_of(cells, boxes, depth_m.shape)]
        values = values[np.isfinite(values)]
        if values.size:
            z_ref = float(np.median(values))
            break
    if z_ref is None:
        return None, "no valid depth at the detection's peak cells (all 0 or NaN)"

    region_px = _pixels_of(region, boxes, depth_m.shape)
    if not region_px.any():
        return None, "the detection region covers no pixel of the depth image"
    cell = float(np.max(boxes[..., 2] - boxes[..., 0]))  # source pixels per cell (not padding)
    ys, xs = np.nonzero(region_px)
    # the depth band from the cells over the threshold (the weaker cells of the whole region
    # can reach a neighbour: a wider band joins its surface to the object's)
    strong_px = _pixels_of(region & (grid >= threshold), boxes, depth_m.shape)
    sy, sx = np.nonzero(strong_px) if strong_px.any() else (ys, xs)
    size_px = max(np.ptp(sy), np.ptp(sx)) + 1
    band = max(BAND_MIN_M, size_px * z_ref / intrinsics.fx)
    reach_x = int(WINDOW_REACH_M * intrinsics.fx / z_ref)
    reach_y = int(WINDOW_REACH_M * intrinsics.fy / z_ref)
    limit = (ys.min() - reach_y, ys.max() + reach_y, xs.min() - reach_x, xs.max() + reach_x)
    h, w = depth_m.shape
    rows, cols = _window(ys.min(), ys.max(), xs.min(), xs.max(), depth_m.shape, cell)
    for attempt in range(WINDOW_TRIES):
        found, why = _surface(depth_m, intrinsics, core_px, rows, cols, z_ref, band)
        if found is None:
            return None, why
        surface, points = found
        sy, sx = np.nonzero(surface)
        cut = ((sy.min() == 0 and rows.start > max(0, limit[0]))
               or (sy.max() == surface.shape[0] - 1 and rows.stop < min(h, limit[1] + 1))
               or (sx.min() == 0 and cols.start > max(0, limit[2]))
               or (sx.max() == surface.shape[1] - 1 and cols.stop < min(w, limit[3] + 1)))
        if not cut or attempt == WINDOW_TRIES - 1:
            break
        grown = _window(rows.start + sy.min(), rows.start + sy.max(), cols.start + sx.min(),
                        cols.start + sx.max(), depth_m.shape, cell, limit)
        rows = slice(min(rows.start, grown[0].start), max(rows.stop, grown[0].stop))
        cols = slice(min(cols.start, grown[1].start), max(cols.stop, grown[1].stop))
    if surface.sum() < MIN_SURFACE_PIXELS:
        return None, (f"only {int(surface.sum())} pixels with valid depth on the object's "
                      "surface")
    pts = points[surface]
    lo, hi = np.percentile(pts, [5, 95], axis=0)
    box = (int(cols.start + sx.min()), int(rows.start + sy.min()), int(cols.start + sx.max() + 1),
           int(rows.start + sy.max() + 1))
    return Point3D(tuple(float(a) for a in pts.mean(axis=0)), tuple(float(a) for a in hi - lo),
                   int(surface.sum()), box), ""


def _surface(depth_m: np.ndarray, intrinsics: Intrinsics, core_px: np.ndarray, rows: slice,
             cols: slice, z_ref: float, band: float):
    """((surface mask, points) in the window rows x cols, "") or (None, why not): the connected
    area of candidates (``locate`` step 2) that holds most of the core's pixels."""
    depth = depth_m[rows, cols]
    core_w = core_px[rows, cols]
    valid = np.isfinite(depth)
    points = _back_project(depth, intrinsics, cols.start, rows.start)
    with np.errstate(invalid="ignore"):
        candidates = valid & (np.abs(depth - z_ref) <= band)
    candidates &= ~support_plane(points, valid & ~core_w, core_w & valid)
    candidates &= ~depth_edges(depth, z_ref)
    _, labels = cv2.connectedComponents(candidates.astype(np.uint8), connectivity=4)
    seeds = labels[core_w & candidates]
    seeds = seeds[seeds > 0]
    if seeds.size == 0:
        return None, (f"no surface near {z_ref:.3f} m at the detection's peak cells (only "
                      "the support plane or depth edges there)")
    return (labels == np.bincount(seeds).argmax(), points), ""
