"""Camera images to RGB uint8 (plus alpha where the image has one), and back to sensor_msgs.

Accepted encodings: rgb8, bgr8, rgba8, bgra8, mono8, mono16. mono16 becomes 8 bit by keeping the
high byte (``>> 8``): a fixed mapping, so the same scene gives the same pixels in every frame
(scaling by each frame's maximum would make brightness flicker with content).

sensor_msgs/Image is converted here with numpy, on every installation (no cv_bridge: it would only
repeat the work, and the PyPI wheels have none); ``step`` (row padding) and ``is_bigendian`` are
honoured. Every bad input raises ImageError saying what is wrong and what is accepted.

Compressed data (CompressedImage frames, stored view PNGs) is only decoded after its size has
been read from the PNG or JPEG header and found within the limit (``encoded_image_size``): a
small file that declares a huge image (a decompression bomb) is refused without allocating it.
"""
from __future__ import annotations

from typing import Optional, Tuple

import struct
import zlib

import cv2
import numpy as np

from yolz_ros.limits import MAX_IMAGE_PIXELS

MAX_PIXELS = MAX_IMAGE_PIXELS  # larger frames are refused rather than letterboxed at great cost
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers (baseline, extended, progressive, lossless, ...; not DHT/JPG/DAC)
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}

# encoding -> (channels, dtype)
ENCODINGS = {
    "rgb8": (3, np.uint8),
    "bgr8": (3, np.uint8),
    "rgba8": (4, np.uint8),
    "bgra8": (4, np.uint8),
    "mono8": (1, np.uint8),
    "mono16": (1, np.uint16),
}
ACCEPTED = ", ".join(ENCODINGS)

RgbAlpha = Tuple[np.ndarray, Optional[np.ndarray]]

class ImageError(ValueError):
    """An image that cannot be converted; the message says what is wrong and what is accepted."""


def _check_size(height: int, width: int, max_pixels: int) -> None:
    if height <= 0 or width <= 0:
        raise ImageError(f"image is empty ({width}x{height}); send an image with at least 1x1 "
                         "pixels")
    if height * width > max_pixels:
        raise ImageError(f"image {width}x{height} has {height * width} pixels, over the limit "
                         f"of {max_pixels}; downscale it first")


def _encoding(encoding: str) -> Tuple[int, type]:
    try:
        return ENCODINGS[str(encoding).lower()]
    except KeyError:
        raise ImageError(f"unsupported encoding {encoding!r}; accepted: {ACCEPTED}") from None


def to_rgb(array: np.ndarray, encoding: str, max_pixels: int = MAX_PIXELS) -> RgbAlpha:
    """Pixels in ``encoding`` (HxW or HxWxC) -> (RGB uint8 HxWx3, alpha uint8 HxW or None).

    rgb8 input is returned without a copy, so the result may share (read-only) memory with it."""
    channels, dtype = _encoding(encoding)
    encoding = str(encoding).lower()
    array = np.asarray(array)
    if array.ndim == 3 and channels == 1 and array.shape[2] == 1:
        array = array[:, :, 0]
    expected = (channels,) if channels > 1 else ()
    if array.ndim != 2 + (channels > 1) or array.shape[2:] != expected:
        want = "HxW" if channels == 1 else f"HxWx{channels}"
        raise ImageError(f"{encoding} needs a {want} array, got shape {array.shape}")
    if array.dtype != dtype:
        raise ImageError(f"{encoding} needs {np.dtype(dtype).name} pixels, got {array.dtype}")
    _check_size(array.shape[0], array.shape[1], max_pixels)

    alpha = None
    if encoding == "rgb8":
        rgb = np.ascontiguousarray(array)
    elif encoding == "bgr8":
        rgb = cv2.cvtColor(np.ascontiguousarray(array), cv2.COLOR_BGR2RGB)
    elif encoding == "rgba8":
        rgb, alpha = np.ascontiguousarray(array[:, :, :3]), np.ascontiguousarray(array[:, :, 3])
    elif encoding == "bgra8":
        rgb = cv2.cvtColor(np.ascontiguousarray(array[:, :, :3]), cv2.COLOR_BGR2RGB)
        alpha = np.ascontiguousarray(array[:, :, 3])
    else:
        mono = array if encoding == "mono8" else (array >> 8).astype(np.uint8)
        rgb = cv2.cvtColor(np.ascontiguousarray(mono), cv2.COLOR_GRAY2RGB)
    return rgb, alpha


