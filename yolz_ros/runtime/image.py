"""Pixels to RGB uint8 (plus alpha where the image has one), and the checks every image passes.

Accepted encodings: rgb8, bgr8, rgba8, bgra8, mono8, mono16. mono16 becomes 8 bit by keeping the
high byte (``>> 8``): a fixed mapping, so the same scene gives the same pixels in every frame
(scaling by each frame's maximum would make brightness flicker with content).

Every bad input raises ImageError saying what is wrong and what is accepted. The message side
(sensor_msgs/Image <-> numpy) is yolz_ros.ros.image_msgs.

Compressed data (CompressedImage frames, stored view PNGs) is only decoded after its size has
been read from the PNG or JPEG header and found within the limit (``encoded_image_size``): a
small file that declares a huge image (a decompression bomb) is refused without allocating it.
"""
from __future__ import annotations

from typing import Optional, Tuple

import struct

import cv2
import numpy as np

from yolz_ros.runtime.limits import MAX_IMAGE_PIXELS

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


def check_size(height: int, width: int, max_pixels: int) -> None:
    if height <= 0 or width <= 0:
        raise ImageError(f"image is empty ({width}x{height}); send an image with at least 1x1 "
                         "pixels")
    if height * width > max_pixels:
        raise ImageError(f"image {width}x{height} has {height * width} pixels, over the limit "
                         f"of {max_pixels}; downscale it first")


def encoding_layout(encoding: str) -> Tuple[int, type]:
    try:
        return ENCODINGS[str(encoding).lower()]
    except KeyError:
        raise ImageError(f"unsupported encoding {encoding!r}; accepted: {ACCEPTED}") from None


def to_rgb(array: np.ndarray, encoding: str, max_pixels: int = MAX_PIXELS) -> RgbAlpha:
    """Pixels in ``encoding`` (HxW or HxWxC) -> (RGB uint8 HxWx3, alpha uint8 HxW or None).

    rgb8 input is returned without a copy, so the result may share (read-only) memory with it."""
    channels, dtype = encoding_layout(encoding)
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
    check_size(array.shape[0], array.shape[1], max_pixels)

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


def as_bytes(data) -> np.ndarray:
    """Message bytes (bytes, array.array('B'), list of ints) as a uint8 array, without a copy
    where the buffer protocol allows."""
    try:
        return np.frombuffer(data, np.uint8)
    except TypeError:
        return np.asarray(data, np.uint8).ravel()


def encoded_image_size(data) -> Tuple[int, int, str]:
    """(width, height, 'png' | 'jpeg') read from the header of PNG or JPEG bytes, without
    decoding. Raises ImageError for other formats or a header that cannot be read."""
    buf = memoryview(as_bytes(data)).cast("B")  # indexing gives ints (numpy uint8 would wrap)
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
