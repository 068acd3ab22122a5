"""The overlay image: the frame with the max-over-objects heatmap blended in, and each detection's
box, peak and name drawn. Plain numpy/OpenCV (no ROS)."""
from __future__ import annotations

from typing import Sequence, Tuple

import cv2
import numpy as np

PALETTE = ((255, 64, 64), (64, 200, 255), (255, 220, 0), (0, 230, 118), (255, 64, 255),
           (255, 150, 0), (150, 120, 255), (0, 255, 255))


def color(k: int) -> Tuple[int, int, int]:
    """The RGB colour of object ``k`` (grid order)."""
    return PALETTE[k % len(PALETTE)]


def heat_in_source(probabilities: np.ndarray, mapping, stride: int, size) -> np.ndarray:
    """The max-over-objects probability of every source pixel (float32 HxW in 0..1).

    ``mapping`` is (scale, offset_x, offset_y): source pixel (x, y) lies at model pixel
    (x * scale + offset_x, y * scale + offset_y); ``size`` is the source (height, width)."""
    h, w = size
    heat = probabilities.max(axis=0).astype(np.float32)
    rows, cols = heat.shape
    heat_model = cv2.resize(heat, (cols * stride, rows * stride), interpolation=cv2.INTER_NEAREST)
    scale, ox, oy = mapping
    m = np.float32([[scale, 0, ox], [0, scale, oy]])
    heat_src = cv2.warpAffine(heat_model, m, (w, h),
                              flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP)
    return np.clip(heat_src, 0.0, 1.0)


def render_overlay(rgb: np.ndarray, probabilities: np.ndarray, mapping, stride: int,
                   detections: Sequence = (), alpha: float = 0.5,
                   draw_peaks: bool = True) -> np.ndarray:
    """RGB uint8 overlay of ``rgb`` (HxWx3). ``probabilities`` float32 [K, rows, cols];
    ``detections``: (ObjectDetection-like with name, score, peak_x/y, x/y_min/max, k) pairs.
    A pixel's heat colour is blended in with weight ``alpha * heat``."""
    h, w = rgb.shape[:2]
    out = rgb.astype(np.float32)
    if probabilities.shape[0] > 0 and alpha > 0:
        heat = heat_in_source(probabilities, mapping, stride, (h, w))
        jet = cv2.applyColorMap((heat * 255).astype(np.uint8), cv2.COLORMAP_JET)
        jet = jet[..., ::-1].astype(np.float32)  # OpenCV's colormaps are BGR
        weight = (alpha * heat)[..., None]
        out = out * (1.0 - weight) + jet * weight
    out = np.ascontiguousarray(np.clip(out, 0, 255).astype(np.uint8))
    if draw_peaks and detections:
        thick = max(1, round(max(h, w) / 400))
        font = max(0.4, max(h, w) / 1200)
        for det, k in detections:
            c = color(k)
            p0 = (int(round(det.x_min)), int(round(det.y_min)))
            p1 = (int(round(det.x_max)), int(round(det.y_max)))
            cv2.rectangle(out, p0, p1, c, thick)
            cv2.circle(out, (int(round(det.peak_x)), int(round(det.peak_y))), 2 * thick + 1, c, -1)
            label = f"{det.name} {det.score:.2f}"
            org = (p0[0], max(int(12 * font / 0.4), p0[1] - 4))
            cv2.putText(out, label, org, cv2.FONT_HERSHEY_SIMPLEX, font, (0, 0, 0), thick + 2,
                        cv2.LINE_AA)
            cv2.putText(out, label, org, cv2.FONT_HERSHEY_SIMPLEX, font, c, thick, cv2.LINE_AA)
    return out
