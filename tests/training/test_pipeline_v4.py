"""Detector v4 at toy scale: a cache of Lite0 block 7 -> one trainer adapting blocks 8-10 with the
match and box heads -> resume -> export of the adapted backbone -> the runtime.

Same entry points as `make data train export`, on the toy benchmark (tests/conftest.py toy_bench;
nothing downloaded)."""
import json

import numpy as np
import pytest
import yaml

pytest.importorskip("pybullet")
torch = pytest.importorskip("torch")

from training import train  # noqa: E402
from training.data import features, realbench  # noqa: E402
from training.model import box_export, export  # noqa: E402
from training.model.backbone import Lite0Tail  # noqa: E402


@pytest.fixture(scope="module")
def toy_v4(tmp_path_factory, toy_bench):
    from training.data import photos

    mp = pytest.MonkeyPatch()
    mp.setattr(photos, "photo_files", lambda data_dir="data": {})
    photos.photo_pool.cache_clear()
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
    mp.undo()
    photos.photo_pool.cache_clear()


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


def test_export_carries_the_adapted_backbone_to_the_runtime(toy_v4):
    from yolz_ros.runtime.detector import Detector

    model = toy_v4["root"] / "model"
    export.main(["--run", str(toy_v4["run"]), "--out", str(model), "--name", "toy4"])
    box_export.main(["--model", str(model), "--boxes", str(toy_v4["run"]), "--out", str(model)])
    info = json.loads((model / "model.json").read_text())
    assert "blocks 8-10 trained" in info["training"]["backbone"]
    assert info["boxes"]["output"] == "box_distances"
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
    res = det.detect(ep["scenes"][0], det.embed_views(list(ep["views_alpha"][0, :4])).vector[None])
    assert res.probabilities.shape == (1, 30, 40) and res.boxes.shape == (30, 40, 4)
