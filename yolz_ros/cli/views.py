"""Reference views (numpy arrays) to and from sensor_msgs/Image, for the command-line tools that
send or receive views: HxWx3 RGB is rgb8, HxWx4 RGBA (alpha = the object mask) is rgba8."""
from __future__ import annotations

import numpy as np

from yolz_ros.image import image_msg_to_array, rgb_to_image_msg
from yolz_ros.limits import MAX_VIEW_PIXELS


def view_to_image_msg(view: np.ndarray):
    """HxWx3 RGB or HxWx4 RGBA uint8 -> sensor_msgs/Image (rgb8 or rgba8). ValueError else."""
    view = np.ascontiguousarray(view)
    if view.dtype != np.uint8 or view.ndim != 3 or view.shape[2] not in (3, 4):
        raise ValueError(f"a view must be HxWx3 or HxWx4 uint8, got shape {view.shape} "
                         f"{view.dtype}")
    if view.shape[2] == 3:
        return rgb_to_image_msg(view)
    msg = rgb_to_image_msg(view[:, :, :3])  # the header fields, then the four-channel data
    msg.encoding, msg.step, msg.data = "rgba8", msg.width * 4, view.tobytes()
    return msg


def image_msg_to_view(msg) -> np.ndarray:
    """sensor_msgs/Image -> HxWx3 RGB, or HxWx4 RGBA where the image has alpha. ImageError (a
    ValueError) for an encoding or size a view cannot have."""
    rgb, alpha = image_msg_to_array(msg, max_pixels=MAX_VIEW_PIXELS)
    return rgb if alpha is None else np.dstack([rgb, alpha])
