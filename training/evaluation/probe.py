"""The training-free token probe: the baseline any trained yolz v2 must beat.

ImageNet Lite0 stride-16 features (the frozen backbone of training/model/match.py, no projection,
no training): an object is ALL the tokens of its views that show it (at the model's view sizes);
a cell's score is its best cosine to any of them; presence = the best cell. On an independent real-object
benchmark this probe scored above the trained v1 model, so it is the bar a trained model must
clear.

`TokenProbe` has the evaluate/compare method interface (embed(views), score(scene, objects)) and
runs in torch on the CPU; `probe_on_features` scores featurized episodes (training/data/features.py).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from training.data.features import prepared_views
from training.model.match import MatchConfig
from training.model.backbone import FrozenLite0
from training.evaluation.metrics import summarize


class TokenProbe:
    calibrated = False
    name = "token probe (ImageNet Lite0, training-free)"

    def __init__(self, num_threads=0, cfg: MatchConfig | None = None):
        if num_threads:
            torch.set_num_threads(num_threads)
        self.cfg = cfg or MatchConfig()
        self.backbone = FrozenLite0(pretrained=True)

    @torch.no_grad()
    def embed(self, views):
        tokens = []
        for s in self.cfg.view_sizes:
            prepared = [prepared_views(np.asarray(v), s, self.cfg) for v in views]
            x = torch.from_numpy(np.stack([p[0] for p in prepared])).permute(0, 3, 1, 2).float()
            f = F.normalize(self.backbone(x), dim=1).permute(0, 2, 3, 1)  # [n, g, g, 112]
            tokens.append(f[torch.from_numpy(np.stack([p[1] for p in prepared]))])
        return torch.cat(tokens)

    @torch.no_grad()
    def score(self, scene, objects):
        x = torch.from_numpy(np.ascontiguousarray(scene)).permute(2, 0, 1)[None].float()
        cells = F.normalize(self.backbone(x), dim=1)[0]  # [112, r, c]
        r, c = cells.shape[1:]
        flat = cells.flatten(1)
        return np.stack([(obj @ flat).max(dim=0).values.reshape(r, c).numpy() for obj in objects])


def probe_on_features(eps, sizes=(64, 96, 128), n=8, variant=0):
    """The probe's metrics on featurized episodes (fast: no backbone pass)."""
    records = []
    for ep in eps:
        scene = F.normalize(torch.from_numpy(ep["scene"]).float(), dim=1)  # [S, 112, r, c]
        s_n, _, r, c = scene.shape
        for i in range(ep["present"].shape[1]):
            toks = []
            for s in sizes:
                f = F.normalize(torch.from_numpy(ep[f"views_{s}"][i, :n, variant]).float(), dim=1)
                toks.append(f.permute(0, 2, 3, 1)[torch.from_numpy(ep[f"mask_{s}"][i, :n, variant])])
            tok = torch.cat(toks)
            grid = torch.einsum("md,sdr->smr", tok, scene.flatten(2)).max(dim=1).values
            for s_i in range(s_n):
                records.append({"grid": grid[s_i].reshape(r, c).numpy(),
                                "targets": ep["targets"][s_i, i].astype(float),
                                "present": bool(ep["present"][s_i, i]),
                                "valid": np.ones((r, c), bool)})
    return summarize(records, calibrated=False)
