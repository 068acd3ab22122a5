"""Losses, model shapes with dynamic K, and ONNX export parity (torch vs ONNX Runtime)."""
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from training.export import check_parity, export_graphs, store_weights_fp16, write_model_json
from training.losses import info_nce, sigmoid_focal_loss
from training.model import ModelConfig, YolzModel, mean_embedding


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return YolzModel(ModelConfig(pretrained=False)).eval()


def test_info_nce_rewards_matching_pairs():
    torch.manual_seed(0)
    a = F.normalize(torch.randn(16, 32), dim=1)
    matched = info_nce(a, a, temperature=0.07)
    shuffled = info_nce(a, a[torch.randperm(16)], temperature=0.07)
    assert matched < 0.1 < np.log(16) / 2 < shuffled
    # a lower temperature sharpens: the same matched pairs cost less
    assert info_nce(a, a, 0.05) < info_nce(a, a, 0.5)


def test_focal_loss_focuses_on_hard_cells():
    targets = torch.zeros(1, 1, 4, 4)
    targets[0, 0, 1, 1] = 1
    easy = torch.full_like(targets, -6.0)
    easy[0, 0, 1, 1] = 6.0
    hard = easy.clone()
    hard[0, 0, 2, 2] = 3.0  # a confident false positive
    assert sigmoid_focal_loss(easy, targets) < 1e-3 < sigmoid_focal_loss(hard, targets)
    # absent object (no positive cell): normalised by 1, not by zero
    assert torch.isfinite(sigmoid_focal_loss(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4)))
    # focal never exceeds plain BCE
    bce = F.binary_cross_entropy_with_logits(hard, targets, reduction="sum")
    assert sigmoid_focal_loss(hard, targets, alpha=-1) <= bce


def test_mean_embedding_is_unit_norm():
    e = mean_embedding(F.normalize(torch.randn(3, 5, 8), dim=-1))
    assert e.shape == (3, 8)
    torch.testing.assert_close(e.norm(dim=-1), torch.ones(3))


@pytest.mark.parametrize("k", [1, 3, 17])
def test_model_shapes_dynamic_k(model, k):
    with torch.no_grad():
        emb = model.embed(torch.rand(5, 3, 64, 64) * 255)
        assert emb.shape == (5, 256)
        torch.testing.assert_close(emb.norm(dim=1), torch.ones(5))
        logits = model.detect_logits(torch.rand(2, 3, 128, 96) * 255, emb[:1].expand(k, -1))
    assert logits.shape == (2, k, 8, 6)
    # each object's grid depends only on that object: K is a batch axis, not a mixing axis
    torch.testing.assert_close(logits[:, :1], logits[:, k - 1:])


def test_training_episode_backward(model):
    model.train()
    views = torch.rand(2, 3, 2, 3, 64, 64) * 255
    anchor, positive, logits = model(views, torch.rand(2, 3, 64, 64) * 255)
    assert anchor.shape == positive.shape == (3, 256) and logits.shape == (2, 3, 4, 4)
    loss = info_nce(anchor, positive, 0.07) + sigmoid_focal_loss(logits, torch.zeros_like(logits))
    loss.backward()
    assert model.fusion.film.weight.grad is not None
    assert model.object_tower.head[0].weight.grad is not None
    model.eval()


def test_export_parity_and_model_json(model, tmp_path):
    export_graphs(model, tmp_path, (64, 96), 64)
    worst = check_parity(model, tmp_path, (64, 96), 64)
    assert max(worst.values()) < 1e-4, worst
    size_fp32 = (tmp_path / "detector.onnx").stat().st_size
    for name in ("embedder.onnx", "detector.onnx"):
        store_weights_fp16(tmp_path / name)
    assert (tmp_path / "detector.onnx").stat().st_size < 0.6 * size_fp32
    assert max(check_parity(model, tmp_path, (64, 96), 64).values()) < 2e-2
    info = write_model_json(tmp_path, "t", model.cfg, (64, 96), 64, 8, 0.5, {"steps": 0})
    on_disk = json.loads((tmp_path / "model.json").read_text())
    assert on_disk == info
    assert on_disk["grid"] == {"rows": 4, "cols": 6, "stride": 16}
    assert on_disk["model_id"].startswith("t@") and len(on_disk["sha256"]) == 2
