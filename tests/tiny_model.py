"""A tiny model folder that follows docs/model_folder.md exactly, for tests (needs torch).

    from tiny_model import make_tiny_model
    folder = make_tiny_model(tmp_path / "tiny")

The graphs are a few convolutions: the embedder L2-normalises pooled features, the detector takes
the sigmoid of a scaled cosine between K object embeddings and every cell's feature, so K is
dynamic like the real model. `build_tiny_modules(seed)` rebuilds the same torch modules, for
parity tests.
"""
import hashlib
import json
import warnings
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


class _Normalize(nn.Module):
    """RGB [0, 255] -> ImageNet-normalised, inside the graph as the contract says."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1) * 255)
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1) * 255)

    def forward(self, x):
        return (x - self.mean) / self.std


class TinyEmbedder(nn.Module):
    def __init__(self, embedding_dim):
        super().__init__()
        self.norm = _Normalize()
        self.convs = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU(),
                                   nn.Conv2d(8, 16, 3, 2, 1), nn.ReLU())
        self.proj = nn.Linear(16, embedding_dim)

    def forward(self, views):  # [N, 3, V, V] -> [N, E]
        x = self.convs(self.norm(views)).mean(dim=(2, 3))
        return F.normalize(self.proj(x), dim=1)


class TinyDetector(nn.Module):
    def __init__(self, embedding_dim, stride):
        super().__init__()
        assert stride in (8, 16, 32)
        layers, ch = [], 3
        for i in range(stride.bit_length() - 1):  # one stride-2 conv per halving
            out = embedding_dim if 2 ** (i + 1) == stride else 8
            layers += [nn.Conv2d(ch, out, 3, 2, 1), nn.ReLU()]
            ch = out
        self.norm = _Normalize()
        self.convs = nn.Sequential(*layers[:-1])  # no ReLU on the features
        self.scale = nn.Parameter(torch.tensor(6.0))
        self.bias = nn.Parameter(torch.tensor(-2.0))

    def forward(self, image, embeddings):  # [1, 3, H, W], [K, E] -> [K, rows, cols]
        cells = F.normalize(self.convs(self.norm(image)), dim=1)[0]  # [E, rows, cols]
        e, rows, cols = cells.shape
        cosine = F.normalize(embeddings, dim=1) @ cells.reshape(e, rows * cols)
        return torch.sigmoid(self.scale * cosine + self.bias).reshape(-1, rows, cols)


def build_tiny_modules(embedding_dim=16, stride=16, seed=0):
    torch.manual_seed(seed)
    return TinyEmbedder(embedding_dim).eval(), TinyDetector(embedding_dim, stride).eval()


def _sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def make_tiny_model(directory, name="tiny", input_size=(64, 96), view_size=32, embedding_dim=16,
                    stride=16, seed=0, threshold=0.5):
    """Write a model folder (model.json, embedder.onnx, detector.onnx, report.md/json); return
    its Path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    embedder, detector = build_tiny_modules(embedding_dim, stride, seed)
    h, w = input_size
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript exporter, like export.py
        torch.onnx.export(embedder, (torch.rand(2, 3, view_size, view_size) * 255,),
                          str(directory / "embedder.onnx"), opset_version=17,
                          input_names=["views"], output_names=["embeddings"],
                          dynamic_axes={"views": {0: "N"}, "embeddings": {0: "N"}}, dynamo=False)
        torch.onnx.export(detector, (torch.rand(1, 3, h, w) * 255,
                                     F.normalize(torch.randn(3, embedding_dim), dim=1)),
                          str(directory / "detector.onnx"), opset_version=17,
                          input_names=["image", "embeddings"], output_names=["probabilities"],
                          dynamic_axes={"embeddings": {0: "K"}, "probabilities": {0: "K"}},
                          dynamo=False)
    hashes = {f: _sha256(directory / f) for f in ("embedder.onnx", "detector.onnx")}
    joined = "".join(hashes[k] for k in sorted(hashes))
    info = {
        "format": "yolz-model/1",
        "name": name,
        "model_id": f"{name}@{hashlib.sha256(joined.encode()).hexdigest()[:12]}",
        "input_size": [h, w],
        "view_size": view_size,
        "channel_order": "rgb",
        "pixel_range": [0, 255],
        "letterbox_pad_value": 114,
        "grid": {"rows": h // stride, "cols": w // stride, "stride": stride},
        "embedding_dim": embedding_dim,
        "views_per_object": 4,
        "default_threshold": threshold,
        "onnx": {"embedder": "embedder.onnx", "detector": "detector.onnx", "opset": 17},
        "sha256": hashes,
        "training": {"config": {"tiny": True, "seed": seed}, "code_sha": "test", "data": "none",
                     "steps": 0, "metrics": {}},
    }
    (directory / "model.json").write_text(json.dumps(info, indent=2) + "\n")
    (directory / "report.json").write_text(json.dumps({"note": "untrained test model"}) + "\n")
    (directory / "report.md").write_text("# tiny\n\nUntrained test model (tests/tiny_model.py).\n")
    return directory
