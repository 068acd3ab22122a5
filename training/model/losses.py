"""The yolz losses: InfoNCE over mean-of-N object embeddings, and sigmoid focal loss on cells."""
import torch
import torch.nn.functional as F


def info_nce(anchor, positive, temperature: float):
    """Symmetric InfoNCE between two mean-of-N embeddings of the same C objects.

    anchor, positive: [C, E], unit norm; row i of each is object i. Every other object in the batch is
    a negative. Unlike the seed's sum of log-softmax, the temperature sharpens the softmax so that
    unit-norm cosines (in [-1, 1]) can produce confident, well-separated distributions.
    """
    logits = anchor @ positive.t() / temperature  # [C, C]
    labels = torch.arange(anchor.shape[0], device=anchor.device)
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels))


def sigmoid_focal_loss(logits, targets, alpha: float = 0.25, gamma: float = 2.0):
    """Focal loss (Lin et al. 2017) summed over cells, normalised by the number of positive cells.

    Most cells are negatives (and whole grids are, for objects absent from a scene); the focal term
    down-weights the easy ones so the rare positives and hard negatives drive learning.
    """
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return loss.sum() / targets.sum().clamp(min=1.0)
