"""Detector v3 at toy scale: box labels -> features -> box head training + resume -> attached to
the shipped detector -> the runtime's boxes and the evaluation's box metrics.

Same entry points as `make data train-boxes export-boxes evaluate`, on the toy benchmark
(tests/conftest.py toy_bench; nothing downloaded)."""
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import yaml

pytest.importorskip("pybullet")
torch = pytest.importorskip("torch")

from gpu_machine import run_as_on_a_gpu_machine  # noqa: E402
from training import train_boxes  # noqa: E402
from training.data import features, realbench  # noqa: E402
from training.evaluation import evaluate  # noqa: E402
from training.evaluation.metrics import box_metrics  # noqa: E402
from training.model import box_export  # noqa: E402
from training.model.boxes import BoxHead, box_targets, distances_to_boxes  # noqa: E402
from yolz_ros.runtime.decode import regressed_box, regressed_boxes  # noqa: E402
from yolz_ros.runtime.geometry import Letterbox  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "models" / "yolz_tokens"


@pytest.fixture(scope="module")
def toy_v3(tmp_path_factory, toy_bench):
    from training.data import photos

    mp = pytest.MonkeyPatch()
    mp.setattr(photos, "photo_files", lambda data_dir="data": {})
    photos.photo_pool.cache_clear()
    root = tmp_path_factory.mktemp("v3")
    feats = root / "features"
    bench = realbench.bench_dir("val", str(toy_bench))
    features.main(["--split", "val", "--from-bench", str(bench), "--out", str(feats),
                   "--data-dir", str(toy_bench)])
    config = root / "boxes.yaml"
    small = yaml.safe_load((ROOT / "training" / "configs" / "boxes_small.yaml").read_text())
    config.write_text(yaml.safe_dump({**small, "train_features": str(feats),
                                      "val_features": str(feats)}))
    run = root / "run"
    train_boxes.main(["--config", str(config), "--out", str(run)])
    model = root / "model"
    box_export.main(["--model", str(SHIPPED), "--boxes", str(run), "--out", str(model),
                     "--name", "toy3", "--no-alpha", "grabcut"])
    yield {"data": toy_bench, "feats": feats, "config": config, "run": run, "model": model}
    mp.undo()
    photos.photo_pool.cache_clear()


def test_episodes_and_features_carry_visible_boxes(toy_v3):
    ep = realbench.load("val", str(toy_v3["data"]))[0]
    with np.load(next(toy_v3["feats"].glob("episode_*.npz"))) as z:
        np.testing.assert_array_equal(z["boxes"], ep["boxes"])
    present = ep["present"]
    assert np.isfinite(ep["boxes"][present]).all()
    # the box holds every cell the cell rule gives the object
    s, c = np.argwhere(present)[0]
    rows, cols = np.nonzero(ep["targets"][s, c] > 0.5)
    x0, y0, x1, y1 = ep["boxes"][s, c]
    assert x0 < (cols.max() + 1) * 16 and x1 > cols.min() * 16
    assert y0 < (rows.max() + 1) * 16 and y1 > rows.min() * 16


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


def test_train_resume_and_checkpoint_config(toy_v3):
    run = toy_v3["run"]
    ck = torch.load(run / "last.pt", weights_only=True)
    assert ck["step"] == 6 and json.loads(ck["box_config"])["width"] == 8
    assert (run / "best.pt").is_file() and (run / "tb").is_dir()
    cfg = yaml.safe_load(toy_v3["config"].read_text())
    longer = toy_v3["config"].with_name("longer.yaml")
    longer.write_text(yaml.safe_dump({**cfg, "steps": 8}))
    train_boxes.main(["--config", str(longer), "--out", str(run), "--resume"])
    assert torch.load(run / "last.pt", weights_only=True)["step"] == 8


