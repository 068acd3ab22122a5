"""Detector v4 at toy scale: a cache of Lite0 block 7 -> one trainer adapting blocks 8-10 with the
match and box heads -> resume -> export of the adapted backbone -> the runtime.

Same entry points as `make data train export`, on the toy benchmark (tests/conftest.py toy_bench;
nothing downloaded)."""
import json

import numpy as np
import pytest
import yaml
from photo_free import skimage_photos_only

pytest.importorskip("pybullet")
torch = pytest.importorskip("torch")

from training import train  # noqa: E402
from training.data import features, realbench  # noqa: E402
from training.evaluation import evaluate  # noqa: E402
from training.model import export  # noqa: E402
from training.model.backbone import Lite0Tail  # noqa: E402
from yolz_ros.runtime.decode import regressed_box, regressed_boxes  # noqa: E402
from yolz_ros.runtime.geometry import letterbox  # noqa: E402


@pytest.fixture(scope="module")
def toy_v4(tmp_path_factory, toy_bench):
    with skimage_photos_only():
        root = tmp_path_factory.mktemp("v4")
        bench = realbench.bench_dir("val", str(toy_bench))
        feats = root / "features_b7"
        features.main(["--split", "val", "--from-bench", str(bench), "--out", str(feats),
                       "--data-dir", str(toy_bench), "--block", "7"])
        config = root / "v4.yaml"
        base = {"steps": 2, "warmup_steps": 1, "episodes_per_step": 1, "eval_every": 2,
                "ckpt_every": 1, "log_every": 1, "threads": 1, "train_features": str(feats),
                "val_features": str(feats), "train_projection": True, "backbone_lr": 1e-3,
                "w_boxes": 1.0, "boxes": {"width": 8}, "model": {"object_tokens": 9},
                "view_sample": 2}
        config.write_text(yaml.safe_dump(base))
        run = root / "run"
        train.main(["--config", str(config), "--out", str(run)])
        yield {"root": root, "data": toy_bench, "feats": feats, "config": config, "run": run,
               "base": base}


def test_cache_holds_block_7(toy_v4):
    with np.load(next(toy_v4["feats"].glob("episode_*.npz"))) as z:
        assert int(z["feature_block"]) == 7
        assert z["scene"].shape[1:] == (80, 30, 40)  # block 7: 80 channels, stride 16
        assert z["views_128"].shape[3:] == (80, 8, 8)


def test_a_view_sample_gives_the_same_tokens_as_all_views(toy_v4):
    """A step's view sample runs only those views through the tail, with the same tokens."""
    trained, cfg, mcfg = train.Trainable.from_checkpoint(
        torch.load(toy_v4["run"] / "last.pt", weights_only=True))
    ep = train.load_episode(sorted(toy_v4["feats"].glob("episode_*.npz"))[0], mcfg)
    picked = np.array([1, 3])
    with torch.no_grad():
        every = train.episode_tokens(trained.eval(), ep, mcfg.view_sizes)
        some = train.episode_tokens(trained, ep, mcfg.view_sizes, views=picked)
    for s in mcfg.view_sizes:
        assert some[s][0].shape[1] == 2
        torch.testing.assert_close(some[s][0], every[s][0][:, picked], atol=1e-5, rtol=1e-4)
        assert torch.equal(some[s][1], every[s][1][:, picked])


def test_one_checkpoint_adapts_the_tail_and_trains_boxes(toy_v4):
    ck = torch.load(toy_v4["run"] / "last.pt", weights_only=True)
    assert ck["step"] == 2 and json.loads(ck["config"])["feature_block"] == 7
    assert {k.split(".")[1] for k in ck["backbone"]} == {"8", "9", "10"}
    imagenet = Lite0Tail(8).backbone_state()
    changed = [k for k, v in ck["backbone"].items()
               if v.dtype.is_floating_point and not torch.equal(v, imagenet[k])]
    assert any(".running_" not in k for k in changed)  # the weights learn ...
    assert not any(".running_" in k for k in changed)  # ... BatchNorm keeps ImageNet's statistics
    assert ck["boxes"] and "box_centre_iou_median" in json.loads(ck["val"])
    longer = toy_v4["config"].with_name("longer.yaml")
    longer.write_text(yaml.safe_dump({**toy_v4["base"], "steps": 3}))
    train.main(["--config", str(longer), "--out", str(toy_v4["run"]), "--resume"])
    assert torch.load(toy_v4["run"] / "last.pt", weights_only=True)["step"] == 3


def test_frozen_backbone_stays_imagenet(toy_v4, tmp_path):
    config = tmp_path / "frozen.yaml"
    config.write_text(yaml.safe_dump({**toy_v4["base"], "steps": 1, "backbone_lr": 0.0}))
    train.main(["--config", str(config), "--out", str(tmp_path / "run")])
    ck = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    imagenet = Lite0Tail(8).backbone_state()
    assert all(torch.equal(v, imagenet[k]) for k, v in ck["backbone"].items())


