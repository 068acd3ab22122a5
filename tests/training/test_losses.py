"""The v2 training losses (training/model/losses.py): InfoNCE and sigmoid focal loss on cells."""
import numpy as np
import torch
import torch.nn.functional as F

from training.model.losses import info_nce, sigmoid_focal_loss


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
