"""The window-free parts of register_from_camera (yolz_ros/cli/register_from_camera.py): box
parsing, corners to a RegionOfInterest, mask files, and the refusal to open a window where none
can be shown (cropping itself: yolz_ros.runtime.crop, tests/test_depth.py). Plus the view <->
Image conversion (yolz_ros.ros.image_msgs view_to_image_msg / image_msg_to_view) the crop travels
through. No DDS traffic."""
import struct
import zlib

import cv2
import numpy as np
import pytest

from yolz_ros.cli import register_from_camera as rfc
from yolz_ros.cli.register_from_camera import Roi, parse_box, roi_from_corners
from yolz_ros.runtime.crop import crop_view
from yolz_ros.ros.image_msgs import image_msg_to_view, view_to_image_msg


def frame(height=40, width=60, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


# ------------------------------------------------------------------------------------------
# box
def test_corners_become_offset_and_size():
    assert roi_from_corners(10, 20, 35, 50) == Roi(10, 20, 25, 30)
    msg = rfc.roi_msg(roi_from_corners(10, 20, 35, 50))
    assert (msg.x_offset, msg.y_offset, msg.width, msg.height) == (10, 20, 25, 30)


@pytest.mark.parametrize("corners", [(10, 5, 10, 9), (10, 5, 4, 9), (0, 9, 5, 9), (0, 9, 5, 2)])
def test_empty_box_is_refused(corners):
    with pytest.raises(ValueError, match="X1 must be greater than X0 and Y1 greater than Y0"):
        roi_from_corners(*corners)


def test_negative_corner_is_refused():
    with pytest.raises(ValueError, match=">= 0"):
        roi_from_corners(-1, 0, 5, 5)


def test_parse_box():
    assert parse_box(["1", "2", "11", "22"]) == Roi(1, 2, 10, 20)
    with pytest.raises(ValueError, match="whole pixel numbers"):
        parse_box(["1", "2", "x", "22"])
    with pytest.raises(ValueError, match="four numbers"):
        parse_box(["1", "2", "3"])
    with pytest.raises(ValueError, match="X1 must be greater"):
        parse_box(["5", "2", "5", "22"])


def test_read_mask_marks_non_zero_pixels(tmp_path):
    mask = np.zeros((20, 30), np.uint8)
    mask[5:9, 3:12] = 3
    path = tmp_path / "mask.png"
    cv2.imwrite(str(path), mask)
    got = rfc.read_mask(str(path))
    assert got.dtype == np.uint8 and set(np.unique(got)) == {0, 255}
    assert np.array_equal(got != 0, mask != 0)
    msg = rfc.mask_msg(got)
    assert (msg.encoding, msg.width, msg.height, msg.step) == ("mono8", 30, 20, 30)
    assert bytes(msg.data) == got.tobytes()


def test_read_mask_refuses_huge_header_and_missing_file(tmp_path):
    def chunk(kind, body):
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))
    path = tmp_path / "bomb.png"
    ihdr = struct.pack(">IIBBBBB", 200_000, 200_000, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
    with pytest.raises(ValueError, match="refused before decoding"):
        rfc.read_mask(str(path))
    with pytest.raises(ValueError, match="cannot read mask file"):
        rfc.read_mask(str(tmp_path / "none.png"))


# ------------------------------------------------------------------------------------------
# views as messages (what --interactive and `library import` send)
@pytest.mark.parametrize("channels, encoding", [(3, "rgb8"), (4, "rgba8")])
def test_view_message_round_trip(channels, encoding):
    view = np.random.default_rng(1).integers(0, 256, (9, 13, channels), dtype=np.uint8)
    msg = view_to_image_msg(view)
    assert (msg.encoding, msg.width, msg.height, msg.step) == (encoding, 13, 9, 13 * channels)
    assert np.array_equal(image_msg_to_view(msg), view)


def test_view_message_refuses_other_arrays():
    with pytest.raises(ValueError, match="HxWx3 or HxWx4"):
        view_to_image_msg(np.zeros((4, 4), np.uint8))


# ------------------------------------------------------------------------------------------
# no window where none can be shown
HEADLESS_INFO = "  Video I/O:\n  GUI:                           NONE\n    VTK support: NO\n"
GTK_INFO = "  GUI:                           GTK3\n    GTK+:  YES (ver 3.24)\n"


def test_no_display_is_refused():
    problem = rfc.gui_problem({}, GTK_INFO)
    assert "no display" in problem and "DISPLAY" in problem


def test_headless_opencv_is_refused_with_the_package_to_install():
    problem = rfc.gui_problem({"DISPLAY": ":0"}, HEADLESS_INFO)
    assert "no GUI support" in problem and "pip install opencv-python==5.0.0.93" in problem
    assert rfc.gui_problem({"WAYLAND_DISPLAY": "wayland-0"}, GTK_INFO) == ""
    assert rfc.gui_backend(HEADLESS_INFO) == "NONE" and rfc.gui_backend(GTK_INFO) == "GTK3"


def test_installed_opencv_is_judged_by_its_build_information():
    backend = rfc.gui_backend(cv2.getBuildInformation())
    assert backend  # the build information names a GUI backend (NONE for -headless)
    problem = rfc.gui_problem({"DISPLAY": ":0"})
    assert ("no GUI support" in problem) == (backend.upper() == "NONE")


def test_window_on_headless_opencv_raises_gui_unavailable():
    if rfc.gui_backend(cv2.getBuildInformation()).upper() != "NONE":
        pytest.skip("this OpenCV has a GUI backend")
    with pytest.raises(rfc.GuiUnavailable, match="opencv-python==5.0.0.93"):
        rfc.open_window()


def _no_ros(*args, **kwargs):
    raise AssertionError("no camera or service may be touched")


def test_interactive_without_display_exits_1_before_touching_ros(monkeypatch, capsys):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(rfc, "grab_interactively", _no_ros)
    assert rfc.main(["mug", "--interactive"]) == 1
    assert "error: no display" in capsys.readouterr().out


@pytest.mark.parametrize("argv, fragment", [
    (["mug"], "give --box"),
    (["mug", "--box", "5", "5", "3", "9"], "X1 must be greater"),
    (["mug", "--interactive", "--box", "0", "0", "5", "5"], "leave out --box"),
    (["mug", "--box", "0", "0", "5", "5", "--replace", "--append"], "exclude each other"),
    (["mug", "--box", "0", "0", "5", "5", "--negative", "--append"], "leave out --replace"),
    (["mug", "--box", "0", "0", "5", "5", "--negative", "--replace"], "leave out --replace"),
    (["bad/name", "--box", "0", "0", "5", "5"], "invalid object name"),
])
def test_bad_options_exit_1_with_an_error_line(monkeypatch, capsys, argv, fragment):
    monkeypatch.setattr(rfc, "register_on_node", _no_ros)
    monkeypatch.setattr(rfc, "register_interactively", _no_ros)
    assert rfc.main(argv) == 1
    out = capsys.readouterr().out
    assert out.startswith("error: ") and fragment in out


# ------------------------------------------------------------------------------------------
# --interactive's loop, with the window and the camera scripted
class ScriptedCamera:
    """A node + executor pair: each spin delivers the next frame of ``frames`` (None = none)."""

    def __init__(self, frames):
        self.frames, self.callback = list(frames), None

    def create_subscription(self, msg_type, topic, callback, qos):
        self.topic, self.callback = topic, callback

    def spin_once(self, timeout_sec=None):
        msg = self.frames.pop(0) if self.frames else None
        if msg is not None:
            self.callback(msg)


def frame_msg(value, stamp):
    msg = view_to_image_msg(np.full((30, 40, 3), value, np.uint8))
    msg.header.stamp.sec, msg.header.frame_id = stamp, "cam"
    return msg


def script_window(monkeypatch, keys, boxes):
    """Keys pressed per loop turn, boxes the operator draws; records what selectROI was shown."""
    keys, boxes, shown_for_box = list(keys), list(boxes), []
    monkeypatch.setattr(cv2, "imshow", lambda name, img: None)
    monkeypatch.setattr(cv2, "waitKey", lambda ms: keys.pop(0) if keys else -1)
    monkeypatch.setattr(cv2, "getWindowProperty", lambda name, prop: 1.0)

    def select(name, img, showCrosshair=True, fromCenter=False):
        shown_for_box.append(img.copy())
        return boxes.pop(0)
    monkeypatch.setattr(cv2, "selectROI", select)
    return shown_for_box


def test_interactive_box_applies_to_the_frozen_frame(monkeypatch):
    camera = ScriptedCamera([frame_msg(10, 1), frame_msg(20, 2), None, frame_msg(30, 3)])
    # turn 1: frame 10; turn 2: frame 20, SPACE freezes it; the box is drawn; frame 30 unseen
    shown = script_window(monkeypatch, [-1, ord(" ")], [(5, 6, 9, 8)])
    rgb, header, roi = rfc.pick_from_stream(camera, camera, "image")
    assert camera.topic == "image"
    assert header.stamp.sec == 2 and np.all(rgb == 20) and roi == Roi(5, 6, 9, 8)
    assert len(shown) == 1 and np.all(shown[0] == 20)  # the box was drawn on that frame
    assert np.array_equal(crop_view(rgb, tuple(roi))[0], rgb[6:14, 5:14])


def test_interactive_cancelled_box_returns_to_live_and_q_quits(monkeypatch):
    camera = ScriptedCamera([frame_msg(10, 1), frame_msg(20, 2)])
    shown = script_window(monkeypatch, [ord(" "), -1, ord("q")], [(0, 0, 0, 0)])
    assert rfc.pick_from_stream(camera, camera, "image") is None
    assert len(shown) == 1


def test_interactive_space_before_any_frame_does_nothing(monkeypatch):
    camera = ScriptedCamera([None, frame_msg(7, 4)])
    shown = script_window(monkeypatch, [ord(" "), ord(" ")], [(1, 1, 4, 4)])
    rgb, header, roi = rfc.pick_from_stream(camera, camera, "image")
    assert header.stamp.sec == 4 and len(shown) == 1