def test_validation_features_of_another_block_are_refused(toy_v4, tmp_path, toy_bench):
    other = tmp_path / "b10"
    bench = realbench.bench_dir("val", str(toy_bench))
    features.main(["--split", "val", "--from-bench", str(bench), "--out", str(other),
                   "--data-dir", str(toy_bench)])
    config = tmp_path / "mixed.yaml"
    config.write_text(yaml.safe_dump({**toy_v4["base"], "val_features": str(other)}))
    with pytest.raises(SystemExit, match="--block 7"):
        train.main(["--config", str(config), "--out", str(tmp_path / "run")])


@pytest.fixture(scope="module")
def toy_v4_model(toy_v4):
    """The toy run exported as `make export` does: adapted tail, box head, GrabCut views."""
    model = toy_v4["root"] / "model"
    export.main(["--run", str(toy_v4["run"]), "--out", str(model), "--name", "toy4",
                 "--no-alpha", "grabcut"])
    return model


def test_episodes_and_features_carry_visible_boxes(toy_v4):
    ep = realbench.load("val", str(toy_v4["data"]))[0]
    with np.load(sorted(toy_v4["feats"].glob("episode_*.npz"))[0]) as z:
        np.testing.assert_array_equal(z["boxes"], ep["boxes"])
    present = ep["present"]
    assert np.isfinite(ep["boxes"][present]).all()
    # the box holds every cell the cell rule gives the object
    s, c = np.argwhere(present)[0]
    rows, cols = np.nonzero(ep["targets"][s, c] > 0.5)
    x0, y0, x1, y1 = ep["boxes"][s, c]
    assert x0 < (cols.max() + 1) * 16 and x1 > cols.min() * 16
    assert y0 < (rows.max() + 1) * 16 and y1 > rows.min() * 16


def test_export_carries_the_adapted_backbone_to_the_runtime(toy_v4, toy_v4_model):
    from yolz_ros.runtime.detector import Detector

    model = toy_v4_model
    info = json.loads((model / "model.json").read_text())
    assert "blocks 8-10 trained" in info["training"]["backbone"]
    assert info["boxes"]["output"] == "box_distances"
    assert info["object_tokens"]["no_alpha"] == "grabcut"
    assert info["training"]["parity"]["boxes_px"] < export.BOX_TOL_PX
    # the exported embedder is the trained tail's: its tokens match the trainer's on a cached view
    best = torch.load(toy_v4["run"] / "best.pt", weights_only=True)
    trained, _, mcfg = train.Trainable.from_checkpoint(best)
    frozen = export.MatchModel(export.MatchConfig(**{**mcfg.__dict__, "pretrained": True}))
    frozen.head.load_state_dict(best["head"])  # the same head on the ImageNet backbone
    det = Detector(model, backend="onnxruntime", device="cpu")
    ep = realbench.load("val", str(toy_v4["data"]))[0]
    view = ep["views_alpha"][0, 0]
    img, _ = features.prepared_views(view, 128, mcfg)
    x = torch.from_numpy(img.transpose(2, 0, 1)[None].astype(np.float32))
    with torch.no_grad():
        ref = export.load_run(toy_v4["run"])[1].view_tokens(x).numpy()
        imagenet = frozen.view_tokens(x)
    got = det.backend.embed(x.numpy())
    got = got[0] if isinstance(got, (list, tuple)) else got
    np.testing.assert_allclose(got, ref, atol=2e-2)
    assert trained.tail.first == 8
    assert np.abs(got - imagenet.numpy()).max() > 5e-2  # not the ImageNet backbone's tokens


