"""Train the yolz detector.

    python -m training.train --config training/configs/cpu_small.yaml [--out runs/NAME] [--resume]
    python -m training.train --config training/configs/cpu_long.yaml --init runs/cpu_default/last.pt
    torchrun --nproc_per_node=G -m training.train --config training/configs/gpu.yaml   # multi-GPU (DDP)

One episode per step: C objects with two disjoint sets of N reference views each (the contrastive
pair), and B scenes whose per-cell targets say where each of the C objects is visible (objects
absent from a scene are all-negative grids). Loss = w_nce * InfoNCE(mean-of-N anchors, positives)
+ w_focal * focal(cells). Checkpoints (`last.pt`, weights and optimiser only, loaded with
weights_only=True) make runs resumable; `--init` starts a new run (fresh optimiser and schedule)
from another run's weights. TensorBoard logs go to the run folder.
"""
import argparse
import dataclasses
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import yaml
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from training.data.episodes import EpisodeConfig, EpisodeSampler
from training.losses import info_nce, sigmoid_focal_loss
from training.model import ModelConfig, YolzModel

DEFAULTS = {
    "seed": 0,
    "steps": 2000,
    "lr": 3e-4,
    "backbone_lr_scale": 0.3,  # pretrained towers move slower than the new heads
    "weight_decay": 0.05,
    "warmup_steps": 100,
    "grad_clip": 1.0,
    "temperature": 0.07,
    "w_nce": 1.0,
    "w_focal": 1.0,
    "focal_alpha": 0.25,
    "focal_gamma": 2.0,
    "detach_scene_embeddings": False,  # stop the scene loss's gradient into the object tower
    "log_every": 10,
    "ckpt_every": 200,
    "threads": 0,  # torch CPU threads, 0 = torch's default
    "amp": True,  # bf16 autocast on CUDA only
    "model": {},
    "data": {},
}


def load_config(path):
    cfg = json.loads(json.dumps(DEFAULTS))
    with open(path) as f:
        user = yaml.safe_load(f) or {}
    unknown = set(user) - set(cfg)
    if unknown:
        raise SystemExit(f"{path}: unknown config keys {sorted(unknown)}")
    cfg.update(user)
    return cfg


def to_tensor(images_uint8, device):  # [..., H, W, 3] uint8 -> [..., 3, H, W] float 0..255
    return torch.from_numpy(images_uint8).to(device).movedim(-1, -3).float()


def episode_loss(model, batch, cfg, device):
    c = batch["views_a"].shape[0]
    views = to_tensor(np.stack([batch["views_a"], batch["views_b"]]), device)
    anchor, positive, logits = model(views, to_tensor(batch["scenes"], device),
                                     cfg["detach_scene_embeddings"])
    nce = info_nce(anchor, positive, cfg["temperature"])
    targets = torch.from_numpy(batch["targets"]).to(device)
    focal = sigmoid_focal_loss(logits.float(), targets, cfg["focal_alpha"], cfg["focal_gamma"])
    loss = cfg["w_nce"] * nce + cfg["w_focal"] * focal
    with torch.no_grad():
        top1 = ((anchor @ positive.t()).argmax(1) == torch.arange(c, device=device)).float().mean()
    return loss, {"loss": loss.item(), "nce": nce.item(), "focal": focal.item(),
                  "top1": top1.item()}


