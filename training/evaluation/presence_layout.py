"""Presence verification by layout: do the object tokens matched near the peak keep the relative
positions they have in the reference views? (an experiment, not shipped: see its verdict in the report)

A present object's tokens are found around its peak in roughly the view's arrangement (its label
above its base, its cap on top); an absent look-alike's best matches near a false peak are where
chance puts them. Per (scene, object) query, on a trained match head's cached validation features:

  1. the peak cell of the cell logits; a (2 * radius + 1)^2 window around it;
  2. for every sampled object token (slots 1..T-1): its best cell in the window, and its position
     in its own view (centre of its patch, in view widths; views are object-centred squares);
  3. the better-matched half of the tokens; an affine map view -> scene fitted to them by least
     squares; the layout score = R^2 of that fit (1: the arrangement is kept; ~0: scattered).

The test: the score's own AUROC, and the presence score (the grid's max probability, what the
benchmark's AUROC ranks) plus w * layout score with w fitted on one half of the episodes and
scored on the other (2-fold, both ways), overall and by the visible box's height.

    python -m training.evaluation.presence_layout --run runs/v3_ablation/base --out layout.json
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from training.evaluation.evaluate import HEIGHT_BUCKETS
from training.evaluation.metrics import auroc, fpr_at_tpr
from training.model.match import MatchConfig
from yolz_ros.runtime.object_tokens import object_tokens


def view_positions(ep, obj, views, variant, sizes):
    """[M, 2] (x, y) of every pooled token of one object in its view, in view widths, in the
    order of training.train.pooled (sizes, then views, then patches row by row)."""
    out = []
    for s in sizes:
        g = s // 16
        centres = (np.arange(g) + 0.5) / g
        xy = np.stack(np.meshgrid(centres, centres), axis=-1).reshape(-1, 2)  # [g*g, (x, y)]
        mask = ep[f"mask_{s}"][obj, views, variant].reshape(len(views), -1)
        out += [xy[m] for m in mask]
    return np.concatenate(out)


def layout_score(view_xy, cell_xy, sims):
    """R^2 of the least-squares affine map view -> scene over the better-matched half."""
    keep = sims >= np.median(sims)
    q, x = view_xy[keep], cell_xy[keep]
    if len(q) < 8:  # an affine map has 6 parameters: fewer points fit anything
        return 0.0
    design = np.c_[q, np.ones(len(q))]
    coef, *_ = np.linalg.lstsq(design, x, rcond=None)
    total = ((x - x.mean(axis=0)) ** 2).sum()
    if total < 1e-9:  # every token matched one cell: a small object says nothing about layout
        return 0.0
    return float(1 - ((design @ coef - x) ** 2).sum() / total)


@torch.no_grad()
def query_scores(model, eps, mcfg: MatchConfig, n=8, radius=3):
    """Per query of a training.train.Trainable: presence score (max probability), layout score,
    present, height, episode."""
    from training.train import episode_tokens, pooled, reference_views

    head = model.head
    rows = []
    for e, ep in enumerate(eps):
        c = ep["present"].shape[1]
        tokens = episode_tokens(model, ep, mcfg.view_sizes)
        views = reference_views(ep, mcfg, np.random.default_rng(0), n)  # as train.validate
        objects, positions = [], []
        for i in range(c):
            pool = pooled(tokens, i, views, 0)
            slots, idx = object_tokens(pool.numpy(), mcfg.object_tokens)
            objects.append(torch.from_numpy(slots))
            positions.append(view_positions(ep, i, views, 0, mcfg.view_sizes)[idx])
        feats = model.features(torch.from_numpy(ep["scene"].astype(np.float32)))
        objects = torch.stack(objects)[None].expand(feats.shape[0], -1, -1, -1)
        sim = head.similarity(feats, objects)  # [S, K, T, R]
        a, b = head.decide(feats, sim)
        probs = (torch.sigmoid(a) * torch.sigmoid(b)[..., None, None]).numpy()
        r, cols = a.shape[-2:]
        sim = sim[:, :, 1:].reshape(*sim.shape[:2], -1, r, cols).numpy()
        for s in range(feats.shape[0]):
            for i in range(c):
                pr, pc = np.unravel_index(int(a[s, i].argmax()), (r, cols))
                r0, r1 = max(0, pr - radius), min(r, pr + radius + 1)
                c0, c1 = max(0, pc - radius), min(cols, pc + radius + 1)
                win = sim[s, i, :, r0:r1, c0:c1].reshape(sim.shape[2], -1)
                best = win.argmax(axis=1)
                cell_xy = np.stack([c0 + best % (c1 - c0), r0 + best // (c1 - c0)], axis=1)
                box = ep["boxes"][s, i]
                rows.append({
                    "presence": float(probs[s, i].max()),
                    "layout": layout_score(positions[i], cell_xy.astype(float), win.max(axis=1)),
                    "present": bool(ep["present"][s, i]), "episode": e,
                    "height": float(box[3] - box[1]) if np.isfinite(box).all() else 0.0})
    return rows


def _logit(p):
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def cross_validated(rows, weights=np.linspace(0, 6, 61)):
    """Combined score logit(presence) + w * layout, w chosen on the other half's AUROC."""
    episodes = np.array([r["episode"] for r in rows])
    base = _logit(np.array([r["presence"] for r in rows]))
    lay = np.array([r["layout"] for r in rows])
    y = np.array([r["present"] for r in rows])
    fold = episodes % 2
    combined, chosen = np.empty_like(base), []
    for f in (0, 1):
        fit = fold != f
        w = max(weights, key=lambda w: auroc(base[fit] + w * lay[fit], y[fit]))
        chosen.append(float(w))
        combined[fold == f] = base[fold == f] + w * lay[fold == f]
    return combined, chosen