def test_exported_boxes_are_the_trained_heads_for_any_k(toy_v4, toy_v4_model):
    """One box map per frame, whatever K: the trained box head's on the adapted features, and
    each peak's box is read from it at the peak."""
    from yolz_ros.runtime.detector import Detector

    det = Detector(toy_v4_model, backend="onnxruntime", device="cpu")
    assert det.info.outputs == ("probabilities", "box_distances")
    ep = realbench.load("val", str(toy_v4["data"]))[0]
    objects = np.stack([det.embed_views(list(ep["views_alpha"][i, :4])).vector
                        for i in range(3)])
    one = det.detect(ep["scenes"][0], objects[:1])
    three = det.detect(ep["scenes"][0], objects)
    assert one.object_boxes.shape == (30, 40, 4)
    np.testing.assert_allclose(three.object_boxes, one.object_boxes, atol=1e-4)  # K-independent
    np.testing.assert_allclose(three.probabilities[:1], one.probabilities, atol=1e-5)
    _, model, boxes, _ = export.load_run(toy_v4["run"])  # the torch head on the same input
    canvas, lb = letterbox(ep["scenes"][0], det.info.input_size, det.info.pad_value)
    with torch.no_grad():
        x = torch.from_numpy(canvas.transpose(2, 0, 1)[None].astype(np.float32))
        ref = boxes(model.backbone(x))[0].permute(1, 2, 0).numpy() * 16
    np.testing.assert_allclose(one.object_boxes, regressed_boxes(ref, lb, 16,
                                                                 ep["scenes"][0].shape[:2]),
                               atol=2 * export.BOX_TOL_PX / lb.scale)
    for peaks, grid in zip(det.peaks(three, 0.0), three.probabilities):
        top = peaks[0]
        r, c = np.unravel_index(int(np.argmax(grid)), grid.shape)
        assert (top.x_min, top.y_min, top.x_max, top.y_max) == regressed_box(
            three.object_boxes, grid, (r, c), 0.0)


def test_evaluation_and_the_ablation_table(toy_v4, toy_v4_model):
    """evaluate.py through the runtime -> ablation_v4.json -> the report's v4 section; a split not
    evaluated yet is named as missing, not left out silently."""
    from training.evaluation import ablation_v4, model_report

    out = toy_v4["root"] / "eval" / "val"
    evaluate.main(["--model", str(toy_v4_model), "--split", "val",
                   "--data-dir", str(toy_v4["data"]), "--out", str(out)])
    res = json.loads((out / "evaluation_real.json").read_text())
    overall = res["alpha"]["by_n"]["8"]["overall"]
    for key in ("box_ap50", "box_ap", "top_box_iou_median"):
        assert key in overall
    # one product family per toy episode: every absent product has a sibling in some scene
    assert overall["sibling_queries"] > 0 and 0 <= overall["fpr_at_95_tpr_siblings"] <= 1
    assert "Boxes:" in (out / "evaluation_real.md").read_text()
    ab_path = toy_v4["root"] / "ablation_v4.json"
    ablation_v4.main(["--row", f"toy={toy_v4['run']}:{out.parent}", "--out", str(ab_path)])
    ab = json.loads(ab_path.read_text())
    row = ab["rows"][0]
    assert row["val"]["alpha"]["8"]["presence_auroc"] == round(overall["presence_auroc"], 6)
    assert row["training"]["backbone_lr"] == 1e-3 and row["training"]["feature_block"] == 7
    assert "test" not in row and ab["missing"] == [
        f"toy: test ({out.parent / 'test' / 'evaluation_real.json'})"]
    section = "\n".join(model_report.ablation_v4_section(ab, ""))
    assert "| toy | val |" in section and "blocks 8-10 at lr 0.001" in section
    assert "Not evaluated yet: toy: test" in section
    # a fresh machine: the run is gone, its row stays as measured; a row never trained is missing
    ablation_v4.main(["--row", f"toy={toy_v4['root'] / 'gone'}:{out.parent}",
                      "--row", f"new={toy_v4['root'] / 'never'}:{out.parent}",
                      "--out", str(ab_path)])
    again = json.loads(ab_path.read_text())
    assert again["rows"] == [{**row, "kept": True}]
    assert again["missing"] == [f"new: not trained yet ({toy_v4['root'] / 'never'})"]
    kept = "\n".join(model_report.ablation_v4_section(again, ""))
    assert "earlier machine (their runs are not on the one that wrote this file): toy." in kept


def test_blocks_5_10_train_from_a_block_4_cache_and_export(toy_v4, tmp_path, toy_bench):
    """The ablation's deeper row: a block-4 cache (stride 8, 40 channels), blocks 5-10 adapted,
    exported with the tail the runtime runs."""
    from yolz_ros.runtime.detector import Detector

    feats = tmp_path / "features_b4"
    with skimage_photos_only():
        features.main(["--split", "val", "--from-bench",
                       str(realbench.bench_dir("val", str(toy_bench))), "--out", str(feats),
                       "--data-dir", str(toy_bench), "--block", "4"])
    with np.load(next(feats.glob("episode_*.npz"))) as z:
        assert int(z["feature_block"]) == 4 and z["scene"].shape[1:] == (40, 60, 80)
    config = tmp_path / "b5.yaml"
    config.write_text(yaml.safe_dump({**toy_v4["base"], "steps": 1, "train_features": str(feats),
                                      "val_features": str(feats)}))
    train.main(["--config", str(config), "--out", str(tmp_path / "run")])
    ck = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert {k.split(".")[1] for k in ck["backbone"]} == {str(b) for b in range(5, 11)}
    export.main(["--run", str(tmp_path / "run"), "--out", str(tmp_path / "model"), "--name",
                 "toy5", "--no-alpha", "grabcut"])
    info = json.loads((tmp_path / "model" / "model.json").read_text())
    assert "blocks 5-10 trained" in info["training"]["backbone"]
    det = Detector(str(tmp_path / "model"), backend="onnxruntime", device="cpu")
    ep = realbench.load("val", str(toy_bench))[0]
    obj = det.embed_views(list(ep["views_a"][0, :2]))
    assert det.detect(ep["scenes"][0], obj.vector[None]).probabilities.shape[0] == 1


