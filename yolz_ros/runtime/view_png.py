"""Reference views as PNG bytes, both ways: what the object library stores and what `.yolz`
archives carry. Lossless; RGB or RGBA (alpha = the object mask). The size is read from the PNG
header before decoding, so a small file that declares gigapixels is refused unread."""
from __future__ import annotations

import numpy as np

from yolz_ros.runtime.image import ImageError, check_encoded_size
from yolz_ros.runtime.limits import MAX_VIEW_SIDE


def encode_view_png(view: np.ndarray) -> bytes:
    """HxW, HxWx3 RGB or HxWx4 RGBA uint8 -> PNG bytes; ValueError for anything else."""
    import cv2
    view = np.ascontiguousarray(view)
    if view.dtype != np.uint8:
        raise ValueError(f"views must be uint8, got {view.dtype}")
    if view.ndim == 2:
        bgr = view
    elif view.ndim == 3 and view.shape[2] == 3:
        bgr = cv2.cvtColor(view, cv2.COLOR_RGB2BGR)
    elif view.ndim == 3 and view.shape[2] == 4:
        bgr = cv2.cvtColor(view, cv2.COLOR_RGBA2BGRA)
    else:
        raise ValueError(f"views must be HxW, HxWx3 or HxWx4, got shape {view.shape}")
    ok, buf = cv2.imencode(".png", bgr)
    if not ok:
        raise ValueError("PNG encoding of a view failed")
    return buf.tobytes()


def decode_view_png(data: bytes, label: str = "view", max_side: int = MAX_VIEW_SIDE
                    ) -> np.ndarray:
    """PNG bytes -> HxWx3 RGB or HxWx4 RGBA uint8; ValueError naming ``label`` if the data is
    not an 8-bit PNG within ``max_side`` pixels a side."""
    import cv2
    buf = np.frombuffer(data, np.uint8)
    try:
        check_encoded_size(buf, max_side * max_side, max_side)
    except ImageError as exc:
        raise ValueError(f"{label}: {exc}") from None
    if bytes(buf[:8]) != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{label}: not a PNG")
    img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ValueError(f"cannot decode {label}")
    if img.dtype != np.uint8:
        raise ValueError(f"{label}: not 8-bit")
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
