"""The v2 pipeline end to end at toy scale: benchmark -> features -> train -> export -> evaluate,
and the runtime reading the exported folder exactly as training saw its views.

Same entry points as `make realbench / data / train / export / evaluate`, on the toy benchmark
(tests/conftest.py toy_bench: one product family; photos from scikit-image only, so nothing is
downloaded).
"""
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

from gpu_machine import run_as_on_a_gpu_machine  # noqa: E402


@pytest.fixture(scope="module")
def toy_v2(tmp_path_factory, toy_bench):
    with skimage_photos_only():
        root = tmp_path_factory.mktemp("v2")
        data = toy_bench
        bench = realbench.bench_dir("val", str(data))
        feats = root / "features"
        features.main(["--split", "val", "--from-bench", str(bench), "--out", str(feats),
                             "--data-dir", str(data)])
        config = root / "toy.yaml"
        config.write_text(yaml.safe_dump({
            "steps": 3, "warmup_steps": 1, "episodes_per_step": 1, "eval_every": 3, "ckpt_every": 3,
            "log_every": 1, "threads": 1, "train_features": [str(feats)],  # a list of folders
            "val_features": str(feats), "model": {"object_tokens": 9}}))
        run = root / "run"
        train.main(["--config", str(config), "--out", str(run)])
        model = root / "model"
        export.main(["--run", str(run), "--out", str(model), "--name", "toy2"])
        yield {"root": root, "data": data, "feats": feats, "config": config, "run": run,
               "model": model}


def test_features_train_resume(toy_v2):
    run = toy_v2["run"]
    assert (run / "best.pt").is_file() and (run / "last.pt").is_file() and (run / "tb").is_dir()
    ckpt = torch.load(run / "last.pt", weights_only=True)
    assert ckpt["step"] == 3 and json.loads(ckpt["config"])["model"]["object_tokens"] == 9
    train.main(["--config", str(toy_v2["config"]), "--out", str(run), "--resume",
                      "--steps", "4"])
    assert torch.load(run / "last.pt", weights_only=True)["step"] == 4


def test_match_training_runs_with_only_what_a_gpu_machine_has(toy_v2, tmp_path):
    """The match head's trainer from cached features with a JSON config while PyYAML,
    TensorBoard, PyBullet and ROS cannot be imported; `--device cpu` here, `--device cuda` there."""
    config = tmp_path / "match.json"
    config.write_text(json.dumps(yaml.safe_load(toy_v2["config"].read_text())))
    out = run_as_on_a_gpu_machine("training.train", ["--config", config, "--out",
                                                     tmp_path / "run", "--device", "cpu"])
    assert out.returncode == 0, out.stderr[-2000:]
    assert "tensorboard is not installed" in out.stdout
    ck = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert ck["step"] == 3 and json.loads(ck["config"])["model"]["object_tokens"] == 9


def test_export_evaluate_and_dynamic_k(toy_v2):
    from yolz_ros.runtime.detector import Detector

    model = toy_v2["model"]
    info = json.loads((model / "model.json").read_text())
    assert info["format"] == "yolz-model/2" and info["input_size"] == [480, 640]
    assert info["grid"] == {"rows": 30, "cols": 40, "stride": 16}
    assert info["embedding_dim"] == 9 * info["object_tokens"]["dim"]
    assert max(info["training"]["parity"].values()) < 2e-2
    assert info["training"]["data"].startswith("2 training episodes of the train split")
    assert str(toy_v2["feats"]) in info["training"]["data"]

    det = Detector(model, backend="onnxruntime", device="cpu")
    ep = realbench.load("val", str(toy_v2["data"]))[0]
    objects = [det.embed_views(list(ep["views_alpha"][i, :4])).vector for i in range(3)]
    res = det.detect(ep["scenes"][0], np.stack(objects))
    assert res.probabilities.shape == (3, 30, 40) and res.boxes.shape == (30, 40, 4)
    one = det.detect(ep["scenes"][0], np.stack(objects[1:2]))
    np.testing.assert_allclose(one.probabilities[0], res.probabilities[1], atol=1e-5)

    evaluate.main(["--model", str(model), "--split", "val", "--data-dir", str(toy_v2["data"])])
    result = json.loads((model / "evaluation_real.json").read_text())
    assert set(result) >= {"meta", "alpha", "photo"}
    assert set(result["alpha"]["by_n"]) == {"1", "4", "8"}
    assert result["alpha"]["by_n"]["8"]["overall"]["pairs"] == 2 * 2 * 4