def test_tail_pads_inside_its_convs_with_the_same_output():
    """Lite0Tail folds symmetric TF-'same' padding into conv2d: the ImageNet blocks' output
    unchanged, no padding copy left in blocks 8-10 (block 5's stride-2 conv keeps its own)."""
    from training.model.backbone import lite0_backbone

    tail, reference = Lite0Tail(5), lite0_backbone(True)._blocks[5:11].eval()
    pads = {n.split(".")[1] for n, m in tail.named_modules()
            if isinstance(getattr(m, "static_padding", None), torch.nn.ZeroPad2d)}
    assert pads == {"0"}  # tail block 0 = Lite0 block 5
    x = torch.randn(1, 40, 16, 20)
    with torch.no_grad():
        expected = x
        for block in reference:
            expected = block(expected)
        torch.testing.assert_close(tail.eval()(x), expected, rtol=0, atol=1e-5)


@pytest.fixture(scope="module")
def toy_frozen_model(toy_v4):
    """A frozen-backbone toy run, exported: the first stage that init_from starts from."""
    root = toy_v4["root"]
    config = root / "frozen.yaml"
    config.write_text(yaml.safe_dump({**toy_v4["base"], "steps": 2, "backbone_lr": 0.0}))
    train.main(["--config", str(config), "--out", str(root / "frozen_run")])
    export.main(["--run", str(root / "frozen_run"), "--out", str(root / "frozen_model"),
                 "--name", "toy4f", "--no-alpha", "grabcut"])
    return root / "frozen_run", root / "frozen_model"


def _trained_heads(run):
    ck = torch.load(run / "best.pt", weights_only=True)
    return ck["head"], ck["boxes"]


def test_warm_start_reads_the_trained_heads_out_of_the_onnx_graph(toy_v4, toy_frozen_model):
    from training.model.boxes import BoxConfig, BoxHead
    from training.model.match import MatchConfig, MatchHead
    from training.model.warm_start import load_heads

    run, model = toy_frozen_model
    cfg = json.loads((run / "config.json").read_text())
    head, boxes = MatchHead(MatchConfig(**cfg["model"])), BoxHead(BoxConfig(**cfg["boxes"]))
    load_heads(model, head, boxes)
    want_head, want_boxes = _trained_heads(run)
    for got, want in ((head.state_dict(), want_head), (boxes.state_dict(), want_boxes)):
        assert got.keys() == want.keys()
        for k in want:  # FP16-stored weights: equal to half precision
            torch.testing.assert_close(got[k], want[k], atol=2e-3, rtol=2e-3)


def test_warm_start_refuses_a_mapping_the_graph_does_not_reproduce(toy_frozen_model,
                                                                      monkeypatch):
    from training.model import warm_start
    from training.model.boxes import BoxConfig, BoxHead
    from training.model.match import MatchConfig, MatchHead

    run, model = toy_frozen_model
    cfg = json.loads((run / "config.json").read_text())
    swapped = {**warm_start._FOLDED, "match_scale": ("Add", False), "match_shift": ("Mul", False)}
    monkeypatch.setattr(warm_start, "_FOLDED", swapped)
    with pytest.raises(SystemExit, match="differ from detector.onnx"):
        warm_start.load_heads(model, MatchHead(MatchConfig(**cfg["model"])),
                              BoxHead(BoxConfig(**cfg["boxes"])))


def test_init_from_starts_the_run_from_the_frozen_models_heads(toy_v4, toy_frozen_model,
                                                               tmp_path):
    run, model = toy_frozen_model
    config = tmp_path / "ft.yaml"
    config.write_text(yaml.safe_dump({**toy_v4["base"], "steps": 2, "lr": 1e-9,
                                      "backbone_lr": 1e-9, "init_from": str(model)}))
    train.main(["--config", str(config), "--out", str(tmp_path / "ft")])
    want_head, _ = _trained_heads(run)
    got = torch.load(tmp_path / "ft" / "last.pt", weights_only=True)["head"]
    for k in want_head:  # a learning rate of 1e-9: still the frozen model's heads
        torch.testing.assert_close(got[k], want_head[k], atol=2e-3, rtol=2e-3)
