"""Backbone features of real-object episodes, computed once and trained on many times.

Lite0 up to --block never trains (training/model/backbone.py), so each scene and each reference
view goes through that part exactly once; training then runs only what comes after it (the
heads, and with --block 7 the adapted blocks 8-10) on a 2-core CPU. Views are prepared by the runtime's own code (yolz_ros.runtime.geometry.prepare_view at every
view size of the model, yolz_ros.runtime.object_tokens.token_mask for which tokens show the object), so a
training view is the runtime's view pixel for pixel.

    python -m training.data.features --split train --episodes 600 --out data/features/train
    python -m training.data.features --split val --from-bench data/realbench/val --out data/features/val

One npz per episode (Cb: the cached block's channels, 112 at block 10, 80 at block 7): scene
[S, Cb, 30, 40] fp16; for each view size s: views_<s> [C, N, 2, Cb, s/16, s/16] fp16 (variant
0 = alpha cut-out, 1 = photo with background) and mask_<s> [C, N, 2, s/16, s/16]; targets,
present, visible_pixels. Resumable: existing files are skipped.

Experiments (`make ablation`; models/yolz_tokens/ablation_v3.json has what they measured):
  --small-prob P   episodes where a share P of the pasted objects is 20-60 px tall
  --stride8 DIR    a side file per episode in DIR: scene8 [S, 40, 60, 80] fp16 (the stride-8 stage)
                   and targets8 [S, C, 60, 80] (the cell rule at stride 8), for a finer grid.
                   Episodes are regenerated from their seed; an existing main file must agree.
  --benchmark-config  the benchmark's episode settings (to regenerate val: --split val --episodes
                   30 --seed 20261201 --benchmark-config) instead of the training ones
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch

from training.data import realbench
from training.data.episodes import cell_targets
from training.model.match import PAD_VALUE, PATCH, MatchConfig
from training.model.backbone import BLOCK16, LITE0_STAGE_ENDS, FrozenLite0
from yolz_ros.runtime.foreground import view_alpha
from yolz_ros.runtime.geometry import prepare_view
from yolz_ros.runtime.object_tokens import token_mask


def prepared_views(view, size: int, cfg: MatchConfig):
    """(uint8 [size, size, 3] as the runtime's embedder sees it, token mask) of one RGB(A) view."""
    rgb, alpha = (view[:, :, :3], view[:, :, 3]) if view.shape[2] == 4 else (view, None)
    rgb = np.ascontiguousarray(rgb)
    alpha = view_alpha(rgb, alpha, cfg.no_alpha)  # the runtime's rule for views without alpha
    img = prepare_view(rgb, alpha, size, PAD_VALUE)
    return img, token_mask(alpha, rgb.shape[:2], size, PATCH, cfg.min_alpha_fraction,
                           cfg.no_alpha_centre)


class OrtBackbone:
    """The frozen backbone through ONNX Runtime (5-10x faster than eager torch on this CPU):
    exported once to data/cache, checked against torch, then float32 NCHW in -> features out."""

    def __init__(self, data_dir: str = "data", threads: int = 1, last_block: int = BLOCK16):
        import onnxruntime as ort

        self.last_block = last_block
        path = Path(data_dir) / "cache" / f"lite0_blocks0-{last_block}.onnx"
        if not path.is_file():
            model = FrozenLite0(pretrained=True, last_block=last_block)
            x = torch.rand(2, 3, 128, 128) * 255
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            torch.onnx.export(model, (x,), str(tmp), opset_version=17, input_names=["x"],
                              output_names=["f"], dynamo=False,
                              dynamic_axes={"x": {0: "N", 2: "H", 3: "W"},
                                            "f": {0: "N", 2: "h", 3: "w"}})
            tmp.replace(path)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    def __call__(self, x: np.ndarray, chunk: int = 96) -> np.ndarray:
        x = np.ascontiguousarray(x, np.float32)
        return np.concatenate([self.session.run(None, {"x": x[i:i + chunk]})[0]
                               for i in range(0, len(x), chunk)])


def episode_features(backbone, ep: dict, cfg: MatchConfig) -> dict:
    """`backbone`: float32 [N, 3, H, W] RGB 0..255 -> [N, 112, H/16, W/16] (OrtBackbone)."""
    scenes = ep["scenes"].transpose(0, 3, 1, 2).astype(np.float32)
    out = {"scene": backbone(scenes).astype(np.float16), "feature_block": np.int16(backbone.last_block),
           "targets": ep["targets"].astype(np.uint8),
           "present": ep["present"], "visible_pixels": ep["visible_pixels"],
           "boxes": ep["boxes"]}  # visible box per (scene, object), pixels: the box head's labels
    c, n = ep["views_alpha"].shape[:2]
    for s in cfg.view_sizes:
        imgs = np.empty((c, n, 2, s, s, 3), np.uint8)
        masks = np.empty((c, n, 2, s // PATCH, s // PATCH), bool)
        for i in range(c):
            for j in range(n):
                for v, view in enumerate((ep["views_alpha"][i, j], ep["views_photo"][i, j])):
                    imgs[i, j, v], masks[i, j, v] = prepared_views(view, s, cfg)
        f = backbone(imgs.reshape(-1, s, s, 3).transpose(0, 3, 1, 2).astype(np.float32))
        out[f"views_{s}"] = f.reshape(c, n, 2, *f.shape[1:]).astype(np.float16)
        out[f"mask_{s}"] = masks
    return out


STRIDE8 = 8


def stride8_features(backbone8, ep: dict, rcfg: realbench.RealConfig) -> dict:
    """The stride-8 stage of every scene and the cell rule's targets on its 60 x 80 grid."""
    scenes = ep["scenes"].transpose(0, 3, 1, 2).astype(np.float32)
    c = ep["present"].shape[1]
    targets = [cell_targets(inst, c, STRIDE8, rcfg.cell_positive_coverage,
                            rcfg.min_visible_pixels)[0] for inst in ep["instances"]]
    return {"scene8": backbone8(scenes).astype(np.float16),
            "targets8": np.stack(targets).astype(np.uint8)}


def _save(path: Path, arrays: dict) -> None:
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Frozen-backbone features of real-object episodes.")
    ap.add_argument("--split", default="train", choices=["train", "val", "test"])
    ap.add_argument("--episodes", type=int, default=600)
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--from-bench", type=Path, help="featurize saved benchmark episodes instead")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--data-dir", default="data")
    ap.add_argument("--seed", type=int, default=realbench.BENCH_SEED["train"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--small-prob", type=float, default=0.0,
                    help="share of pasted objects 20-60 px tall (training episodes)")
    ap.add_argument("--stride8", type=Path, help="also write stride-8 side files into this folder")
    ap.add_argument("--benchmark-config", action="store_true",
                    help="the benchmark's episode settings instead of the training ones")
    ap.add_argument("--sources", default="",
                    help="more object sources for training episodes, e.g. 'sweethome:4,gcompris:2,"
                         "robosuite:1,outdoor:0.2' (objects per episode; share of scenes on "
                         "GCompris outdoor photos); empty: products and stamps only, as before")
    ap.add_argument("--block", type=int, default=BLOCK16,
                    help="the last Lite0 block cached (10: the frozen tokens' input; 7 or 4: the "
                         "input of trainable blocks 8-10 or 5-10)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = MatchConfig()
    backbone = OrtBackbone(args.data_dir, args.threads, args.block)
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    if args.from_bench:
        for i, ep in enumerate(realbench.load(args.split, folder=args.from_bench)):
            path = args.out / f"episode_{i:04d}.npz"
            if not path.is_file():
                _save(path, episode_features(backbone, ep, cfg))
        print(f"featurized {args.from_bench} -> {args.out} in {time.time() - t0:.0f} s")
        return
    # Training episodes: more clutter and some synthetic backgrounds; never the benchmark's seeds.
    rcfg = realbench.RealConfig(split=args.split, data_dir=args.data_dir) if args.benchmark_config \
        else realbench.RealConfig(split=args.split, data_dir=args.data_dir,
                                  procedural_background_prob=0.1, max_distractors=4,
                                  small_prob=args.small_prob, **realbench.parse_sources(args.sources))
    src = realbench.ObjectSource.for_config(rcfg)
    backbone8 = OrtBackbone(args.data_dir, args.threads, LITE0_STAGE_ENDS[STRIDE8][0]) \
        if args.stride8 else None
    if args.stride8:
        args.stride8.mkdir(parents=True, exist_ok=True)
    for i in range(args.start, args.episodes):
        path = args.out / f"episode_{i:04d}.npz"
        side = args.stride8 / path.name if args.stride8 else None
        if path.is_file() and (side is None or side.is_file()):
            continue
        ep = realbench.make_episode(src, rcfg, np.random.default_rng([args.seed, i]))
        if path.is_file():  # only the side file is missing: it must describe the same episode
            with np.load(path) as z:
                if not np.array_equal(z["targets"], ep["targets"].astype(np.uint8)):
                    raise SystemExit(f"{path} is not episode {i} of seed {args.seed} as "
                                     "generated now: regenerate it or drop --stride8")
        else:
            _save(path, episode_features(backbone, ep, cfg))
        if side is not None:
            _save(side, stride8_features(backbone8, ep, rcfg))
        if (i + 1) % 20 == 0:
            print(f"{i + 1}/{args.episodes} episodes, {time.time() - t0:.0f} s", flush=True)
    print(f"done: {args.out} in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
