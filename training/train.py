"""Train the yolz detector — the adapted backbone tail, the match head and the box head — on
cached backbone features (training/data/features.py). The one trainer of the project.

    python -m training.train --config training/configs/match_cpu.yaml --out runs/match --resume
    python -m training.train --config match.json --out runs/match --device cuda   # a lent GPU

Runs where only torch, numpy, onnx, onnxruntime and OpenCV are installed (a JSON config; no
TensorBoard: a note, no scalars), from the cached features alone.

One loop, nanoGPT-style: plain config values, checkpoints that carry their config, a validation
estimate on the real-object benchmark (val split) every `eval_every` steps; `best.pt` keeps the
checkpoint with the best validation score (presence AUROC + cell AP, N = 8, alpha views), `last.pt`
the newest (for --resume). Each step takes `episodes_per_step` episodes; per episode a random N of
1-8 reference views and, per object, alpha cut-outs or photos with background. Losses:
  presence  BCE on the presence logit of every (scene, object) query (absent objects: siblings of
            the same family in the same scene are the hard negatives),
  cells     sigmoid focal loss on the cell logits of the queries whose object is there,
  final     focal loss on the output probability sigmoid(a) * sigmoid(b) on every cell,
  nce       InfoNCE between two disjoint 4-view mean embeddings (slot 0) of the batch's objects
            (only with train_projection: true; by default the projection stays the PCA of the
            frozen features, so no gradient flows through the [S, K, T, R] similarity — 4x faster).
  boxes     L1 + GIoU of the box head's distances on every object's cells (w_boxes > 0;
            training/model/boxes.py), each instance weighted equally.
Backbone (v4): a cache of Lite0 block B's features (features.py --block B; B = 7 for blocks 8-10,
4 for 5-10) runs through Lite0Tail(B + 1), ImageNet weights to start, trained at `backbone_lr`
(0 = frozen, the baseline) for scenes and reference views alike; a cache of block 10 (v2/v3) has
no tail. `init_from` (a frozen-backbone model folder, e.g. v4 as first shipped) starts the heads
where that model's training left them instead of untrained (training/model/warm_start.py):
adapting the backbone as a second stage. Episodes are read from disk as each step needs them: a
12,000-episode cache is ~45 GB.
Experiments (training/configs/v3_ablation, `make ablation`): `train_features` as a list of folders
(e.g. + small-object episodes), `cell_stride: 8` (FineGridHead on the stride-8 side files).

Checkpoint (one schema): head, backbone (the tail under FrozenLite0's names; {} without a tail),
boxes ({} with w_boxes 0), optimizer, step, elapsed_s, config, val.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from training.config import load_config, lr_at, summary_writer
from training.model.backbone import BLOCK16, WIDTH16, Lite0Tail
from training.model.boxes import BoxConfig, BoxHead, box_targets, distances_to_boxes, giou_loss
from training.model.losses import info_nce, sigmoid_focal_loss
from training.model.match import PATCH, FineGridHead, MatchConfig, MatchHead
from training.model.warm_start import load_heads
from training.evaluation.evaluate import HEIGHT_BUCKETS
from training.evaluation.metrics import average_precision, summarize
from training.data import realbench
from yolz_ros.runtime.geometry import box_iou
from yolz_ros.runtime.object_tokens import object_tokens, token_mask

DEFAULTS = {
    "seed": 0, "steps": 3000, "lr": 2e-3, "weight_decay": 0.01, "warmup_steps": 100,
    "grad_clip": 1.0, "episodes_per_step": 8, "photo_view_prob": 0.4, "temperature": 0.07,
    "w_presence": 1.0, "w_cells": 1.0, "w_final": 1.0, "w_nce": 0.2,
    "focal_alpha": 0.25, "focal_gamma": 2.0, "eval_every": 250, "ckpt_every": 250,
    "log_every": 25, "threads": 2,
    "view_sample": 8,  # reference views per object through the tail per step (of N)
    "train_features": "data/features/train",  # a folder, or a list of folders (e.g. + small)
    "val_features": "data/features/val",
    "max_train_episodes": 0,  # per folder; 0 = all
    # 8: FineGridHead's stride-8 cells, from the side files of features.py --stride8
    "cell_stride": 16, "train_features8": "data/features8/train",
    "val_features8": "data/features8/val", "model": {},
    "train_projection": False,  # False: the PCA projection stays; only the heads train
    "backbone_lr": 0.0,  # the Lite0 tail after the cached block; 0 = frozen
    "w_boxes": 0.0, "boxes": {},  # the box head (BoxConfig) and its loss weight; 0 = no box head
    "w_l1": 1.0, "w_giou": 1.0,
    "init_from": "",  # a frozen-backbone model folder whose heads start the run (warm_start.py)
}


def _photo_masks(ep, cfg):
    """Token masks of the photo variant (views without alpha, 128 x 128 squares) from the
    runtime's centre rule for the model's no_alpha_centre: that rule can change without
    re-featurizing (GrabCut's masks depend on the pixels: they come from the feature cache)."""
    if cfg.no_alpha != "centre":
        return ep
    for s in cfg.view_sizes:
        mask = token_mask(None, (realbench.VIEW_SIZE, realbench.VIEW_SIZE), s, PATCH,
                          cfg.min_alpha_fraction, cfg.no_alpha_centre)
        ep[f"mask_{s}"][:, :, 1] = mask
    return ep


def feature_paths(folders, limit=0):
    """[(folder index, episode file)] of one feature folder or a list of them, `limit` per folder
    (0 = all): the episodes a config trains on."""
    out = []
    for n, folder in enumerate([folders] if isinstance(folders, (str, Path)) else folders):
        paths = sorted(p for p in Path(folder).glob("episode_*.npz") if ".tmp" not in p.name)
        if not paths:
            raise SystemExit(f"no feature episodes in {folder}: run python -m training.data.features")
        out += [(n, p) for p in (paths[:limit] if limit else paths)]
    return out


def load_episode(path, cfg: MatchConfig, side=None) -> dict:
    """One feature episode as arrays; `side`: its features.py --stride8 side file's folder."""
    with np.load(path, allow_pickle=False) as z:
        ep = {k: z[k] for k in z.files}
    if side:
        extra = Path(side) / Path(path).name
        if not extra.is_file():
            raise SystemExit(f"no {extra}: run training.data.features --stride8 {side}")
        with np.load(extra, allow_pickle=False) as z:
            ep.update({k: z[k] for k in z.files})
    return _photo_masks(ep, cfg)


def load_features(folders, limit=0, cfg: MatchConfig | None = None, side=None):
    """Feature episodes of feature_paths(folders, limit), in memory; `side`: a folder of
    features.py --stride8 side files (scene8, targets8) for the first folder's episodes."""
    return [load_episode(p, cfg or MatchConfig(), side if n == 0 else None)
            for n, p in feature_paths(folders, limit)]


def head_for(cfg, mcfg):
    return FineGridHead(mcfg) if cfg["cell_stride"] == 8 else MatchHead(mcfg)


def feature_block(path) -> int:
    """The Lite0 block whose output a feature episode caches (10 for caches without the key)."""
    with np.load(path, allow_pickle=False) as z:
        return int(z["feature_block"]) if "feature_block" in z.files else BLOCK16


class Trainable(torch.nn.Module):
    """Everything that trains: the backbone tail after the cached block (Lite0Tail; empty for a
    block-10 cache), the match head and, with w_boxes > 0, the box head."""

    def __init__(self, cfg, mcfg, block: int, pretrained: bool = True):
        super().__init__()
        self.block = block
        self.tail = Lite0Tail(block + 1, pretrained)
        self.head = head_for(cfg, mcfg)
        self.boxes = BoxHead(BoxConfig(**cfg["boxes"])) if cfg["w_boxes"] > 0 else None
        self.tail.requires_grad_(cfg["backbone_lr"] > 0)

    @classmethod
    def from_checkpoint(cls, ckpt):
        cfg = json.loads(ckpt["config"])
        mcfg = MatchConfig(**{**cfg["model"], "pretrained": False})
        model = cls(cfg, mcfg, int(cfg.get("feature_block", BLOCK16)), pretrained=True)
        model.load_checkpoint(ckpt)
        return model.eval(), cfg, mcfg

    def state(self) -> dict:
        return {"head": self.head.state_dict(), "backbone": self.tail.backbone_state(),
                "boxes": self.boxes.state_dict() if self.boxes is not None else {}}

    def load_checkpoint(self, ckpt):
        self.head.load_state_dict(ckpt["head"])
        if ckpt.get("backbone"):
            self.tail.load_backbone_state(ckpt["backbone"])
        if self.boxes is not None:
            self.boxes.load_state_dict(ckpt["boxes"])

    def features(self, cached):  # cached block features [B, C_in, h, w] -> [B, 112, h, w]
        return self.tail(cached)


def scene_inputs(model, ep):
    """(stride-16 features, stride-8 features or None, cell targets at the head's grid)."""
    fine = isinstance(model.head, FineGridHead)
    return (model.features(on(model, ep["scene"])), on(model, ep["scene8"]) if fine else None,
            on(model, ep["targets8" if fine else "targets"]))


def on(model, array):
    """A numpy array as a float tensor on the model's device."""
    return torch.from_numpy(np.ascontiguousarray(array)).to(model.head.proj.weight.device,
                                                            torch.float32)


def episode_tokens(model, ep, sizes, variants=(0, 1), views=None):
    """Projected unit tokens of an episode's views (all N, or the indices `views`), per view size:
    {s: ([C, N, 2, g*g, D] tokens, [C, N, 2, g*g] masks)} (variant 0 alpha, 1 photo). Only the
    `variants` asked for run through the backbone tail; the others' tokens are zeros (a tail's
    views cost more than its scenes)."""
    pick = slice(None) if views is None else views
    out = {}
    for s in sizes:
        views_s = ep[f"views_{s}"][:, pick]  # [C, N, 2, C_in, h, h] (h = s/8 from block 4)
        cc, n = views_s.shape[:2]
        g = s // PATCH  # the tokens' grid: the tail ends at stride 16
        tok = torch.zeros(cc, n, 2, g * g, model.head.cfg.token_dim,
                          device=model.head.proj.weight.device)
        for v in variants:
            f = model.features(on(model, views_s[:, :, v]).flatten(0, 1))
            tok[:, :, v] = model.head.tokens(f).flatten(2).transpose(1, 2).reshape(cc, n, g * g, -1)
        out[s] = (tok, on(model, ep[f"mask_{s}"][:, pick]).bool().reshape(cc, n, 2, -1))
    return out


def pooled(tokens, obj, views, variant):
    """[M, D] tokens of object `obj` that show it, over the given views of one variant, all sizes."""
    return torch.cat([t[obj, views, variant][m[obj, views, variant]] for t, m in tokens.values()])


def object_slots(tokens, count):
    """The runtime's token selection (numpy, on detached tokens), gathered with gradients."""
    _, idx = object_tokens(tokens.detach().cpu().numpy(), count)
    mean = F.normalize(tokens.mean(dim=0), dim=0)
    return torch.cat([mean[None], tokens[torch.from_numpy(idx).to(tokens.device)]])


def reference_views(ep, mcfg, rng, n):
    """Sorted indices of n random reference views of an episode's objects."""
    return np.sort(rng.choice(ep[f"views_{mcfg.view_sizes[0]}"].shape[1], n, replace=False))


def episode_objects(tokens, ep, mcfg, rng, n, variants):
    """[C, T, D] object tokens from n random views among those in `tokens` (variant per object)."""
    c = ep["present"].shape[1]
    views = np.sort(rng.choice(next(iter(tokens.values()))[0].shape[1], n, replace=False))
    return torch.stack([object_slots(pooled(tokens, i, views, int(variants[i])),
                                     mcfg.object_tokens) for i in range(c)])


def box_loss(model, feats, ep):
    """(L1, GIoU) sums of the box head over every present object's cells, and the instance count."""
    pred = distances_to_boxes(model.boxes(feats))  # [S, r, c, 4] in cells
    l1 = giou = feats.new_zeros(())
    for s in range(feats.shape[0]):
        tgt, w = box_targets(torch.from_numpy(ep["targets"][s].astype(np.float32)),
                             torch.from_numpy(ep["boxes"][s]), PATCH)
        on_ = w > 0
        if not on_.any():
            continue
        tgt, w = tgt.to(feats.device)[on_], w.to(feats.device)[on_]
        l1 = l1 + ((pred[s][on_] - tgt).abs().sum(dim=1) * w).sum()
        giou = giou + (giou_loss(pred[s][on_], tgt) * w).sum()
    return l1, giou, int(np.isfinite(ep["boxes"]).all(axis=2).sum())


def step_loss(model, eps, cfg, mcfg, rng):
    head = model.head
    losses = {"presence": 0.0, "cells": 0.0, "final": 0.0, "l1": 0.0, "giou": 0.0}
    anchors, positives = [], []
    boxes_n = 0
    # A frozen projection and tail need no gradient through the big [S, K, T, R] similarity.
    view_grad = cfg["train_projection"] or cfg["backbone_lr"] > 0
    for ep in eps:
        c = ep["present"].shape[1]
        feats, feats8, targets = scene_inputs(model, ep)  # [S, 112, r, c], ..., [S, C, r', c']
        s = feats.shape[0]
        # Only `view_sample` of the N reference views go through the tail per step: the views,
        # not the scenes, dominate a step's cost (10 objects x 8 views x 3 sizes ~ 2x the tokens
        # of 4 scenes).
        total = ep[f"views_{mcfg.view_sizes[0]}"].shape[1]
        picked = np.sort(rng.choice(total, min(cfg["view_sample"], total), replace=False))
        n = int(rng.integers(1, len(picked) + 1))
        variants = (rng.random(c) < cfg["photo_view_prob"]).astype(int)
        with torch.set_grad_enabled(view_grad):
            needed = (0, 1) if variants.any() else (0,)
            tokens = episode_tokens(model, ep, mcfg.view_sizes, variants=needed, views=picked)
            objects = episode_objects(tokens, ep, mcfg, rng, n, variants)
            sim = head.similarity(feats, objects[None].expand(s, -1, -1, -1))
        a, b = head.decide(feats, sim, feats8)
        present = on(model, ep["present"])
        losses["presence"] += F.binary_cross_entropy_with_logits(b, present)
        sel = present.bool()
        if sel.any():
            losses["cells"] += sigmoid_focal_loss(a[sel], targets[sel], cfg["focal_alpha"],
                                                  cfg["focal_gamma"])
        # final probability p = sigmoid(a) sigmoid(b) as a focal loss in log space
        logp = F.logsigmoid(a) + F.logsigmoid(b)[..., None, None]
        p = logp.exp().clamp(1e-6, 1 - 1e-6)
        ce = -(targets * logp + (1 - targets) * torch.log1p(-p))
        p_t = p * targets + (1 - p) * (1 - targets)
        w = cfg["focal_alpha"] * targets + (1 - cfg["focal_alpha"]) * (1 - targets)
        losses["final"] += (w * ce * (1 - p_t) ** cfg["focal_gamma"]).sum() / targets.sum().clamp(min=1)
        if model.boxes is not None:
            l1, giou, count = box_loss(model, feats, ep)
            losses["l1"] += l1
            losses["giou"] += giou
            boxes_n += count
        # two disjoint halves of the picked alpha views for the contrastive term
        half = len(picked) // 2
        if not view_grad or half == 0:
            continue
        first, second = np.arange(half), np.arange(half, 2 * half)
        for i in range(c):
            anchors.append(F.normalize(pooled(tokens, i, first, 0).mean(0), dim=0))
            positives.append(F.normalize(pooled(tokens, i, second, 0).mean(0), dim=0))
    k = len(eps)
    boxes_n = max(1, boxes_n)
    stats = {name: float(v.detach() if torch.is_tensor(v) else v) / (boxes_n if name in ("l1", "giou") else k)
             for name, v in losses.items()}
    nce = info_nce(torch.stack(anchors), torch.stack(positives), cfg["temperature"]) \
        if anchors else torch.zeros((), device=head.proj.weight.device)
    stats["nce"] = float(nce.detach())
    loss = (cfg["w_presence"] * losses["presence"] + cfg["w_cells"] * losses["cells"]
            + cfg["w_final"] * losses["final"]) / k + cfg["w_nce"] * nce
    if model.boxes is not None:
        loss = loss + cfg["w_boxes"] * (cfg["w_l1"] * losses["l1"] + cfg["w_giou"] * losses["giou"]) / boxes_n
    stats["loss"] = float(loss.detach())
    return loss, stats


def box_validation(model, ep, feats, out):
    """IoU of the box read at each present object's centre cell, appended to out."""
    pred = distances_to_boxes(model.boxes(feats)).cpu().numpy() * PATCH
    for s in range(len(pred)):
        for c in range(ep["boxes"].shape[1]):
            box, targets = ep["boxes"][s, c], ep["targets"][s, c]
            if not np.isfinite(box).all() or targets.max() <= 0.5:
                continue
            cells = np.argwhere(targets > 0.5)
            gx, gy = (box[0] + box[2]) / 2 / PATCH, (box[1] + box[3]) / 2 / PATCH
            r, cc = cells[np.argmin((cells[:, 0] + 0.5 - gy) ** 2 + (cells[:, 1] + 0.5 - gx) ** 2)]
            out.append(box_iou(pred[s, r, cc], box))


@torch.no_grad()
def validate(model, eps, mcfg, n=8, variant=0):
    """Benchmark metrics (training.evaluation.metrics.summarize) on featurized val episodes,
    overall and by the visible box's height (every absent query a negative in each bin), and
    with a box head the centre cell's box IoU (median, share >= 0.5). A stride-8 grid is
    scored max-pooled onto the benchmark's stride-16 cells (and at its own grid as
    cell_ap_own_grid), so every head is judged on the same cells."""
    head = model.head
    records, own, ious = [], [], []
    for ep in eps:
        c = ep["present"].shape[1]
        objects = episode_objects(episode_tokens(model, ep, mcfg.view_sizes, variants=(variant,)),
                                  ep, mcfg, np.random.default_rng(0), n, np.full(c, variant))
        feats, feats8, targets = scene_inputs(model, ep)
        a, b = head(feats, objects[None].expand(feats.shape[0], -1, -1, -1), feats8)
        if model.boxes is not None:
            box_validation(model, ep, feats, ious)
        probs = torch.sigmoid(a) * torch.sigmoid(b)[..., None, None]
        if feats8 is not None:
            own += [(probs.cpu().numpy(), targets.cpu().numpy())]
            probs = F.adaptive_max_pool2d(probs, feats.shape[-2:])
        probs = probs.cpu().numpy()
        for s in range(probs.shape[0]):
            for i in range(c):
                box = ep["boxes"][s, i]
                records.append({"grid": probs[s, i], "targets": ep["targets"][s, i].astype(float),
                                "present": bool(ep["present"][s, i]),
                                "valid": np.ones(probs.shape[2:], bool),
                                "height": float(box[3] - box[1]) if np.isfinite(box).all() else 0})
    out = summarize(records)
    if own:
        out["cell_ap_own_grid"] = average_precision(
            np.concatenate([p.ravel() for p, _ in own]), np.concatenate([t.ravel() for _, t in own]))
    if ious:
        out["box_centre_iou_median"] = float(np.median(ious))
        out["box_centre_iou50"] = float((np.array(ious) >= 0.5).mean())
    negatives = [r for r in records if not r["present"]]
    for name, lo, hi in HEIGHT_BUCKETS:
        pos = [r for r in records if r["present"] and lo <= r["height"] < hi]
        if pos:
            m = summarize(pos + negatives)
            out.update({f"{k} {name}": m[k] for k in ("presence_auroc", "fpr_at_95_tpr",
                                                       "pointing_accuracy", "positive_pairs")})
    return out


@torch.no_grad()
def init_projection(model, eps, dim):
    """PCA (uncentred) of scene tokens: the projection starts as the best rank-D cosine keeper."""
    x = np.concatenate([model.features(on(model, e["scene"])).cpu().numpy()
                        .transpose(0, 2, 3, 1).reshape(-1, WIDTH16) for e in eps]).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True) + 1e-6
    _, _, vt = np.linalg.svd(x[::7], full_matrices=False)
    model.head.proj.weight.copy_(torch.from_numpy(vt[:dim]).view(dim, -1, 1, 1))


