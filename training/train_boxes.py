"""Train the box head (training/model/boxes.py) on the cached frozen-backbone scene features.

    python -m training.train_boxes --config training/configs/boxes_cpu.yaml --out runs/boxes --resume
    python -m training.train_boxes --config boxes.json --out runs/boxes --device cuda   # lent GPU

It needs torch and numpy only (PyYAML for a .yaml config, TensorBoard for logs: both optional),
so it runs as is on a lent GPU machine (torch, numpy, onnx, OpenCV; no PyBullet, no ROS) from a
copied feature cache.

The box head reads only the frozen backbone's stride-16 features, so it trains alone, on the
same feature cache as the match head (training/data/features.py: `scene`, `targets`, `boxes`),
without touching the match head. One loop: plain config values, checkpoints that carry their
config (`last.pt` for --resume, `best.pt` by validation), a validation estimate every
`eval_every` steps: on the val benchmark's present objects, the median IoU and the share of
IoU >= 0.5 of the box read at each object's best-covered cell ("centre cell") and averaged over
its cells.
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

from yolz_ros.runtime.geometry import box_iou
from training.model.boxes import BoxConfig, BoxHead, box_targets, distances_to_boxes, giou_loss
from training.config import load_config, lr_at, summary_writer

STRIDE = 16
DEFAULTS = {
    "seed": 0, "steps": 2000, "lr": 2e-3, "weight_decay": 0.01, "warmup_steps": 100,
    "grad_clip": 1.0, "scenes_per_step": 16, "w_l1": 1.0, "w_giou": 1.0,
    "eval_every": 250, "ckpt_every": 250, "log_every": 25, "threads": 2,
    "train_features": "data/features/train", "val_features": "data/features/val",
    "max_train_episodes": 0, "model": {},
}


def load_scenes(folder, limit=0):
    """(features [N, 112, r, c] fp16, targets [N, C, r, c], boxes [N, C, 4]) of every scene."""
    paths = sorted(p for p in Path(folder).glob("episode_*.npz") if ".tmp" not in p.name)
    paths = paths[:limit] if limit else paths
    if not paths:
        raise SystemExit(f"no feature episodes in {folder}: run python -m training.data.features")
    scenes = []
    for p in paths:
        with np.load(p, allow_pickle=False) as z:
            if "boxes" not in z.files:
                raise SystemExit(f"{p} has no boxes: featurize it again (it predates box labels)")
            for s in range(len(z["scene"])):
                scenes.append((z["scene"][s], z["targets"][s].astype(np.float32), z["boxes"][s]))
    return scenes


def batch_loss(head, batch, cfg, device="cpu"):
    feats = torch.from_numpy(np.stack([b[0] for b in batch]).astype(np.float32)).to(device)
    dist = head(feats)  # [B, 4, r, c]
    pred = distances_to_boxes(dist)  # [B, r, c, 4] cells
    l1 = giou = torch.zeros(())
    for i, (_, targets, boxes) in enumerate(batch):
        tgt, w = box_targets(torch.from_numpy(targets), torch.from_numpy(boxes), STRIDE)
        if w.sum() == 0:
            continue
        tgt, w = tgt.to(device), w.to(device)
        on = w > 0
        l1 = l1 + ((pred[i][on] - tgt[on]).abs().sum(dim=1) * w[on]).sum()
        giou = giou + (giou_loss(pred[i][on], tgt[on]) * w[on]).sum()
    n = max(1, sum(int(np.isfinite(b[2]).all(axis=1).sum()) for b in batch))
    return (cfg["w_l1"] * l1 + cfg["w_giou"] * giou) / n, l1 / n, giou / n


@torch.no_grad()
def validate(head, scenes, device="cpu"):
    """{centre_iou_median, centre_iou50, mean_iou_median} over present objects."""
    centre, mean = [], []
    for feats, targets, boxes in scenes:
        x = torch.from_numpy(feats[None].astype(np.float32)).to(device)
        pred = distances_to_boxes(head(x))[0].cpu().numpy() * STRIDE
        for c in range(len(boxes)):
            if not np.isfinite(boxes[c]).all() or targets[c].max() <= 0.5:
                continue
            cells = np.argwhere(targets[c] > 0.5)
            gx, gy = (boxes[c][0] + boxes[c][2]) / 2 / STRIDE, (boxes[c][1] + boxes[c][3]) / 2 / STRIDE
            r, cc = cells[np.argmin((cells[:, 0] + 0.5 - gy) ** 2 + (cells[:, 1] + 0.5 - gx) ** 2)]
            centre.append(box_iou(pred[r, cc], boxes[c]))
            mean.append(box_iou(pred[cells[:, 0], cells[:, 1]].mean(axis=0), boxes[c]))
    centre, mean = np.array(centre), np.array(mean)
    return {"objects": int(len(centre)), "centre_iou_median": float(np.median(centre)),
            "centre_iou50": float((centre >= 0.5).mean()), "centre_iou75": float((centre >= 0.75).mean()),
            "mean_iou_median": float(np.median(mean))}


def save(path, head, opt, step, elapsed, cfg, val):
    tmp = path.with_suffix(".tmp")
    state = {k: v.cpu() for k, v in head.state_dict().items()}  # loads anywhere
    torch.save({"model": state, "opt": opt.state_dict(), "step": step,
                "elapsed": elapsed, "config": json.dumps(cfg),
                "box_config": json.dumps(dataclasses.asdict(head.cfg)),
                "val": json.dumps(val)}, tmp)
    tmp.replace(path)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Train the box head on cached scene features.")
    ap.add_argument("--config", required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--stop-after", type=int, default=0, help="stop after this many steps (a chunk)")
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (a lent GPU machine)")
    args = ap.parse_args(argv)
    cfg = load_config(args.config, DEFAULTS)
    torch.manual_seed(cfg["seed"])
    torch.set_num_threads(cfg["threads"])
    rng = np.random.default_rng(cfg["seed"])
    head = BoxHead(BoxConfig(**cfg["model"])).to(args.device)
    opt = torch.optim.AdamW(head.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    args.out.mkdir(parents=True, exist_ok=True)
    step, elapsed, best = 0, 0.0, -1.0
    last = args.out / "last.pt"
    if args.resume and last.is_file():
        ck = torch.load(last, map_location=args.device, weights_only=True)
        head.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        step, elapsed = ck["step"], ck["elapsed"]
        best_path = args.out / "best.pt"
        if best_path.is_file():
            best = json.loads(torch.load(best_path, weights_only=True)["val"])["centre_iou_median"]
        rng = np.random.default_rng([cfg["seed"], step])
        print(f"resumed at step {step}")
    train = load_scenes(cfg["train_features"], cfg["max_train_episodes"])
    val = load_scenes(cfg["val_features"])
    print(f"{len(train)} training scenes, {len(val)} validation scenes")
    writer = summary_writer(args.out / "tb")
    t0, start = time.time(), step
    while step < cfg["steps"]:
        if args.stop_after and step - start >= args.stop_after:
            break
        for g in opt.param_groups:
            g["lr"] = cfg["lr"] * lr_at(step, cfg)
        batch = [train[i] for i in rng.choice(len(train), cfg["scenes_per_step"], replace=False)]
        loss, l1, giou = batch_loss(head, batch, cfg, args.device)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(head.parameters(), cfg["grad_clip"])
        opt.step()
        step += 1
        if step % cfg["log_every"] == 0:
            print(f"step {step}: loss {loss.item():.3f} (l1 {l1.item():.3f}, giou {giou.item():.3f}) "
                  f"{time.time() - t0:.0f} s", flush=True)
            writer.add_scalar("loss/total", loss.item(), step)
        if step % cfg["eval_every"] == 0 or step == cfg["steps"]:
            v = validate(head, val, args.device)
            print(f"step {step}: val {json.dumps(v)}", flush=True)
            for k, x in v.items():
                writer.add_scalar(f"val/{k}", x, step)
            if v["centre_iou_median"] > best:
                best = v["centre_iou_median"]
                save(args.out / "best.pt", head, opt, step, elapsed + time.time() - t0, cfg, v)
        if step % cfg["ckpt_every"] == 0 or step == cfg["steps"]:
            save(last, head, opt, step, elapsed + time.time() - t0, cfg, {})
    save(last, head, opt, step, elapsed + time.time() - t0, cfg, {})
    print(f"stopped at step {step} of {cfg['steps']}; best val centre IoU median {best:.3f}")


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    main()
