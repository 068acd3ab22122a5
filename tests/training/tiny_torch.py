"""The tiny test model (tests/tiny_model.py) in torch, with the same weights: an independent
check that the hand-written ONNX graphs compute what the torch layers they stand for compute
(training tier only: needs torch).

    embedder, detector = build_tiny_modules(token_dim=8, token_count=4, seed=0)
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from tiny_model import MEAN, STD, tiny_weights


class TinyTokens(nn.Module):
    """RGB [0, 255] [B, 3, h, w] -> unit tokens [B, D, h/16, w/16]."""

    def __init__(self, weights):
        super().__init__()
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1) * 255)
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1) * 255)
        layers = []
        for i, (w, b) in enumerate(weights["convs"]):
            conv = nn.Conv2d(w.shape[1], w.shape[0], 3, 2, 1)
            conv.weight.data = torch.from_numpy(w.copy())
            conv.bias.data = torch.from_numpy(b.copy())
            layers += [conv, nn.ReLU()]
        self.convs = nn.Sequential(*layers[:-1])  # no ReLU on the features

    def forward(self, x):
        return F.normalize(self.convs((x - self.mean) / self.std), dim=1)


class TinyDetector(nn.Module):
    def __init__(self, weights, token_count):
        super().__init__()
        self.tokens = TinyTokens(weights)
        self.token_count = token_count
        self.logits = {k: float(weights[k]) for k in ("cell_scale", "cell_bias",
                                                      "presence_scale", "presence_bias")}

    def forward(self, image, embeddings):  # [1, 3, H, W], [K, T*D] -> [K, rows, cols]
        cells = self.tokens(image)[0]  # [D, rows, cols]
        d, rows, cols = cells.shape
        objects = F.normalize(embeddings.reshape(-1, self.token_count, d), dim=2)
        best = (objects @ cells.reshape(d, rows * cols)).amax(dim=1)  # [K, R]
        c = self.logits
        cell = c["cell_scale"] * best + c["cell_bias"]
        presence = c["presence_scale"] * best.amax(dim=1, keepdim=True) + c["presence_bias"]
        return (torch.sigmoid(cell) * torch.sigmoid(presence)).reshape(-1, rows, cols)


def build_tiny_modules(token_dim=8, token_count=4, seed=0):
    """(embedder, detector) in eval mode, with make_tiny_model(..., same arguments)'s weights."""
    weights = tiny_weights(token_dim, seed)
    return TinyTokens(weights).eval(), TinyDetector(weights, token_count).eval()
