"""The documented training pipeline end to end at toy scale: render -> train -> export -> evaluate.

Same entry points as `make data/train/export/evaluate`, on a handful of objects in a tmp folder,
so CI proves that a fresh clone can reproduce a model folder the runtime loads. (Quality is
measured on the real run; see models/yolz_lite0/report.md.)
"""
import json

import numpy as np
import pytest
import yaml

pytest.importorskip("pybullet")

from conftest import TOY_EPISODE  # noqa: E402
from training import evaluate, export, train  # noqa: E402


def test_train_export_evaluate(toy_data_dir, tmp_path):
    data_dir = toy_data_dir
    episode = {"objects_per_episode": 3, "views_per_object": 2, "view_size": 32,
               "scenes_per_episode": 2, "scene_size": [64, 64], "tabletop_fraction": 0.0,
               "tuxpaint_fraction": 0.0, "data_dir": str(data_dir)}
    config = tmp_path / "toy.yaml"
    config.write_text(yaml.safe_dump({"steps": 2, "warmup_steps": 1, "ckpt_every": 2,
                                      "log_every": 1, "data": episode}))
    run = tmp_path / "run"
    train.main(["--config", str(config), "--out", str(run)])
    assert (run / "last.pt").is_file() and (run / "tb").is_dir()
    assert json.loads((run / "config.json").read_text())["steps"] == 2

    model = tmp_path / "model"
    export.main(["--run", str(run), "--out", str(model), "--name", "toy"])
    info = json.loads((model / "model.json").read_text())
    assert info["input_size"] == [64, 64] and info["grid"]["rows"] == 4
    assert info["training"]["steps"] == 2

    evaluate.main(["--model", str(model), "--split", "test", "--benchmark", "urdf", "--scenes", "2",
                   "--data-dir", str(data_dir), "--episode", *TOY_EPISODE])
    result = json.loads((model / "evaluation.json").read_text())
    assert set(result["by_n"]) == {"1", "4", "8"}
    overall = result["by_n"]["8"]["overall"]
    assert overall["pairs"] == 2 * 3
    assert 0.0 <= overall["cell_ap"] <= 1.0 or np.isnan(overall["cell_ap"])
    assert (model / "evaluation.md").is_file() and (model / "evaluation.png").is_file()


def test_init_starts_a_new_run_from_another_runs_weights(toy_data_dir, tmp_path):
    import torch

    episode = {"objects_per_episode": 3, "views_per_object": 2, "view_size": 32,
               "scenes_per_episode": 1, "scene_size": [64, 64], "tabletop_fraction": 0.0,
               "tuxpaint_fraction": 0.0, "data_dir": str(toy_data_dir)}
    first, second = tmp_path / "first.yaml", tmp_path / "second.yaml"
    first.write_text(yaml.safe_dump({"steps": 1, "warmup_steps": 1, "data": episode}))
    # lr 0: the second run's step leaves the parameters exactly where --init put them.
    second.write_text(yaml.safe_dump({"steps": 1, "warmup_steps": 1, "lr": 0.0, "seed": 5,
                                      "data": episode}))
    train.main(["--config", str(first), "--out", str(tmp_path / "a")])
    train.main(["--config", str(second), "--out", str(tmp_path / "b"),
                "--init", str(tmp_path / "a" / "last.pt")])
    a = torch.load(tmp_path / "a" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "last.pt", weights_only=True)
    assert b["step"] == 1  # a new schedule, not a resume of a's
    params = [k for k in a["model"] if k.endswith((".weight", ".bias"))]
    assert params and all(torch.equal(a["model"][k], b["model"][k]) for k in params)
    cfg = json.loads((tmp_path / "b" / "config.json").read_text())
    assert cfg["init"] == str(tmp_path / "a" / "last.pt")
