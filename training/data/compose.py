"""Cut-out helpers for pasting objects into scenes (training/data/realbench.py).

Pastes are alpha-blended in order, so later ones occlude earlier ones; the instance map holds, per
pixel, the label of the cut-out that is VISIBLE there (alpha >= 128 of the last paste covering it).
"""
from __future__ import annotations

import cv2
import numpy as np

ALPHA_VISIBLE = 128  # same rule as the runtime's view preprocessing: alpha < 128 is background


def perspective_warp(rgba: np.ndarray, rng: np.random.Generator, strength: float = 0.2) -> np.ndarray:
    """A random homography of the cut-out (a different viewpoint of a flat photo), re-cropped."""
    h, w = rgba.shape[:2]
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    dst = src + rng.uniform(-strength, strength, (4, 2)).astype(np.float32) * np.float32([w, h])
    dst -= dst.min(axis=0)
    out_w, out_h = int(np.ceil(dst[:, 0].max())) + 1, int(np.ceil(dst[:, 1].max())) + 1
    m = cv2.getPerspectiveTransform(src, dst)
    warped = cv2.warpPerspective(rgba, m, (out_w, out_h), flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return crop_to_alpha(warped)


def crop_to_alpha(rgba: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(rgba[:, :, 3] >= ALPHA_VISIBLE)
    if len(ys) == 0:
        return rgba
    return rgba[ys.min():ys.max() + 1, xs.min():xs.max() + 1]


def color_jitter(rgb: np.ndarray, rng: np.random.Generator, amount: float) -> np.ndarray:
    """Brightness, contrast, per-channel gain and saturation jitter on float RGB in [0, 255]."""
    if amount <= 0:
        return rgb
    out = rgb.astype(np.float32)
    mean = out.mean()
    out = (out - mean) * rng.uniform(1 - amount, 1 + amount) + mean * rng.uniform(1 - amount, 1 + amount)
    out *= rng.uniform(1 - amount / 2, 1 + amount / 2, 3).astype(np.float32)
    gray = out.mean(axis=-1, keepdims=True)
    out = gray + (out - gray) * rng.uniform(1 - 2 * amount, 1 + 2 * amount)
    return np.clip(out, 0, 255)


def paste(image: np.ndarray, instances: np.ndarray, rgba: np.ndarray, label: int, x: int, y: int) -> int:
    """Alpha-blend rgba into image (float32 HxWx3) with its top-left at (x, y), clipped to the
    image; pixels where its alpha >= 128 take `label` in instances (occluding earlier labels).
    Returns how many pixels it labelled: its unoccluded area inside the image."""
    h, w = image.shape[:2]
    ch, cw = rgba.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + cw, w), min(y + ch, h)
    if x0 >= x1 or y0 >= y1:
        return 0
    part = rgba[y0 - y:y1 - y, x0 - x:x1 - x]
    alpha = part[:, :, 3:].astype(np.float32) / 255.0
    region = image[y0:y1, x0:x1]
    region[...] = region * (1 - alpha) + part[:, :, :3].astype(np.float32) * alpha
    opaque = part[:, :, 3] >= ALPHA_VISIBLE
    instances[y0:y1, x0:x1][opaque] = label
    return int(opaque.sum())