def test_runtime_sees_the_training_views_pixel_for_pixel(toy_v2):
    """A view goes through the runtime (Detector.embed_views) exactly as training prepared it:
    the same pixels at every view size, and the same object tokens."""
    from training.model.match import MatchConfig
    from yolz_ros.runtime.detector import Detector

    det = Detector(toy_v2["model"], backend="onnxruntime", device="cpu")
    seen = []
    embed = det.backend.embed
    det.backend.embed = lambda batch: (seen.append(batch.copy()), embed(batch))[1]
    ep = realbench.load("val", str(toy_v2["data"]))[0]
    views = [ep["views_alpha"][0, j] for j in range(3)]
    got = det.embed_views(views)
    assert [b.shape[-1] for b in seen] == list(det.info.view_sizes)
    spec = det.info.tokens
    rule = MatchConfig(pretrained=False, min_alpha_fraction=spec.min_alpha_fraction,
                       no_alpha_centre=spec.no_alpha_centre)
    for s, batch in zip(det.info.view_sizes, seen):
        for view, pixels in zip(views, batch):
            img, _ = features.prepared_views(view, s, rule)
            assert np.array_equal(pixels.transpose(1, 2, 0), img.astype(np.float32))

    model, _, mcfg = train.Trainable.from_checkpoint(
        torch.load(toy_v2["run"] / "best.pt", weights_only=True))
    feats = train.load_features(toy_v2["feats"])[0]
    with torch.no_grad():
        tokens = train.episode_tokens(model, feats, mcfg.view_sizes)
        slots = train.object_slots(train.pooled(tokens, 0, torch.arange(3), 0),
                                         mcfg.object_tokens).numpy()
    runtime = got.vector.reshape(spec.count, spec.dim)
    np.testing.assert_allclose(runtime[0], slots[0], atol=2e-2)  # FP16 weights and features
    assert runtime.shape == slots.shape


def test_stride8_features_train_a_fine_grid(toy_v2, tmp_path, photo_free):
    """features.py --stride8's side file (the stride-8 stage and the cell rule at stride 8) and
    the trainer's cell_stride 8 (FineGridHead), scored on the benchmark's stride-16 cells."""
    from training.model.match import FineGridHead, MatchConfig

    data = str(toy_v2["data"])
    cfg = realbench.RealConfig(split="val", data_dir=data, families_per_episode=1,
                               stamps_per_episode=0, scenes_per_episode=2)
    ep = realbench.make_episode(realbench.ObjectSource("val", data, with_stamps=False), cfg,
                                np.random.default_rng(1))
    side = features.stride8_features(features.OrtBackbone(data, last_block=4), ep, cfg)
    c = ep["present"].shape[1]
    assert side["scene8"].shape == (2, 40, 60, 80) and side["targets8"].shape == (2, c, 60, 80)
    # the same objects are positive at both strides, each within its stride-16 positives' area
    has8, has16 = side["targets8"].any(axis=(2, 3)), ep["targets"].any(axis=(2, 3))
    assert np.array_equal(has8, has16) and np.array_equal(has16, ep["present"])
    near16 = np.repeat(np.repeat(ep["targets"], 2, axis=2), 2, axis=3)
    assert (side["targets8"] <= near16 + 1e-6).mean() > 0.99
    main_dir, side_dir = tmp_path / "f", tmp_path / "f8"
    main_dir.mkdir(), side_dir.mkdir()
    features._save(main_dir / "episode_0000.npz",
                   features.episode_features(features.OrtBackbone(data), ep, MatchConfig()))
    features._save(side_dir / "episode_0000.npz", side)
    config = tmp_path / "fine.yaml"
    config.write_text(yaml.safe_dump({
        "steps": 2, "warmup_steps": 1, "episodes_per_step": 1, "eval_every": 2, "log_every": 1,
        "threads": 1, "train_features": str(main_dir), "val_features": str(main_dir),
        "cell_stride": 8, "train_features8": str(side_dir), "val_features8": str(side_dir),
        "model": {"object_tokens": 9}}))
    train.main(["--config", str(config), "--out", str(tmp_path / "run")])
    ck = torch.load(tmp_path / "run" / "best.pt", weights_only=True)
    mcfg = json.loads(ck["config"])["model"]
    FineGridHead(MatchConfig(**mcfg)).load_state_dict(ck["head"])  # strict: the fine head's keys
    val = json.loads(ck["val"])
    assert 0 <= val["cell_ap_own_grid"] <= 1 and 0 <= val["cell_ap"] <= 1
    with pytest.raises(SystemExit, match="cell_stride 8"):  # an experiment: it does not export
        export.main(["--run", str(tmp_path / "run"), "--out", str(tmp_path / "model")])
