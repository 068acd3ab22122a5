"""Detector v3 in the runtime, without torch: regressed boxes from the box head's output, one
detection per object with them, and the object found in a view without alpha (GrabCut)."""
import json
import shutil
from pathlib import Path

import cv2
import numpy as np

from yolz_ros.runtime.decode import Peak
from yolz_ros.runtime.decode import regressed_box, regressed_boxes, with_regressed_boxes
from yolz_ros.runtime.detector import DetectionResult, Detector
from yolz_ros.runtime.foreground import box_mask, grabcut_alpha, view_alpha
from yolz_ros.runtime.geometry import Letterbox, cell_boxes

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "models" / "yolz_tokens"


def test_regressed_boxes_map_input_pixels_to_the_source_image():
    """A known box in the detector's input comes out as the same box in source pixels, through
    a letterbox that scales and pads (a 1280x720 frame into 640x480)."""
    lb = Letterbox.fit((720, 1280), (480, 640))
    assert lb.scale == 0.5 and lb.offset_y > 0
    rows, cols, stride = 30, 40, 16
    # the object's box in source pixels, and in input pixels
    src = np.array([300.0, 200.0, 420.0, 380.0])
    inp = src * lb.scale + np.array([lb.offset_x, lb.offset_y, lb.offset_x, lb.offset_y])
    cx = (np.arange(cols) + 0.5) * stride
    cy = (np.arange(rows) + 0.5) * stride
    d = np.empty((rows, cols, 4), np.float32)
    d[..., 0] = cx[None, :] - inp[0]
    d[..., 1] = cy[:, None] - inp[1]
    d[..., 2] = inp[2] - cx[None, :]
    d[..., 3] = inp[3] - cy[:, None]
    out = regressed_boxes(d, lb, stride, (720, 1280))
    np.testing.assert_allclose(out[12, 20], src, atol=1e-3)
    np.testing.assert_allclose(out[0, 0], src, atol=1e-3)  # every cell reads the same box
    # a box past the frame is clipped to it
    d[..., 2] += 2000
    assert regressed_boxes(d, lb, stride, (720, 1280))[5, 5, 2] == 1280


def _result(grid_peaks, object_boxes):
    lb = Letterbox.fit((480, 640), (480, 640))
    boxes, _ = cell_boxes(lb, 30, 40, 16)
    probs = np.zeros((1, 30, 40), np.float32)
    return DetectionResult(probs, lb, boxes, 0.0, object_boxes)


def _peak(score, r, c):
    return Peak(score=score, peak_x=c * 16 + 8.0, peak_y=r * 16 + 8.0, x_min=c * 16.0,
                y_min=r * 16.0, x_max=c * 16 + 16.0, y_max=r * 16 + 16.0, num_cells=1)


def test_peaks_take_the_regressed_box_and_one_object_gives_one_detection():
    ob = np.zeros((30, 40, 4), np.float32)
    ob[...] = (100, 100, 260, 220)  # one wide object covering both peaks' cells
    ob[20:, 30:] = (470, 330, 560, 420)  # another object elsewhere
    res = _result(None, ob)
    grid = np.zeros((30, 40), np.float32)
    grid[8, 8], grid[10, 14], grid[22, 32] = 0.9, 0.7, 0.6
    peaks = [_peak(0.9, 8, 8), _peak(0.7, 10, 14), _peak(0.6, 22, 32)]
    kept = with_regressed_boxes(peaks, res.boxes, res.object_boxes, grid, 0.5)
    assert [(p.score, p.x_min, p.y_min, p.x_max, p.y_max) for p in kept] == \
        [(0.9, 100, 100, 260, 220), (0.6, 470, 330, 560, 420)]


def test_an_objects_box_is_its_strong_cells_boxes_weighted_by_probability():
    ob = np.zeros((30, 40, 4), np.float32)
    grid = np.zeros((30, 40), np.float32)
    grid[5, 5], grid[5, 6], grid[5, 7] = 0.9, 0.9, 0.3  # (5, 7): joined by hysteresis, weak
    grid[20, 20] = 0.95  # another object: not part of this one's region
    ob[5, 5], ob[5, 6], ob[5, 7] = (100, 100, 200, 200), (120, 120, 220, 220), (0, 0, 640, 480)
    ob[20, 20] = (0, 0, 10, 10)
    box = regressed_box(ob, grid, (5, 5), 0.5)
    np.testing.assert_allclose(box, (110, 110, 210, 210))  # the two strong cells, equal weights


