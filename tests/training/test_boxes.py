"""The box head and its decoding, the box metrics, and the evaluation of the runtime's zoom pass:
what training's box targets, the runtime's decoding and the benchmark's scoring must agree on."""
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from training.data import realbench  # noqa: E402
from training.evaluation import evaluate  # noqa: E402
from training.evaluation.metrics import box_metrics  # noqa: E402
from training.model.boxes import BoxHead, box_targets, distances_to_boxes  # noqa: E402
from yolz_ros.runtime.decode import regressed_boxes  # noqa: E402
from yolz_ros.runtime.geometry import Letterbox  # noqa: E402

SHIPPED = Path(__file__).resolve().parents[2] / "models" / "yolz_tokens"


def test_a_known_box_in_is_the_same_box_out():
    """Training's targets and the runtime's decoding agree: a box encoded as per-cell distances
    (as the head is trained to output them) decodes, through a letterbox, to the same box in
    source pixels at every one of the object's cells."""
    targets = torch.zeros(2, 30, 40)
    targets[0, 10:14, 20:27] = 1
    targets[1, 2:4, 3:5] = 1
    boxes = torch.tensor([[322.0, 161.0, 430.0, 222.0], [50.0, 33.0, 80.0, 60.0]])
    tgt, weight = box_targets(targets, boxes, 16)  # boxes in cells
    assert torch.allclose(weight.sum(), torch.tensor(2.0))  # each instance weighs 1
    centres = distances_to_boxes(torch.zeros(4, 30, 40))[..., :2]  # cell centres [r, c, 2]
    dist = torch.cat([centres - tgt[..., :2], tgt[..., 2:] - centres], dim=-1) * 16  # l, t, r, b
    lb = Letterbox.fit((960, 1280), (480, 640))  # scale 0.5, no padding
    out = regressed_boxes(dist.numpy(), lb, 16, (960, 1280))
    np.testing.assert_allclose(out[11, 22], boxes[0].numpy() / lb.scale, atol=1e-3)
    np.testing.assert_allclose(out[3, 4], boxes[1].numpy() / lb.scale, atol=1e-3)


def test_box_head_shapes_follow_the_grid():
    head = BoxHead()
    for r, c in ((30, 40), (17, 23)):
        assert head(torch.rand(2, 112, r, c)).shape == (2, 4, r, c)
        assert (head(torch.rand(1, 112, r, c)) >= 0).all()


def test_box_metrics():
    gt = (0.0, 0.0, 10.0, 10.0)
    perfect = box_metrics([([(0.9, *gt)], gt), ([], None)])
    assert perfect["box_ap50"] == 1.0 and perfect["box_ap"] == 1.0
    assert perfect["top_box_iou_median"] == 1.0
    # half the width: IoU 0.5 -> a hit at 0.5 only; a false alarm ranked first halves precision
    half = (0.0, 0.0, 5.0, 10.0)
    m = box_metrics([([(0.8, *half)], gt), ([(0.9, *gt)], None)])
    assert m["box_ap50"] == pytest.approx(0.5) and m["box_ap"] == pytest.approx(0.05)
    missed = box_metrics([([], gt), ([(0.5, *gt)], gt)])
    assert missed["box_ap50"] == 0.5 and missed["detected_share"] == 0.5
    assert missed["top_box_iou_median"] == 1.0  # over the objects that have a detection


def test_evaluation_scores_the_runtime_zoom_pass(toy_bench):
    """evaluate --zoom scores what Detector.detect(zoom=...) returns, on the same grid."""
    ep = realbench.load("val", str(toy_bench), limit=1)[0]
    one = evaluate.YolzMethod(SHIPPED, num_threads=1)
    zoomed = evaluate.YolzMethod(SHIPPED, num_threads=1, zoom=2.0)
    assert zoomed.name.endswith(" + 2x tiles")
    objects = [one.embed(ep["views_a"][i, :4]) for i in range(ep["views_a"].shape[0])]
    base = one.score(ep["scenes"][0], objects)
    grids = zoomed.score(ep["scenes"][0], objects)
    assert grids.shape == base.shape == ep["targets"][0].shape
    assert (grids >= base - 1e-6).all() and (grids > base + 1e-3).any()