def _bytes(data) -> np.ndarray:
    """Message bytes (bytes, array.array('B'), list of ints) as a uint8 array, without a copy
    where the buffer protocol allows."""
    try:
        return np.frombuffer(data, np.uint8)
    except TypeError:
        return np.asarray(data, np.uint8).ravel()


def _check_layout(msg, channels: int, dtype, size: int) -> int:
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
    channels, dtype = _encoding(msg.encoding)
    _check_size(msg.height, msg.width, max_pixels)
    _check_layout(msg, channels, dtype, len(msg.data))


def _msg_pixels(msg, channels: int, dtype) -> np.ndarray:
    """sensor_msgs/Image data -> HxW(xC) array, dropping row padding and fixing byte order."""
    data = _bytes(msg.data)
    row_bytes = _check_layout(msg, channels, dtype, data.size)
    rows = data.reshape(msg.height, msg.step)[:, :row_bytes]
    order = ">" if msg.is_bigendian else "<"
    pixels = np.ascontiguousarray(rows).view(np.dtype(dtype).newbyteorder(order))
    pixels = pixels.astype(dtype, copy=False)  # native byte order
    shape = (msg.height, msg.width, channels) if channels > 1 else (msg.height, msg.width)
    return pixels.reshape(shape)


def image_msg_to_array(msg, max_pixels: int = MAX_PIXELS) -> RgbAlpha:
    """sensor_msgs/Image -> (RGB uint8 HxWx3, alpha uint8 HxW or None)."""
    channels, dtype = _encoding(msg.encoding)
    _check_size(msg.height, msg.width, max_pixels)
    return to_rgb(_msg_pixels(msg, channels, dtype), msg.encoding, max_pixels)


def encoded_image_size(data) -> Tuple[int, int, str]:
    """(width, height, 'png' | 'jpeg') read from the header of PNG or JPEG bytes, without
    decoding. Raises ImageError for other formats or a header that cannot be read."""
    buf = memoryview(_bytes(data)).cast("B")  # indexing gives ints (numpy uint8 would wrap)
    head = bytes(buf[:8])
    if head == PNG_SIGNATURE:
        if len(buf) < 33 or bytes(buf[12:16]) != b"IHDR":
            raise ImageError("PNG data without an IHDR header chunk; send a valid png")
        width, height = struct.unpack(">II", bytes(buf[16:24]))
        return int(width), int(height), "png"
    if head[:2] == b"\xff\xd8":
        return (*_jpeg_size(buf), "jpeg")
    raise ImageError("compressed image is neither png nor jpeg (by its first bytes); "
                     "accepted: png, jpeg")


