"""yolz v2: frozen ImageNet tokens matched against an object's tokens, and a trained head that
decides where THIS object is and whether it is there at all.

Why this shape (measured on the real-object benchmark, models/<name>/report.md): ImageNet
EfficientNet-Lite0 stride-16 features at the camera's resolution already tell product instances
apart better than towers fine-tuned on synthetic shapes; the one thing raw matching cannot do is
say "absent" — every scene has some cell that looks a bit like the object. So the backbone stays
frozen (ImageNet BatchNorm statistics and all) and what is trained is small:

  Tokens     frozen Lite0 blocks 0-10 -> [112, h/16, w/16] -> 1x1 projection to D -> unit norm
  Objects    T tokens per object (yolz_ros/object_tokens.py: mean + farthest-point sample)
  Match      cosine of every cell to every object token: [K, T, R]   (R = rows * cols)
  Cell head  per object: (best token, mean token) + 4 scene-context channels
             -> 3x3 conv 16 -> 3x3 conv 1, plus the scaled best-token match (residual: it
             starts as the probe) = cell logit a [K, rows, cols]
  Presence   per object: statistics of its match map and of its tokens' coverage of the scene
             (mean over tokens of max over cells: an absent object's label finds no partner),
             and of their coverage NEAR its peak cell (a present object's tokens are found
             together; an absent one's best matches lie scattered) -> MLP -> presence logit b [K]
  Output     P(object in cell) = sigmoid(a) * sigmoid(b)

The per-object cost is one [T, D] x [D, R] product and two tiny convolutions, so the frame cost is
nearly flat in K; the backbone runs once per frame.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from training.model.backbone import WIDTH16, FrozenLite0

PATCH = 16  # pixels per token side: the backbone's stride-16 stage
PAD_VALUE = 114  # gray letterbox padding of views and scenes (model.json letterbox_pad_value)


@dataclass
class MatchConfig:
    token_dim: int = 64          # D
    object_tokens: int = 65      # T = 1 mean + 64 sampled
    view_sizes: tuple = (64, 96, 128)
    min_alpha_fraction: float = 0.5
    no_alpha_centre: float = 0.6  # views without alpha: tokens in the central 60% (object_tokens.py)
    no_alpha: str = "centre"  # or "grabcut": the view's object from GrabCut (runtime/foreground.py)
    context_dim: int = 4
    head_dim: int = 16
    presence_dim: int = 32
    pretrained: bool = True

    def __post_init__(self):
        self.view_sizes = tuple(int(s) for s in self.view_sizes)


class MatchHead(nn.Module):
    """Everything trained: token projection, cell head and presence head (see module docstring)."""

    N_PRESENCE = 12

    def __init__(self, cfg: MatchConfig):
        super().__init__()
        self.cfg = cfg
        self.proj = nn.Conv2d(WIDTH16, cfg.token_dim, 1, bias=False)
        self.context = nn.Conv2d(WIDTH16, cfg.context_dim, 1)
        self.cell = nn.Sequential(
            nn.Conv2d(2 + cfg.context_dim, cfg.head_dim, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(cfg.head_dim, 1, 3, padding=1))
        self.presence = nn.Sequential(
            nn.Linear(self.N_PRESENCE, cfg.presence_dim), nn.ReLU(inplace=True),
            nn.Linear(cfg.presence_dim, 1))
        # Inputs are cosines in [-1, 1]: a learned affine per match channel makes them usable.
        self.match_scale = nn.Parameter(torch.full((2,), 8.0))
        self.match_shift = nn.Parameter(torch.full((2,), -4.0))

    def tokens(self, feats):  # [B, 112, h, w] -> unit tokens [B, D, h, w]
        return F.normalize(self.proj(feats), dim=1)

    def similarity(self, feats, objects):
        """feats [B, 112, r, c] (frozen backbone), objects [B, K, T, D] unit tokens
        -> cosine of every cell to every object token [B, K, T, R]."""
        cells = self.tokens(feats).flatten(2)  # [B, D, R]
        # a broadcast MatMul, not an einsum: ONNX Runtime runs it as one GEMM (2x faster at K=64)
        return torch.matmul(objects, cells[:, None])

    def decide(self, feats, sim, feats8=None):
        """-> cell logits a [B, K, r, c] (FineGridHead: [B, K, 2r, 2c]), presence logits b [B, K]."""
        b, _, r, c = feats.shape
        k, t = sim.shape[1:3]
        local = sim[:, :, 1:]
        best = local.max(dim=2).values  # [B, K, R]
        mean_tok = sim[:, :, 0]
        match = torch.stack([best, mean_tok], dim=2)  # [B, K, 2, R]
        match = match * self.match_scale[:, None] + self.match_shift[:, None]
        a_out = self.cells(match.reshape(b, k, 2, r, c), feats, feats8)
        # presence reads the cell logits on the stride-16 grid of the match
        a = a_out if a_out.shape[-2:] == (r, c) else \
            F.adaptive_max_pool2d(a_out.flatten(0, 1), (r, c)).reshape(b, k, r, c)
        a = a.reshape(b, k, r * c)
        # Presence statistics, each [B, K]
        coverage = local.max(dim=3).values  # [B, K, T-1]: how well each token is found anywhere
        near = self.near_peak(local, a.argmax(dim=2), r, c)  # [B, K, T-1]: ... near the peak
        n5 = min(5, r * c)
        half = max(1, (t - 1) // 2)
        stats = torch.stack([
            best.max(dim=2).values, best.topk(n5, dim=2).values.mean(dim=2), best.mean(dim=2),
            best.std(dim=2), coverage.mean(dim=2), coverage.topk(half, dim=2).values.mean(dim=2),
            mean_tok.max(dim=2).values, a.max(dim=2).values / 10,
            a.topk(n5, dim=2).values.mean(dim=2) / 10, near.mean(dim=2),
            near.topk(half, dim=2).values.mean(dim=2), (coverage - near).mean(dim=2)], dim=2)
        presence = self.presence(stats).squeeze(-1)
        return a_out, presence

    def cells(self, match, feats, feats8=None):
        """Scaled match [B, K, 2, r, c] + scene context -> cell logits [B, K, r, c]."""
        b, k, _, r, c = match.shape
        ctx = self.context(feats)[:, None].expand(b, k, -1, -1, -1)  # [B, K, C, r, c]
        x = torch.cat([match, ctx], dim=2).reshape(b * k, -1, r, c)
        # residual on the scaled best-token match: the head starts as the probe and learns changes
        return (self.cell(x) + match[:, :, 0].reshape(b * k, 1, r, c)).reshape(b, k, r, c)

    @staticmethod
    def near_peak(local, peak, r, c, radius=2):
        """Best cosine of every object token within +-radius cells of the object's peak cell:
        [B, K, T', R] sims, [B, K] peak index -> [B, K, T']. A present object's tokens are found
        together around its peak; an absent one's best matches are scattered over the scene."""
        offsets = torch.arange(-radius, radius + 1, device=local.device)
        rows = (peak // c)[..., None, None] + offsets[:, None]  # [B, K, w, 1]
        cols = (peak % c)[..., None, None] + offsets[None, :]  # [B, K, 1, w]
        idx = rows.clamp(0, r - 1) * c + cols.clamp(0, c - 1)  # [B, K, w, w]
        idx = idx.flatten(2)[:, :, None, :].expand(-1, -1, local.shape[2], -1)
        return torch.gather(local, 3, idx).max(dim=3).values

    def forward(self, feats, objects, feats8=None):
        """feats [B, 112, r, c] (frozen backbone), objects [B, K, T, D] unit tokens
        -> cell logits a [B, K, r, c], presence logits b [B, K]."""
        return self.decide(feats, self.similarity(feats, objects), feats8)


class FineGridHead(MatchHead):
    """A stride-8 cell grid (an experiment for small objects; ablation_v3.json has its numbers):
    the stride-16 match and context upsampled 2x and fused with a projection of the frozen
    backbone's stride-8 stage (Lite0 block 4, 40 channels), which still sees a 20 px object's
    outline. Tokens, matching and presence are MatchHead's: only the cell head is finer.

      feats8 [B, 40, 2r, 2c] -> 1x1 conv to fine_dim; cell head on (match 2, context C,
      fine fine_dim) at 2r x 2c; presence on the cell logits max-pooled back to r x c.
    """

    def __init__(self, cfg: MatchConfig, width8: int = 40, fine_dim: int = 8):
        super().__init__(cfg)
        self.fine = nn.Conv2d(width8, fine_dim, 1)
        self.cell = nn.Sequential(
            nn.Conv2d(2 + cfg.context_dim + fine_dim, cfg.head_dim, 3, padding=1),
            nn.ReLU(inplace=True), nn.Conv2d(cfg.head_dim, 1, 3, padding=1))

    def cells(self, match, feats, feats8=None):
        b, k, _, r, c = match.shape
        up = match.reshape(b * k, 2, r, c)
        up = F.interpolate(up, scale_factor=2, mode="bilinear", align_corners=False)
        ctx = F.interpolate(self.context(feats), scale_factor=2, mode="bilinear",
                            align_corners=False)  # [B, C, 2r, 2c]
        side = torch.cat([ctx, self.fine(feats8)], dim=1)[:, None].expand(b, k, -1, -1, -1)
        x = torch.cat([up.reshape(b, k, 2, 2 * r, 2 * c), side], dim=2)
        x = x.reshape(b * k, -1, 2 * r, 2 * c)
        return (self.cell(x) + up[:, :1]).reshape(b, k, 2 * r, 2 * c)


class MatchModel(nn.Module):
    def __init__(self, cfg: MatchConfig):
        super().__init__()
        self.cfg = cfg
        self.backbone = FrozenLite0(cfg.pretrained)
        self.head = MatchHead(cfg)

    def view_tokens(self, views):  # [N, 3, S, S] RGB 0..255 -> unit tokens [N, D, S/16, S/16]
        return self.head.tokens(self.backbone(views))


class EmbedderGraph(nn.Module):
    """embedder.onnx: views [N, 3, S, S] (S any multiple of 16) -> tokens [N, D, S/16, S/16]."""

    def __init__(self, model: MatchModel):
        super().__init__()
        self.model = model

    def forward(self, views):
        return self.model.view_tokens(views)


class DetectorGraph(nn.Module):
    """detector.onnx: image [1, 3, H, W] + embeddings [K, T*D] -> probabilities [K, H/16, W/16];
    with a box head (training/model/boxes.py) also box_distances [H/16, W/16, 4] in input pixels
    (left, top, right, bottom from each cell centre), from the same features, once per frame."""

    def __init__(self, model: MatchModel, boxes: Optional[nn.Module] = None):
        super().__init__()
        self.model, self.boxes = model, boxes

    def forward(self, image, embeddings):
        cfg = self.model.cfg
        objects = embeddings.reshape(1, -1, cfg.object_tokens, cfg.token_dim)
        feats = self.model.backbone(image)
        a, b = self.model.head(feats, objects)
        probabilities = (torch.sigmoid(a) * torch.sigmoid(b)[..., None, None])[0]
        if self.boxes is None:
            return probabilities
        return probabilities, self.boxes(feats)[0].permute(1, 2, 0) * PATCH