def save(path, model, opt, step, elapsed, cfg, val):
    tmp = path.with_suffix(".tmp")
    state = {k: {n: t.cpu() for n, t in v.items()} for k, v in model.state().items()}
    torch.save({**state, "optimizer": opt.state_dict(), "step": step, "elapsed_s": elapsed,
                "config": json.dumps(cfg), "val": json.dumps(val)}, tmp)
    os.replace(tmp, path)  # atomic


class Episodes:
    """Training episodes read from disk when a step draws them (the cache outgrows memory)."""

    def __init__(self, folders, limit, mcfg, side=None):
        self.paths = feature_paths(folders, limit)
        self.mcfg, self.side = mcfg, side

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        n, p = self.paths[i]
        return load_episode(p, self.mcfg, self.side if n == 0 else None)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Train the yolz detector on cached backbone features.")
    ap.add_argument("--config", required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--resume", action="store_true", help="continue from <out>/last.pt")
    ap.add_argument("--steps", type=int, help="override the config's steps")
    ap.add_argument("--stop-after", type=int, default=0,
                    help="stop (checkpointed) after this many steps in this run: chunked training")
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (a lent GPU machine)")
    args = ap.parse_args(argv)
    cfg = load_config(args.config, DEFAULTS)
    if args.steps:
        cfg["steps"] = args.steps
    torch.set_num_threads(cfg["threads"])
    torch.manual_seed(cfg["seed"])
    mcfg = MatchConfig(**{**cfg["model"], "pretrained": False})
    cfg["model"] = dataclasses.asdict(mcfg)
    cfg["boxes"] = dataclasses.asdict(BoxConfig(**cfg["boxes"])) if cfg["w_boxes"] > 0 else {}
    fine = cfg["cell_stride"] == 8
    train_eps = Episodes(cfg["train_features"], cfg["max_train_episodes"], mcfg,
                         cfg["train_features8"] if fine else None)
    val_eps = load_features(cfg["val_features"], cfg=mcfg,
                            side=cfg["val_features8"] if fine else None)
    block = feature_block(train_eps.paths[0][1])
    if feature_block(feature_paths(cfg["val_features"])[0][1]) != block:
        raise SystemExit(f"{cfg['val_features']} caches another Lite0 block than the training "
                         f"features (block {block}): featurize both with --block {block}")
    cfg["feature_block"] = block
    model = Trainable(cfg, mcfg, block).to(args.device)
    model.head.proj.weight.requires_grad_(cfg["train_projection"])
    groups = [{"params": [p for p in model.head.parameters() if p.requires_grad], "lr_scale": 1.0}]
    if model.boxes is not None:
        groups.append({"params": list(model.boxes.parameters()), "lr_scale": 1.0})
    if cfg["backbone_lr"] > 0 and len(model.tail.blocks):
        groups.append({"params": list(model.tail.parameters()),
                       "lr_scale": cfg["backbone_lr"] / cfg["lr"]})
    opt = torch.optim.AdamW(groups, lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    trained = [p for g in groups for p in g["params"]]
    step, elapsed, best = 0, 0.0, -1.0
    args.out.mkdir(parents=True, exist_ok=True)
    last = args.out / "last.pt"
    if args.resume and last.is_file():
        ckpt = torch.load(last, map_location=args.device, weights_only=True)
        model.load_checkpoint(ckpt)
        opt.load_state_dict(ckpt["optimizer"])
        step, elapsed = int(ckpt["step"]), float(ckpt["elapsed_s"])
        if (args.out / "best.pt").is_file():
            bv = json.loads(torch.load(args.out / "best.pt", map_location="cpu",
                                       weights_only=True)["val"])
            best = bv.get("score", -1.0)
        print(f"resumed at step {step}")
    elif cfg["init_from"]:
        load_heads(Path(cfg["init_from"]), model.head, model.boxes)
        val = validate(model.eval(), val_eps, mcfg)
        print(f"val at init (heads of {cfg['init_from']}):", json.dumps(val), flush=True)
    else:
        init_projection(model, [train_eps[i] for i in range(min(50, len(train_eps)))],
                        mcfg.token_dim)
        val = validate(model.eval(), val_eps, mcfg)
        print("val at init (PCA projection, untrained heads):", json.dumps(val), flush=True)
    (args.out / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    writer = summary_writer(args.out / "tb")
    rng = np.random.default_rng([cfg["seed"], step])  # fresh draws after a resume
    started, run_steps = time.time(), 0
    while step < cfg["steps"]:
        model.train()
        for g in opt.param_groups:
            g["lr"] = cfg["lr"] * g["lr_scale"] * lr_at(step, cfg)
        batch = [train_eps[int(i)] for i in rng.choice(len(train_eps), cfg["episodes_per_step"],
                                                       replace=False)]
        loss, stats = step_loss(model, batch, cfg, mcfg, rng)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trained, cfg["grad_clip"])
        opt.step()
        step += 1
        run_steps += 1
        now = elapsed + time.time() - started
        if step % cfg["log_every"] == 0:
            print(f"step {step} " + " ".join(f"{k} {v:.4f}" for k, v in stats.items())
                  + f" ({now:.0f} s)", flush=True)
            for k, v in stats.items():
                writer.add_scalar(f"train/{k}", v, step)
        done = step == cfg["steps"] or (args.stop_after and run_steps >= args.stop_after)
        if step % cfg["eval_every"] == 0 or done:
            val = validate(model.eval(), val_eps, mcfg)
            val["score"] = val["presence_auroc"] + val["cell_ap"]
            print(f"val step {step}: " + json.dumps({k: round(v, 4) for k, v in val.items()}),
                  flush=True)
            for k, v in val.items():
                writer.add_scalar(f"val/{k}", v, step)
            if val["score"] > best:
                best = val["score"]
                save(args.out / "best.pt", model, opt, step, now, cfg, val)
            save(last, model, opt, step, now, cfg, val)
        elif step % cfg["ckpt_every"] == 0:
            save(last, model, opt, step, now, cfg, {})
        if done:
            break
    writer.close()
    print(f"stopped at step {step}; best val score {best:.4f} -> {args.out}/best.pt")


if __name__ == "__main__":
    main()
