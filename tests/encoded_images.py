"""Small images in every accepted encoding, with the RGB and alpha each must convert to:
shared by the pixel tests (unit tier) and the message tests (ros tier)."""
import numpy as np

RGB = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255]],
                [[10, 20, 30], [40, 50, 60], [70, 80, 90]]], np.uint8)
ALPHA = np.array([[0, 127, 128], [200, 255, 1]], np.uint8)


def encoded(encoding):
    """(pixels in that encoding, expected rgb, expected alpha)."""
    gray = np.array([[0, 0x1234, 0xFFFF], [0x8000, 0x00FF, 0x0100]], np.uint16)
    return {
        "rgb8": (RGB, RGB, None),
        "bgr8": (RGB[..., ::-1], RGB, None),
        "rgba8": (np.dstack([RGB, ALPHA]), RGB, ALPHA),
        "bgra8": (np.dstack([RGB[..., ::-1], ALPHA]), RGB, ALPHA),
        "mono8": (RGB[..., 1], np.repeat(RGB[..., 1:2], 3, axis=2), None),
        "mono16": (gray, np.repeat((gray >> 8).astype(np.uint8)[..., None], 3, axis=2), None),
    }[encoding]


ENCODINGS = ["rgb8", "bgr8", "rgba8", "bgra8", "mono8", "mono16"]
