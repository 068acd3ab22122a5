"""Decompression bombs: small files that declare huge images, for the image-limit tests
(tests/unit/test_image_limits.py, tests/ros/test_image_msgs.py) and the soak's PNG bomb."""
import struct
import zlib

import cv2
import numpy as np


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def png_bomb(width=20000, height=20000, color_type=2) -> bytes:
    """A valid PNG of width x height black pixels (RGB: 1.2 GB decoded), ~1 MB on disk."""
    channels = {0: 1, 2: 3, 6: 4}[color_type]
    comp = zlib.compressobj(9)
    row = b"\x00" * (1 + width * channels)
    parts = [comp.compress(row) for _ in range(height)]
    parts.append(comp.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", b"".join(parts))
            + _chunk(b"IEND", b""))


def jpeg_with_size(width, height) -> bytes:
    """A real small JPEG whose frame header (SOF0) is patched to declare width x height."""
    ok, buf = cv2.imencode(".jpg", np.zeros((16, 16, 3), np.uint8))
    data = bytearray(buf.tobytes())
    i = 2
    while data[i + 1] != 0xC0:
        i += 2 + ((data[i + 2] << 8) | data[i + 3])
    data[i + 5:i + 9] = struct.pack(">HH", height, width)
    return bytes(data)
