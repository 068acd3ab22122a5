"""sensor_msgs/Image and CompressedImage <-> numpy, in symmetric pairs (as cv_bridge does).

sensor_msgs/Image is converted with numpy, on every installation (no cv_bridge: it would only
repeat the work, and the PyPI wheels have none); ``step`` (row padding) and ``is_bigendian`` are
honoured. Pixel rules (encodings, size limits, header checks of compressed data) live in
yolz_ros.runtime.image; every bad input raises its ImageError.
"""
from __future__ import annotations

import cv2
import numpy as np

from yolz_ros.runtime.image import (MAX_PIXELS, ImageError, RgbAlpha, as_bytes, check_encoded_size,
                                    check_size, encoding_layout, to_rgb)


def check_layout(msg, channels: int, dtype, size: int) -> int:
    """Row bytes of a sensor_msgs/Image whose step and data size (``size`` bytes) fit its
    width, height and encoding; ImageError otherwise."""
    row_bytes = msg.width * channels * np.dtype(dtype).itemsize
    if msg.step < row_bytes:
        raise ImageError(f"step {msg.step} is smaller than one row of {msg.width} "
                         f"{msg.encoding} pixels ({row_bytes} bytes)")
    if size != msg.step * msg.height:
        raise ImageError(f"data has {size} bytes, expected step*height = "
                         f"{msg.step}*{msg.height} = {msg.step * msg.height}")
    return row_bytes


def check_frame_header(msg, max_pixels: int = MAX_PIXELS, max_compressed_bytes: int = 0) -> None:
    """What a frame must pass before it may wait for the worker, without touching its pixels:
    encoding, size, step and data length (Image), or non-empty PNG/JPEG with an acceptable
    header (CompressedImage). The node refuses a bad frame on arrival, so it never displaces
    the good frame waiting to be processed."""
    if hasattr(msg, "format"):  # CompressedImage
        n = len(msg.data)
        if n == 0:
            raise ImageError("compressed image has no data")
        if max_compressed_bytes and n > max_compressed_bytes:
            raise ImageError(f"compressed image of {n} bytes is over the limit of "
                             f"{max_compressed_bytes}")
        check_encoded_size(msg.data, max_pixels)
        return
    channels, dtype = encoding_layout(msg.encoding)
    check_size(msg.height, msg.width, max_pixels)
    check_layout(msg, channels, dtype, len(msg.data))


def msg_pixels(msg, channels: int, dtype) -> np.ndarray:
    """sensor_msgs/Image data -> HxW(xC) array, dropping row padding and fixing byte order."""
    data = as_bytes(msg.data)
    row_bytes = check_layout(msg, channels, dtype, data.size)
    rows = data.reshape(msg.height, msg.step)[:, :row_bytes]
    order = ">" if msg.is_bigendian else "<"
    pixels = np.ascontiguousarray(rows).view(np.dtype(dtype).newbyteorder(order))
    pixels = pixels.astype(dtype, copy=False)  # native byte order
    shape = (msg.height, msg.width, channels) if channels > 1 else (msg.height, msg.width)
    return pixels.reshape(shape)


def image_msg_to_array(msg, max_pixels: int = MAX_PIXELS) -> RgbAlpha:
    """sensor_msgs/Image -> (RGB uint8 HxWx3, alpha uint8 HxW or None)."""
    channels, dtype = encoding_layout(msg.encoding)
    check_size(msg.height, msg.width, max_pixels)
    return to_rgb(msg_pixels(msg, channels, dtype), msg.encoding, max_pixels)


def compressed_msg_to_rgb(msg, max_pixels: int = MAX_PIXELS) -> RgbAlpha:
    """sensor_msgs/CompressedImage (jpeg, png) -> (RGB uint8 HxWx3, alpha HxW or None).

    The image size is read from the PNG/JPEG header and checked against ``max_pixels`` before
    decoding (a small file can declare a huge image)."""
    data = as_bytes(msg.data)
    if data.size == 0:
        raise ImageError("compressed image has no data; send jpeg or png bytes")
    check_encoded_size(data, max_pixels)
    pixels = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if pixels is None:
        raise ImageError(f"cannot decode the compressed image (format {msg.format!r}, "
                         f"{data.size} bytes); send valid jpeg or png data")
    if pixels.dtype == np.uint16:  # 16-bit png: same rule as mono16
        pixels = (pixels >> 8).astype(np.uint8)
    if pixels.dtype != np.uint8:
        raise ImageError(f"decoded image has {pixels.dtype} pixels; accepted: 8 or 16 bit")
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    encoding = {1: "mono8", 3: "bgr8", 4: "bgra8"}.get(channels)
    if encoding is None:
        raise ImageError(f"decoded image has {channels} channels; accepted: 1, 3 or 4")
    return to_rgb(pixels, encoding, max_pixels)


def array_to_image_msg(pixels: np.ndarray, encoding: str, header=None):
    """HxW or HxWxC array -> sensor_msgs/Image of ``encoding`` as given (no row padding, the
    array's byte order): the inverse of msg_pixels. No check that the encoding fits the array, so a
    test or the soak can build a bad frame on purpose; rgb_to_image_msg and view_to_image_msg
    check."""
    from sensor_msgs.msg import Image  # only the ROS side needs the message types

    pixels = np.ascontiguousarray(pixels)
    msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(pixels.shape[0]), int(pixels.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = int(pixels.dtype.byteorder == ">")
    msg.step = int(pixels.strides[0]) if pixels.size else 0
    msg.data = pixels.tobytes()
    return msg


def rgb_to_image_msg(rgb: np.ndarray, header=None):
    """RGB uint8 HxWx3 -> sensor_msgs/Image (rgb8, no row padding)."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ImageError(f"need an HxWx3 uint8 RGB array, got shape {rgb.shape} {rgb.dtype}")
    return array_to_image_msg(rgb, "rgb8", header)


def view_to_image_msg(view: np.ndarray, header=None):
    """A reference view -> sensor_msgs/Image: HxWx3 RGB as rgb8, HxWx4 RGBA as rgba8 (alpha =
    the object mask). The inverse of image_msg_to_view."""
    view = np.asarray(view)
    if view.ndim == 3 and view.shape[2] == 3:
        return rgb_to_image_msg(view, header)
    if view.ndim != 3 or view.shape[2] != 4 or view.dtype != np.uint8:
        raise ImageError(f"need an HxWx3 or HxWx4 uint8 view, got shape {view.shape} "
                         f"{view.dtype}")
    return array_to_image_msg(view, "rgba8", header)


def image_msg_to_view(msg, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """sensor_msgs/Image -> a reference view: HxWx3 RGB, or HxWx4 RGBA where the image has
    alpha. The inverse of view_to_image_msg; ImageError for what a view cannot be."""
    rgb, alpha = image_msg_to_array(msg, max_pixels=max_pixels)
    return rgb if alpha is None else np.dstack([rgb, alpha])