def summary(rows):
    base = _logit(np.array([r["presence"] for r in rows]))
    lay = np.array([r["layout"] for r in rows])
    y = np.array([r["present"] for r in rows])
    heights = np.array([r["height"] for r in rows])
    combined, chosen = cross_validated(rows)
    out = {"queries": len(rows), "present": int(y.sum()), "weights_chosen": chosen,
           "layout_auroc": auroc(lay, y), "layout_mean_present": float(lay[y].mean()),
           "layout_mean_absent": float(lay[~y].mean()), "by_height": {}}
    for name, sel in [("all", np.ones(len(y), bool))] + [
            (name, ~y | ((heights >= lo) & (heights < hi))) for name, lo, hi in HEIGHT_BUCKETS]:
        out["by_height"][name] = {
            "positives": int(y[sel].sum()),
            "presence_auroc": auroc(base[sel], y[sel]),
            "presence_auroc_with_layout": auroc(combined[sel], y[sel]),
            "fpr_at_95_tpr": fpr_at_tpr(base[sel], y[sel]),
            "fpr_at_95_tpr_with_layout": fpr_at_tpr(combined[sel], y[sel])}
    return out


def main(argv=None):
    from training.train import Trainable, load_features

    ap = argparse.ArgumentParser(description="Presence verification by token layout (experiment).")
    ap.add_argument("--run", type=Path, required=True, help="a training.train output (best.pt)")
    ap.add_argument("--features", default=None, help="default: the run's val_features")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    ckpt = torch.load(args.run / "best.pt", map_location="cpu", weights_only=True)
    if json.loads(ckpt["config"]).get("cell_stride", 16) != 16:
        raise SystemExit("the layout test reads a stride-16 head's peak")
    model, cfg, mcfg = Trainable.from_checkpoint(ckpt)
    folder = args.features or cfg["val_features"]
    res = {"run": str(args.run), "step": int(ckpt["step"]), "features": str(folder),
           **summary(query_scores(model, load_features(folder, cfg=mcfg), mcfg))}
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(res, indent=2) + "\n")
    tmp.replace(args.out)
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
