"""The object in a reference view that has no mask: a phone photo, or a box cut from the camera.

Such a view carries its background, and the background's tokens light up background in the scene
(measured on the independent benchmark: phone-photo views cell AP 0.487, the same views with
alpha 0.769). The user framed the object, so it is roughly in the middle: OpenCV's GrabCut,
started from the central rectangle (a `margin` of the view on every side is background), splits
object from background by colour, and its mask becomes the view's alpha (yolz-model/2
object_tokens.no_alpha = "grabcut"). Where GrabCut finds no plausible object (almost nothing, or
almost the whole rectangle) the caller keeps the centre rule (object_tokens.token_mask).

It runs on a copy at most `work_side` pixels on its longer side (a few ms per view) and the mask
is scaled back to the view's size.
"""
from __future__ import annotations

from typing import Optional

import cv2
import numpy as np

MARGIN = 0.1  # of each side: background for GrabCut's initial rectangle
WORK_SIDE = 96  # GrabCut runs at most at this size (longer side)
ITERATIONS = 3
MIN_SHARE, MAX_SHARE = 0.05, 0.95  # of the rectangle: outside this, no plausible object


def grabcut(rgb: np.ndarray, mask: np.ndarray, rect, iterations: int) -> Optional[np.ndarray]:
    """OpenCV's GrabCut on an RGB image, seeded for determinism: from ``rect`` (x, y, w, h), or
    with ``rect`` None from ``mask``'s GC_* labels (updated in place); the foreground as uint8
    0/1, or None where GrabCut cannot fit its colour models (e.g. one flat colour)."""
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(0)
    try:
        cv2.grabCut(np.ascontiguousarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)), mask, rect,
                    bgd, fgd, iterations,
                    cv2.GC_INIT_WITH_MASK if rect is None else cv2.GC_INIT_WITH_RECT)
    except cv2.error:
        return None
    return ((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)).astype(np.uint8)


def grabcut_alpha(rgb: np.ndarray, margin: float = MARGIN, work_side: int = WORK_SIDE,
                  iterations: int = ITERATIONS) -> Optional[np.ndarray]:
    """uint8 alpha [H, W] (255 object, 0 background) of an RGB view without a mask, or None when
    GrabCut finds no plausible object. Deterministic (OpenCV's RNG is seeded)."""
    h, w = rgb.shape[:2]
    scale = min(1.0, work_side / max(h, w))
    small = rgb if scale == 1.0 else cv2.resize(
        rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    sh, sw = small.shape[:2]
    x0, y0 = int(round(sw * margin)), int(round(sh * margin))
    rect = (x0, y0, sw - 2 * x0, sh - 2 * y0)
    if rect[2] < 4 or rect[3] < 4:
        return None  # too small to split
    mask = np.zeros((sh, sw), np.uint8)
    fg = grabcut(small, mask, rect, iterations)
    if fg is None:
        return None
    share = fg.sum() / float(rect[2] * rect[3])
    if not MIN_SHARE <= share <= MAX_SHARE:
        return None
    return cv2.resize(fg * 255, (w, h), interpolation=cv2.INTER_NEAREST)


def box_mask(frame: np.ndarray, box, work_side: int = 2 * WORK_SIDE,
             iterations: int = ITERATIONS) -> Optional[np.ndarray]:
    """uint8 mask [H, W] of the frame (255 object) for a box (x, y, w, h) drawn around an object
    on it: GrabCut with the box as its rectangle (outside it is background, which the frame
    around the box shows), run on the box grown by half its size; None when it finds no
    plausible object. A box drawn tightly leaves no background inside it, so cutting the box out
    first and running grabcut_alpha on the crop would lose the object's edges."""
    h, w = frame.shape[:2]
    x, y, bw, bh = (int(v) for v in box)
    gx, gy = bw // 2, bh // 2
    rx0, ry0 = max(0, x - gx), max(0, y - gy)
    rx1, ry1 = min(w, x + bw + gx), min(h, y + bh + gy)
    region = frame[ry0:ry1, rx0:rx1]
    scale = min(1.0, work_side / max(region.shape[:2]))
    small = region if scale == 1.0 else cv2.resize(
        region, (max(1, round(region.shape[1] * scale)), max(1, round(region.shape[0] * scale))),
        interpolation=cv2.INTER_AREA)
    rect = (int((x - rx0) * scale), int((y - ry0) * scale), max(1, int(bw * scale)),
            max(1, int(bh * scale)))
    if rect[2] < 4 or rect[3] < 4:
        return None
    mask = np.zeros(small.shape[:2], np.uint8)
    fg = grabcut(small, mask, rect, iterations)
    if fg is None:
        return None
    share = fg.sum() / float(rect[2] * rect[3])
    if not MIN_SHARE <= share <= MAX_SHARE:
        return None
    out = np.zeros((h, w), np.uint8)
    out[ry0:ry1, rx0:rx1] = cv2.resize(fg * 255, (region.shape[1], region.shape[0]),
                                       interpolation=cv2.INTER_NEAREST)
    return out


def view_alpha(rgb: np.ndarray, alpha: Optional[np.ndarray], rule: str) -> Optional[np.ndarray]:
    """The alpha a view is embedded with: its own, else (rule 'grabcut') GrabCut's, else None
    (the centre rule applies). Shared by the runtime and training, so both see the same view."""
    if alpha is not None or rule != "grabcut":
        return alpha
    return grabcut_alpha(rgb)
