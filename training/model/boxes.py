"""The box head: a tight box for whatever object covers a cell, from the frozen stride-16 features.

Why object-agnostic (K-independent): a cell inside an object lies inside exactly one visible box
(occlusions aside), so the box needs no knowledge of WHICH registered object it is; the match head
says which object peaks there, and the peak reads its box from this map. It runs once per frame,
so the frame cost stays flat in K.

    feats [B, 112, r, c]  frozen Lite0 blocks 0-10 (the same tensor the match head reads)
      -> 1x1 conv 112->W, ReLU
      -> 3x3 convs W->W, dilations 1, 2, 4, 1 (a receptive field of 17 cells: the largest
         objects span ~10 cells), ReLU
      -> 3x3 conv W->4, softplus
    distances [B, 4, r, c]  left, top, right, bottom from the cell centre to the sides of the
                            visible box, in cells (x stride = input pixels)

Loss (training/train.py, w_boxes > 0): L1 on the distances + GIoU on the decoded boxes, over the
cells that the cell rule marks as the object's, each instance weighted equally (small objects
count as much as large ones).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from training.model.backbone import LITE0_STAGE_ENDS

WIDTH16 = LITE0_STAGE_ENDS[16][1]


@dataclass
class BoxConfig:
    width: int = 48
    dilations: tuple = (1, 2, 4, 1)

    def __post_init__(self):
        self.dilations = tuple(int(d) for d in self.dilations)


class BoxHead(nn.Module):
    def __init__(self, cfg: BoxConfig = BoxConfig()):
        super().__init__()
        self.cfg = cfg
        layers = [nn.Conv2d(WIDTH16, cfg.width, 1), nn.ReLU(inplace=True)]
        for d in cfg.dilations:
            layers += [nn.Conv2d(cfg.width, cfg.width, 3, padding=d, dilation=d),
                       nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(cfg.width, 4, 3, padding=1))
        self.body = nn.Sequential(*layers)

    def forward(self, feats):  # [B, 112, r, c] -> distances in cells [B, 4, r, c]
        return F.softplus(self.body(feats))


def cell_centres(rows: int, cols: int, device=None):
    """(x, y) of every cell centre in cells: [2, rows, cols]."""
    y, x = torch.meshgrid(torch.arange(rows, device=device, dtype=torch.float32) + 0.5,
                          torch.arange(cols, device=device, dtype=torch.float32) + 0.5,
                          indexing="ij")
    return torch.stack([x, y])


def distances_to_boxes(dist):
    """[..., 4, r, c] distances in cells -> boxes [..., r, c, 4] (x0, y0, x1, y1) in cells."""
    r, c = dist.shape[-2:]
    xy = cell_centres(r, c, dist.device)
    x0, y0 = xy[0] - dist[..., 0, :, :], xy[1] - dist[..., 1, :, :]
    x1, y1 = xy[0] + dist[..., 2, :, :], xy[1] + dist[..., 3, :, :]
    return torch.stack([x0, y0, x1, y1], dim=-1)


def giou_loss(pred, target):
    """1 - GIoU of boxes [..., 4] (x0, y0, x1, y1)."""
    ix0 = torch.maximum(pred[..., 0], target[..., 0])
    iy0 = torch.maximum(pred[..., 1], target[..., 1])
    ix1 = torch.minimum(pred[..., 2], target[..., 2])
    iy1 = torch.minimum(pred[..., 3], target[..., 3])
    inter = (ix1 - ix0).clamp(min=0) * (iy1 - iy0).clamp(min=0)
    area = lambda b: (b[..., 2] - b[..., 0]).clamp(min=0) * (b[..., 3] - b[..., 1]).clamp(min=0)  # noqa: E731
    union = area(pred) + area(target) - inter
    iou = inter / union.clamp(min=1e-6)
    hull = (torch.maximum(pred[..., 2], target[..., 2]) - torch.minimum(pred[..., 0], target[..., 0])) * \
        (torch.maximum(pred[..., 3], target[..., 3]) - torch.minimum(pred[..., 1], target[..., 1]))
    return 1 - (iou - (hull - union) / hull.clamp(min=1e-6))


def box_targets(targets, boxes, stride: int):
    """Training targets of one scene from the episode's labels.

    targets [C, r, c] cell labels (the cell rule), boxes [C, 4] visible boxes in pixels (NaN:
    absent) -> (target boxes in cells [r, c, 4], weight [r, c]); a cell claimed by several objects
    takes the one with the most coverage; each instance's weights sum to 1."""
    C, r, c = targets.shape
    present = torch.isfinite(boxes).all(dim=1) & (targets.flatten(1).max(dim=1).values > 0.5)
    cover = torch.where(present[:, None, None], targets, torch.zeros_like(targets))
    best = cover.argmax(dim=0)  # [r, c]
    on = cover.max(dim=0).values > 0.5
    tgt = (torch.nan_to_num(boxes) / stride)[best]  # [r, c, 4]
    counts = torch.zeros(C).index_add_(0, best[on], torch.ones(int(on.sum())))
    weight = torch.where(on, 1.0 / counts[best].clamp(min=1), torch.zeros(r, c))
    return tgt, weight