def test_attached_head_keeps_probabilities_and_gives_boxes_for_any_k(toy_v3):
    from yolz_ros.runtime.detector import Detector

    info = json.loads((toy_v3["model"] / "model.json").read_text())
    assert info["boxes"]["output"] == "box_distances"
    assert info["object_tokens"]["no_alpha"] == "grabcut"
    v3 = Detector(toy_v3["model"], backend="onnxruntime", device="cpu")
    source = Detector(SHIPPED, backend="onnxruntime", device="cpu")  # its head is replaced
    assert v3.info.outputs == ("probabilities", "box_distances")
    ops = {n.op_type for n in onnx.load(str(toy_v3["model"] / "detector.onnx")).graph.node}
    assert "Einsum" not in ops and "MatMul" in ops  # the similarity as one GEMM
    ep = realbench.load("val", str(toy_v3["data"]))[0]
    objects = np.stack([source.embed_views(list(ep["views_alpha"][i, :4])).vector
                        for i in range(3)])
    for k in (1, 3):
        a = v3.detect(ep["scenes"][0], objects[:k])
        b = source.detect(ep["scenes"][0], objects[:k])
        np.testing.assert_array_equal(a.probabilities, b.probabilities)
        assert a.object_boxes.shape == (30, 40, 4)
        assert not np.allclose(a.object_boxes, b.object_boxes)  # the toy head, not the shipped
        if k == 1:
            first = a.object_boxes
    np.testing.assert_allclose(a.object_boxes, first, atol=1e-4)  # K-independent
    for peaks, grid in zip(v3.peaks(a, 0.3), a.probabilities):
        if not peaks:
            continue
        top = peaks[0]
        r, c = np.unravel_index(int(np.argmax(grid)), grid.shape)
        assert (top.x_min, top.y_min, top.x_max, top.y_max) == regressed_box(
            a.object_boxes, grid, (r, c), 0.3)


def test_evaluation_reports_box_metrics(toy_v3):
    evaluate.main(["--model", str(toy_v3["model"]), "--split", "val",
                   "--data-dir", str(toy_v3["data"])])
    res = json.loads((toy_v3["model"] / "evaluation_real.json").read_text())
    overall = res["alpha"]["by_n"]["8"]["overall"]
    for key in ("box_ap50", "box_ap", "top_box_iou_median"):
        assert key in overall
    assert "Boxes:" in (toy_v3["model"] / "evaluation_real.md").read_text()


def test_evaluation_scores_the_runtime_zoom_pass(toy_v3):
    """evaluate --zoom scores what Detector.detect(zoom=...) returns, on the same grid."""
    ep = realbench.load("val", str(toy_v3["data"]), limit=1)[0]
    one = evaluate.YolzMethod(SHIPPED, num_threads=1)
    zoomed = evaluate.YolzMethod(SHIPPED, num_threads=1, zoom=2.0)
    assert zoomed.name.endswith(" + 2x tiles")
    objects = [one.embed(ep["views_a"][i, :4]) for i in range(ep["views_a"].shape[0])]
    base = one.score(ep["scenes"][0], objects)
    grids = zoomed.score(ep["scenes"][0], objects)
    assert grids.shape == base.shape == ep["targets"][0].shape
    assert (grids >= base - 1e-6).all() and (grids > base + 1e-3).any()


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


def test_box_training_runs_with_only_what_a_gpu_machine_has(toy_v3, tmp_path):
    """The GPU script at toy scale on the CPU: train_boxes with a JSON config while PyYAML,
    TensorBoard, PyBullet and ROS cannot be imported; `--device cpu` here, `--device cuda` there."""
    cfg = yaml.safe_load(toy_v3["config"].read_text())
    config = tmp_path / "boxes.json"
    config.write_text(json.dumps(cfg))
    out = run_as_on_a_gpu_machine("training.train_boxes", ["--config", config, "--out",
                                                           tmp_path / "run", "--device", "cpu"])
    assert out.returncode == 0, out.stderr[-2000:]
    assert "tensorboard is not installed" in out.stdout
    ck = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert ck["step"] == cfg["steps"]