def _disc_view(seed=0, size=160):
    """A red-and-yellow object in the middle of a textured green-grey background (no alpha)."""
    rng = np.random.default_rng(seed)
    view = rng.integers(60, 140, (size, size, 3), dtype=np.uint8)
    view[..., 1] = np.clip(view[..., 1].astype(int) + 40, 0, 255)
    truth = np.zeros((size, size), np.uint8)
    cv2.circle(truth, (size // 2, size // 2), size // 4, 255, -1)
    view[truth > 0] = (220, 40, 30)
    cv2.circle(view, (size // 2, size // 2), size // 10, (240, 220, 40), -1)
    return view, truth


def test_grabcut_finds_the_object_in_a_view_without_alpha():
    view, truth = _disc_view()
    alpha = grabcut_alpha(view)
    assert alpha is not None and alpha.shape == truth.shape
    inter = ((alpha > 0) & (truth > 0)).sum()
    union = ((alpha > 0) | (truth > 0)).sum()
    assert inter / union > 0.85
    np.testing.assert_array_equal(grabcut_alpha(view), alpha)  # deterministic


def test_a_box_drawn_tightly_on_a_frame_finds_the_object():
    """register_from_camera's case: a box with a few pixels of margin around the object on the
    frame; GrabCut starts from the box and learns the background around it."""
    frame, truth = _disc_view(2, size=320)
    ys, xs = np.nonzero(truth)
    box = (xs.min() - 4, ys.min() - 4, xs.max() - xs.min() + 9, ys.max() - ys.min() + 9)
    mask = box_mask(frame, box)
    assert mask is not None and mask.shape == truth.shape
    inter = ((mask > 0) & (truth > 0)).sum()
    assert inter / ((mask > 0) | (truth > 0)).sum() > 0.85
    # cutting the tight box out first leaves GrabCut no background to learn from
    x, y, w, h = box
    crop_alpha = grabcut_alpha(frame[y:y + h, x:x + w])
    crop_iou = 0.0 if crop_alpha is None else (
        ((crop_alpha > 0) & (truth[y:y + h, x:x + w] > 0)).sum()
        / ((crop_alpha > 0) | (truth[y:y + h, x:x + w] > 0)).sum())
    assert crop_iou < inter / ((mask > 0) | (truth > 0)).sum()


def test_no_plausible_object_keeps_the_centre_rule():
    flat = np.full((96, 96, 3), 128, np.uint8)
    assert grabcut_alpha(flat) is None
    assert view_alpha(flat, None, "grabcut") is None
    view, _ = _disc_view()
    given = np.full(view.shape[:2], 255, np.uint8)
    assert view_alpha(view, given, "grabcut") is given  # a view's own alpha always wins
    assert view_alpha(view, None, "centre") is None


def _with_rule(folder: Path, rule: str) -> Path:
    """A copy of the shipped model whose model.json says object_tokens.no_alpha = rule."""
    folder.mkdir()
    for f in ("embedder.onnx", "detector.onnx"):
        shutil.copy(SHIPPED / f, folder / f)
    info = json.loads((SHIPPED / "model.json").read_text())
    info["object_tokens"]["no_alpha"] = rule
    (folder / "model.json").write_text(json.dumps(info))
    return folder


def test_a_view_without_alpha_embeds_as_its_grabcut_cutout(tmp_path):
    """View parity: under the grabcut rule, an RGB view gives exactly the tokens of the same view
    sent as RGBA with GrabCut's mask; under the centre rule it does not."""
    det = Detector(_with_rule(tmp_path / "grabcut", "grabcut"), backend="onnxruntime",
                   device="cpu")
    view, _ = _disc_view(1)
    rgba = np.dstack([view, grabcut_alpha(view)])
    np.testing.assert_array_equal(det.embed_views([view]).vector,
                                  det.embed_views([rgba]).vector)
    centre = Detector(_with_rule(tmp_path / "centre", "centre"), backend="onnxruntime",
                      device="cpu")
    assert not np.allclose(centre.embed_views([view]).vector, det.embed_views([view]).vector)


def test_the_shipped_model_finds_the_object_in_views_without_alpha():
    assert Detector(SHIPPED, backend="onnxruntime", device="cpu").info.tokens.no_alpha == \
        "grabcut"