def _jpeg_size(buf) -> Tuple[int, int]:
    i, n = 2, len(buf)
    while i + 4 <= n:
        if buf[i] != 0xFF:
            raise ImageError("corrupt jpeg header (no marker where one was expected)")
        marker = buf[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            i += 2
            continue
        if marker in (0xD9, 0xDA):
            break  # end of image / start of scan before any frame header
        length = (buf[i + 2] << 8) | buf[i + 3]
        if length < 2:
            raise ImageError("corrupt jpeg header (segment length < 2)")
        if marker in _JPEG_SOF:
            if i + 9 > n:
                break
            height = (buf[i + 5] << 8) | buf[i + 6]
            width = (buf[i + 7] << 8) | buf[i + 8]
            return int(width), int(height)
        i += 2 + length
    raise ImageError("jpeg data without a frame header (SOF) before the image data; send a "
                     "valid jpeg")


def check_encoded_size(data, max_pixels: int, max_side: int = 0) -> Tuple[int, int, str]:
    """Refuse PNG/JPEG bytes whose header declares an empty image, more than ``max_pixels``
    pixels or (when given) a side over ``max_side``, before anything is decoded."""
    width, height, kind = encoded_image_size(data)
    if width <= 0 or height <= 0:
        raise ImageError(f"{kind} header declares an empty image ({width}x{height})")
    if width * height > max_pixels:
        raise ImageError(f"{kind} header declares {width}x{height} = {width * height} pixels, "
                         f"over the limit of {max_pixels}; refused before decoding (downscale "
                         "it first)")
    if max_side and (width > max_side or height > max_side):
        raise ImageError(f"{kind} header declares {width}x{height}: each side must be at most "
                         f"{max_side} pixels; refused before decoding")
    return width, height, kind


def png_problem(data: bytes) -> Optional[str]:
    """None if ``data`` is a structurally sound PNG (signature, IHDR first, every chunk's CRC,
    IEND last, nothing after it), else what is wrong. Cheap: no pixels are decoded."""
    if data[:8] != PNG_SIGNATURE:
        return "not a PNG (bad signature)"
    i, n, first = 8, len(data), True
    while True:
        if i + 12 > n:
            return "truncated PNG (no IEND chunk)"
        length, kind = struct.unpack(">I4s", data[i:i + 8])
        end = i + 12 + length
        if end > n:
            return f"truncated PNG (chunk {kind!r} runs past the end)"
        if first and kind != b"IHDR":
            return "PNG does not start with IHDR"
        first = False
        crc = struct.unpack(">I", data[end - 4:end])[0]
        if zlib.crc32(data[i + 4:end - 4]) & 0xFFFFFFFF != crc:
            return f"PNG chunk {kind.decode('latin-1')!r} at byte {i} has a bad CRC"
        if kind == b"IEND":
            return None if end == n else "bytes after the PNG's IEND chunk"
        i = end


def compressed_msg_to_rgb(msg, max_pixels: int = MAX_PIXELS) -> RgbAlpha:
    """sensor_msgs/CompressedImage (jpeg, png) -> (RGB uint8 HxWx3, alpha HxW or None).

    The image size is read from the PNG/JPEG header and checked against ``max_pixels`` before
    decoding (a small file can declare a huge image)."""
    data = _bytes(msg.data)
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


def rgb_to_image_msg(rgb: np.ndarray, header=None):
    """RGB uint8 HxWx3 -> sensor_msgs/Image (rgb8, no row padding)."""
    from sensor_msgs.msg import Image  # only the ROS side needs the message types

    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ImageError(f"need an HxWx3 uint8 RGB array, got shape {rgb.shape} {rgb.dtype}")
    msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(rgb.shape[0]), int(rgb.shape[1])
    msg.encoding = "rgb8"
    msg.is_bigendian = 0
    msg.step = msg.width * 3
    msg.data = np.ascontiguousarray(rgb).tobytes()
    return msg


def view_to_image_msg(view: np.ndarray, header=None):
    """A reference view -> sensor_msgs/Image: HxWx3 RGB as rgb8, HxWx4 RGBA as rgba8 (alpha =
    the object mask). The inverse of image_msg_to_array for views."""
    view = np.asarray(view)
    if view.ndim == 3 and view.shape[2] == 3:
        return rgb_to_image_msg(view, header)
    if view.ndim != 3 or view.shape[2] != 4 or view.dtype != np.uint8:
        raise ImageError(f"need an HxWx3 or HxWx4 uint8 view, got shape {view.shape} "
                         f"{view.dtype}")
    msg = rgb_to_image_msg(np.ascontiguousarray(view[:, :, :3]), header)
    msg.encoding = "rgba8"
    msg.step = msg.width * 4
    msg.data = np.ascontiguousarray(view).tobytes()
    return msg


def image_msg_to_view(msg, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """sensor_msgs/Image -> a reference view: HxWx3 RGB, or HxWx4 RGBA where the image has
    alpha. The inverse of view_to_image_msg; ImageError for what a view cannot be."""
    rgb, alpha = image_msg_to_array(msg, max_pixels=max_pixels)
    return rgb if alpha is None else np.dstack([rgb, alpha])
