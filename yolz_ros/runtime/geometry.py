"""Letterbox and the cell <-> source-pixel mapping, exactly as docs/model_folder.md defines them."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import cv2
import numpy as np

ALPHA_VISIBLE = 128  # alpha < 128 is background, the same rule as training's composites


@dataclass(frozen=True)
class Letterbox:
    """How a source image sits in the model input: model = source * scale + offset."""
    scale: float
    offset_x: int
    offset_y: int
    src_width: int
    src_height: int
    dst_width: int
    dst_height: int

    @classmethod
    def fit(cls, src_size: Tuple[int, int], dst_size: Tuple[int, int]) -> "Letterbox":
        """The letterbox of a (h, w) source into a (H, W) model input."""
        (h, w), (dh, dw) = src_size, dst_size
        scale = min(dw / w, dh / h)
        rw, rh = max(1, round(w * scale)), max(1, round(h * scale))
        return cls(scale, (dw - rw) // 2, (dh - rh) // 2, w, h, dw, dh)

    @property
    def resized_width(self) -> int:
        return max(1, round(self.src_width * self.scale))

    @property
    def resized_height(self) -> int:
        return max(1, round(self.src_height * self.scale))

    def to_source(self, x, y):
        """Model pixel coordinates -> source pixel coordinates (scalars or arrays)."""
        return (x - self.offset_x) / self.scale, (y - self.offset_y) / self.scale

    def to_model(self, x, y):
        """Source pixel coordinates -> model pixel coordinates (scalars or arrays)."""
        return x * self.scale + self.offset_x, y * self.scale + self.offset_y


def letterbox(rgb: np.ndarray, size: Tuple[int, int], pad_value: int,
              out: Optional[np.ndarray] = None) -> Tuple[np.ndarray, Letterbox]:
    """Resize ``rgb`` (HxWx3 uint8) into ``size`` = (H, W), aspect kept, centred on pad_value.

    ``out`` (HxWx3 uint8 of ``size``) is filled in place when given, so callers can reuse a canvas.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"letterbox needs an HxWx3 uint8 RGB image, got {rgb.shape} {rgb.dtype}")
    lb = Letterbox.fit(rgb.shape[:2], size)
    if out is None:
        out = np.empty((size[0], size[1], 3), np.uint8)
    elif out.shape != (size[0], size[1], 3) or out.dtype != np.uint8:
        raise ValueError(f"out must be {size[0]}x{size[1]}x3 uint8, got {out.shape} {out.dtype}")
    rw, rh, ox, oy = lb.resized_width, lb.resized_height, lb.offset_x, lb.offset_y
    if (rw, rh) == (lb.src_width, lb.src_height):
        resized = rgb
    else:
        shrinking = rw < lb.src_width or rh < lb.src_height
        resized = cv2.resize(np.ascontiguousarray(rgb), (rw, rh),
                             interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    # Paint only the padding bands, then the image: no full-canvas fill per frame.
    out[:oy] = pad_value
    out[oy + rh:] = pad_value
    out[oy:oy + rh, :ox] = pad_value
    out[oy:oy + rh, ox + rw:] = pad_value
    out[oy:oy + rh, ox:ox + rw] = resized
    return out, lb


def cell_boxes(lb: Letterbox, rows: int, cols: int, stride: int) -> Tuple[np.ndarray, np.ndarray]:
    """Source-pixel box of every grid cell, and which cells lie wholly in the padding.

    Returns (boxes float32 [rows, cols, 4] as x0, y0, x1, y1 clipped to the source image,
    padding bool [rows, cols]). Cell (r, c) covers model pixels [c*stride, (c+1)*stride) x
    [r*stride, (r+1)*stride).
    """
    xs = np.arange(cols + 1, dtype=np.float64) * stride
    ys = np.arange(rows + 1, dtype=np.float64) * stride
    sx, sy = lb.to_source(xs, ys)
    sx = np.clip(sx, 0.0, lb.src_width)
    sy = np.clip(sy, 0.0, lb.src_height)
    boxes = np.empty((rows, cols, 4), np.float32)
    boxes[..., 0] = sx[None, :-1]
    boxes[..., 1] = sy[:-1, None]
    boxes[..., 2] = sx[None, 1:]
    boxes[..., 3] = sy[1:, None]
    # Decide padding in integer model pixels (exact), not from the clipped floats.
    image_x = (lb.offset_x, lb.offset_x + lb.resized_width)
    image_y = (lb.offset_y, lb.offset_y + lb.resized_height)
    col_out = (xs[1:] <= image_x[0]) | (xs[:-1] >= image_x[1])
    row_out = (ys[1:] <= image_y[0]) | (ys[:-1] >= image_y[1])
    padding = row_out[:, None] | col_out[None, :]
    return boxes, padding


def prepare_view(rgb: np.ndarray, alpha: Optional[np.ndarray], view_size: int,
                 pad_value: int) -> np.ndarray:
    """A reference view as the embedder sees it: background (alpha < 128) set to pad_value, then
    letterboxed to view_size x view_size. Returns uint8 [view_size, view_size, 3]."""
    if alpha is not None:
        if alpha.shape != rgb.shape[:2]:
            raise ValueError(f"alpha {alpha.shape} does not match the image {rgb.shape[:2]}")
        rgb = rgb.copy()
        rgb[alpha < ALPHA_VISIBLE] = pad_value
    return letterbox(rgb, (view_size, view_size), pad_value)[0]


def box_iou(a, b) -> float:
    """Intersection over union of two boxes (x0, y0, x1, y1)."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0
