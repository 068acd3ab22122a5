"""A reference view cut from a camera frame by a box, a mask, or both (plain numpy).

The box is (x, y, width, height) in frame pixels, as sensor_msgs/RegionOfInterest carries it; a
zero-size box means "the mask's bounding box". A mask (HxW, non-zero = object) becomes the view's
alpha, so the model embeds the object's own pixels; a box alone gives an RGB view, of which the
model uses the central part (draw it tight around the object).
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from yolz_ros.runtime.limits import MIN_VIEW_SIDE

Box = Tuple[int, int, int, int]  # x, y, width, height (pixels)


class CropError(ValueError):
    """A box or mask that cannot give a view; the message says what to fix."""


def mask_box(mask: np.ndarray) -> Box:
    """The bounding box of a mask's non-zero pixels; CropError if it has none."""
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        raise CropError("the mask is empty: mark the object's pixels with non-zero values")
    return int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)


def clip_box(box: Box, width: int, height: int) -> Box:
    """``box`` clipped to a width x height frame; CropError if too little of it is left."""
    x, y, w, h = (int(v) for v in box)
    if w <= 0 or h <= 0:
        raise CropError(f"box {w}x{h} is empty: give its width and height in pixels")
    x0, y0 = max(0, x), max(0, y)
    x1, y1 = min(width, x + w), min(height, y + h)
    if x1 - x0 < MIN_VIEW_SIDE or y1 - y0 < MIN_VIEW_SIDE:
        raise CropError(f"box x={x} y={y} {w}x{h} leaves {max(0, x1 - x0)}x{max(0, y1 - y0)} "
                        f"pixels inside the {width}x{height} frame; at least {MIN_VIEW_SIDE}x"
                        f"{MIN_VIEW_SIDE} are needed")
    return x0, y0, x1 - x0, y1 - y0


def crop_view(rgb: np.ndarray, box: Optional[Box] = None, mask: Optional[np.ndarray] = None
              ) -> Tuple[np.ndarray, Box]:
    """(view, the box used): HxWx3 RGB cut by ``box``, or HxWx4 RGBA with the mask as alpha.

    rgb: HxWx3 uint8 frame; box: (x, y, w, h), None or zero-size = the mask's bounding box;
    mask: HxW, non-zero = object, the frame's size."""
    height, width = rgb.shape[:2]
    if mask is not None and mask.shape[:2] != (height, width):
        raise CropError(f"the mask is {mask.shape[1]}x{mask.shape[0]} but the frame is "
                        f"{width}x{height}: send a mask of the frame's size")
    if box is None or (box[2] == 0 and box[3] == 0):
        if mask is None:
            raise CropError("give a box (x, y, width, height) or a mask of the object")
        box = mask_box(mask)
    x, y, w, h = clip_box(box, width, height)
    view = rgb[y:y + h, x:x + w]
    if mask is None:
        return np.ascontiguousarray(view), (x, y, w, h)
    alpha = np.where(mask[y:y + h, x:x + w] > 0, 255, 0).astype(np.uint8)
    if not alpha.any():
        raise CropError("the mask has no object pixels inside the box")
    return np.ascontiguousarray(np.dstack([view, alpha])), (x, y, w, h)
