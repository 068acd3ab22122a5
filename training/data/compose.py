"""On-the-fly composite scenes: RGBA cut-outs pasted onto real or procedural backgrounds.

Each cut-out gets a random scale (its longer side 5%-50% of the image's shorter side, log-uniform
so small objects are common), rotation, optional perspective warp (for single-photo stamps),
colour jitter, and a position that sometimes overlaps an earlier paste. Pastes are alpha-blended
in order, so later ones occlude earlier ones; the returned instance map holds, per pixel, the
index of the cut-out that is VISIBLE there (alpha >= 128 of the last paste covering it), -1 for
background. Blur, colour jitter and sensor noise are applied to the whole image last (they do not
move pixels, so the instance map stays exact).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

ALPHA_VISIBLE = 128  # same rule as the runtime's view preprocessing: alpha < 128 is background


@dataclass
class ComposeConfig:
    min_scale: float = 0.05      # object's longer side / image's shorter side
    max_scale: float = 0.50
    max_rotation: float = 180.0  # degrees
    overlap_prob: float = 0.3    # chance to place a cut-out over an earlier one (occlusion)
    object_jitter: float = 0.15  # per-object brightness/contrast jitter amplitude
    blur_prob: float = 0.3
    noise_max: float = 8.0       # max std of Gaussian sensor noise (0 = off)
    global_jitter: float = 0.1


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


def transform_cutout(rgba: np.ndarray, side: int, angle: float) -> np.ndarray:
    """Scale the cut-out so its longer side is `side` px, then rotate by `angle` (canvas grows)."""
    rgba = crop_to_alpha(rgba)
    scale = side / max(rgba.shape[:2])
    w, h = max(1, round(rgba.shape[1] * scale)), max(1, round(rgba.shape[0] * scale))
    rgba = cv2.resize(rgba, (w, h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    if angle:
        m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
        cos, sin = abs(m[0, 0]), abs(m[0, 1])
        nw, nh = int(h * sin + w * cos) + 1, int(h * cos + w * sin) + 1
        m[0, 2] += nw / 2 - w / 2
        m[1, 2] += nh / 2 - h / 2
        rgba = cv2.warpAffine(rgba, m, (nw, nh), flags=cv2.INTER_LINEAR, borderValue=0)
    return rgba


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


def compose_scene(background: np.ndarray, cutouts: list[np.ndarray], rng: np.random.Generator,
                  cfg: ComposeConfig | None = None, warp: list[bool] | None = None):
    """Paste cutouts (RGBA uint8, in order: later ones on top) onto background (RGB uint8 HxWx3).

    warp[i] = True applies a random perspective warp to cutout i (flat photos: a new viewpoint).
    Returns (image uint8 [H, W, 3], instances int16 [H, W] with the cut-out index or -1,
    painted int64 [len(cutouts)]: each cut-out's pixels inside the image before later ones covered
    it, so (instances == i).sum() / painted[i] is the fraction of it left visible).
    """
    cfg = cfg or ComposeConfig()
    h, w = background.shape[:2]
    image = background.astype(np.float32)
    instances = np.full((h, w), -1, np.int16)
    centres: list[tuple[int, int]] = []
    painted = np.zeros(len(cutouts), np.int64)
    short = min(h, w)
    for i, cut in enumerate(cutouts):
        if warp is not None and warp[i]:
            cut = perspective_warp(cut, rng)
        side = short * np.exp(rng.uniform(np.log(cfg.min_scale), np.log(cfg.max_scale)))
        cut = transform_cutout(cut, max(2, round(side)), float(rng.uniform(-1, 1) * cfg.max_rotation))
        cut = cut.copy()
        cut[:, :, :3] = color_jitter(cut[:, :, :3], rng, cfg.object_jitter).astype(np.uint8)
        if centres and rng.random() < cfg.overlap_prob:
            cx, cy = centres[rng.integers(len(centres))]
            cx += int(rng.normal(0, cut.shape[1] / 3))
            cy += int(rng.normal(0, cut.shape[0] / 3))
        else:  # centre anywhere in the image: objects may be cut by the border
            cx, cy = int(rng.integers(w)), int(rng.integers(h))
        centres.append((cx, cy))
        painted[i] = paste(image, instances, cut, i, cx - cut.shape[1] // 2, cy - cut.shape[0] // 2)
    # Photometric effects on the whole image: they never move pixels, so instances stay exact.
    image = color_jitter(image, rng, cfg.global_jitter)
    if rng.random() < cfg.blur_prob:
        image = cv2.GaussianBlur(image, (0, 0), float(rng.uniform(0.5, 1.5)))
    if cfg.noise_max > 0:
        image = image + rng.normal(0, rng.uniform(0, cfg.noise_max), image.shape).astype(np.float32)
    return np.clip(image + 0.5, 0, 255).astype(np.uint8), instances, painted