def lr_at(step, cfg):
    if step < cfg["warmup_steps"]:
        return (step + 1) / cfg["warmup_steps"]
    progress = (step - cfg["warmup_steps"]) / max(1, cfg["steps"] - cfg["warmup_steps"])
    return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--config", required=True)
    ap.add_argument("--out", help="run folder (default runs/<config name>)")
    ap.add_argument("--resume", action="store_true", help="continue from <out>/last.pt")
    ap.add_argument("--steps", type=int, help="override the config's steps")
    ap.add_argument("--init", help="start from this checkpoint's model weights (new optimiser and "
                                   "schedule); ignored when --resume finds <out>/last.pt")
    args = ap.parse_args(argv)

    cfg = load_config(args.config)
    if args.steps:
        cfg["steps"] = args.steps
    out = Path(args.out or Path("runs") / Path(args.config).stem)

    # torchrun sets these; a plain `python -m` run is rank 0 of 1.
    ddp = "LOCAL_RANK" in os.environ
    rank = int(os.environ.get("RANK", 0))
    world = int(os.environ.get("WORLD_SIZE", 1))
    if ddp:
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        device = torch.device(f"cuda:{os.environ['LOCAL_RANK']}" if torch.cuda.is_available()
                              else "cpu")
        if device.type == "cuda":
            torch.cuda.set_device(device)
    else:
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if cfg["threads"]:
        torch.set_num_threads(cfg["threads"])
    torch.manual_seed(cfg["seed"] + rank)
    rng = np.random.default_rng([cfg["seed"], rank])

    model_cfg = ModelConfig(**cfg["model"])
    data_cfg = EpisodeConfig(**{"seed": cfg["seed"], **cfg["data"]})
    sampler = EpisodeSampler(data_cfg)
    model = YolzModel(model_cfg).to(device)

    backbone = [p for n, p in model.named_parameters() if ".backbone." in f".{n}" and p.requires_grad]
    heads = [p for n, p in model.named_parameters() if ".backbone." not in f".{n}" and p.requires_grad]
    opt = torch.optim.AdamW([
        {"params": backbone, "lr": cfg["lr"] * cfg["backbone_lr_scale"]},
        {"params": heads, "lr": cfg["lr"]},
    ], weight_decay=cfg["weight_decay"])
    base_lrs = [g["lr"] for g in opt.param_groups]

    step, elapsed_before = 0, 0.0
    ckpt_path = out / "last.pt"
    if args.resume and ckpt_path.exists():
        ckpt = torch.load(ckpt_path, map_location=device, weights_only=True)
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        step = int(ckpt["step"])
        elapsed_before = float(ckpt["elapsed_s"])
        rng = np.random.default_rng([cfg["seed"], rank, step])  # fresh episodes after resume
    elif args.init:
        init = torch.load(args.init, map_location=device, weights_only=True)
        model.load_state_dict(init["model"])
        cfg["init"] = str(args.init)
        rng = np.random.default_rng([cfg["seed"], rank, int(init["step"])])  # unseen episodes
    if ddp:
        model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)

    main_rank = rank == 0
    if main_rank:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(
            {**cfg, "model": dataclasses.asdict(model_cfg), "data": dataclasses.asdict(data_cfg),
             "world_size": world, "device": str(device)}, indent=2))
        writer = SummaryWriter(out / "tb")
    use_amp = cfg["amp"] and device.type == "cuda"

    model.train()
    bar = tqdm(total=cfg["steps"], initial=step, disable=not main_rank, dynamic_ncols=True)
    started = time.time()
    while step < cfg["steps"]:
        for g, base in zip(opt.param_groups, base_lrs):
            g["lr"] = base * lr_at(step, cfg)
        batch = sampler.sample(rng)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_amp):
            loss, stats = episode_loss(model, batch, cfg, device)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg["grad_clip"])
        opt.step()
        step += 1
        if main_rank:
            bar.update(1)
            if step % cfg["log_every"] == 0 or step == cfg["steps"]:
                bar.set_postfix({k: f"{v:.3f}" for k, v in stats.items()})
                for k, v in stats.items():
                    writer.add_scalar(f"train/{k}", v, step)
                writer.add_scalar("train/lr", opt.param_groups[1]["lr"], step)
            if step % cfg["ckpt_every"] == 0 or step == cfg["steps"]:
                raw = model.module if ddp else model
                tmp = ckpt_path.with_suffix(".tmp")
                torch.save({"model": raw.state_dict(), "optimizer": opt.state_dict(),
                            "step": step, "elapsed_s": elapsed_before + time.time() - started}, tmp)
                os.replace(tmp, ckpt_path)  # atomic: a crash never leaves a half-written ckpt
    bar.close()
    if main_rank:
        writer.close()
        print(f"trained {step} steps in {time.time() - started:.0f} s -> {ckpt_path}")
    if ddp:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
