"""Export a trained checkpoint to a model folder (docs/model_folder.md): two ONNX graphs + model.json.

    python -m training.export --run runs/cpu_small --out models/yolz_lite0 [--fp32-weights]

The graphs take RGB pixels in [0, 255] (normalisation inside), N views and K objects dynamic. Weights
are stored as FP16 initializers with a Cast back to FP32, which halves the folder; the graphs still
compute in FP32 and ONNX Runtime folds the casts at load. `check_parity` compares ONNX Runtime with
torch on random inputs and is run by the export and by the tests.
"""
import argparse
import hashlib
import json
import subprocess
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import helper, numpy_helper

from training.model import DetectorGraph, EmbedderGraph, ModelConfig, YolzModel
from yolz_ros.runtime.atomic_file import write_bytes_atomic

OPSET = 17
FORMAT = "yolz-model/1"
PAD_VALUE = 114
PARITY_TOL = 1e-4  # FP32 graphs vs torch: only summation order differs
FP16_TOL = 2e-2  # FP16-stored weights vs FP32 torch, on unit embeddings and probabilities


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def model_id(name, hashes):
    joined = "".join(hashes[k] for k in sorted(hashes))
    return f"{name}@{hashlib.sha256(joined.encode()).hexdigest()[:12]}"


def store_weights_fp16(path, min_elements=256):
    """Rewrite large FP32 initializers as FP16 + Cast(to FP32); small ones stay FP32."""
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


def export_graphs(model, out_dir, scene_size, view_size):
    model.eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    e = model.cfg.embedding_dim
    emb_path, det_path = out_dir / "embedder.onnx", out_dir / "detector.onnx"
    views = torch.rand(2, 3, view_size, view_size) * 255
    torch.onnx.export(EmbedderGraph(model), (views,), str(emb_path), opset_version=OPSET,
                      input_names=["views"], output_names=["embeddings"],
                      dynamic_axes={"views": {0: "N"}, "embeddings": {0: "N"}}, dynamo=False)
    image = torch.rand(1, 3, *scene_size) * 255
    objects = torch.nn.functional.normalize(torch.randn(3, e), dim=1)
    torch.onnx.export(DetectorGraph(model), (image, objects), str(det_path), opset_version=OPSET,
                      input_names=["image", "embeddings"], output_names=["probabilities"],
                      dynamic_axes={"embeddings": {0: "K"}, "probabilities": {0: "K"}},
                      dynamo=False)
    return emb_path, det_path


def check_parity(model, out_dir, scene_size, view_size, seed=0):
    """Max abs difference between ONNX Runtime and torch, for N in (1, 8) and K in (1, 5)."""
    import onnxruntime as ort

    rng = np.random.default_rng(seed)
    model.eval()
    emb = ort.InferenceSession(str(out_dir / "embedder.onnx"), providers=["CPUExecutionProvider"])
    det = ort.InferenceSession(str(out_dir / "detector.onnx"), providers=["CPUExecutionProvider"])
    worst = {"embedder": 0.0, "detector": 0.0}
    with torch.no_grad():
        for n in (1, 8):
            v = (rng.random((n, 3, view_size, view_size)) * 255).astype(np.float32)
            ref = model.embed(torch.from_numpy(v)).numpy()
            got = emb.run(None, {"views": v})[0]
            worst["embedder"] = max(worst["embedder"], float(np.abs(ref - got).max()))
        for k in (1, 5):
            img = (rng.random((1, 3, *scene_size)) * 255).astype(np.float32)
            obj = rng.standard_normal((k, model.cfg.embedding_dim)).astype(np.float32)
            obj /= np.linalg.norm(obj, axis=1, keepdims=True)
            ref = torch.sigmoid(model.detect_logits(torch.from_numpy(img), torch.from_numpy(obj)))
            got = det.run(None, {"image": img, "embeddings": obj})[0]
            worst["detector"] = max(worst["detector"], float(np.abs(ref[0].numpy() - got).max()))
    return worst


def code_sha():
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def write_model_json(out_dir, name, model_cfg, scene_size, view_size, views_per_object,
                     threshold, training):
    hashes = {f: sha256_file(out_dir / f) for f in ("embedder.onnx", "detector.onnx")}
    stride = model_cfg.stride
    info = {
        "format": FORMAT,
        "name": name,
        "model_id": model_id(name, hashes),
        "input_size": list(scene_size),
        "view_size": view_size,
        "channel_order": "rgb",
        "pixel_range": [0, 255],
        "letterbox_pad_value": PAD_VALUE,
        "grid": {"rows": scene_size[0] // stride, "cols": scene_size[1] // stride,
                 "stride": stride},
        "embedding_dim": model_cfg.embedding_dim,
        "views_per_object": views_per_object,
        "default_threshold": threshold,
        "onnx": {"embedder": "embedder.onnx", "detector": "detector.onnx", "opset": OPSET},
        "sha256": hashes,
        "training": training,
    }
    write_bytes_atomic(out_dir / "model.json", (json.dumps(info, indent=2) + "\n").encode())
    return info


def load_run(run_dir):
    """The run's config and its model with the last checkpoint's weights (weights_only load)."""
    cfg = json.loads((run_dir / "config.json").read_text())
    model = YolzModel(ModelConfig(**{**cfg["model"], "pretrained": False}))
    ckpt = torch.load(run_dir / "last.pt", map_location="cpu", weights_only=True)
    model.load_state_dict(ckpt["model"])
    return cfg, model.eval(), ckpt


def main(argv=None):
    ap = argparse.ArgumentParser(description="Export a training run to a model folder.")
    ap.add_argument("--run", required=True, type=Path, help="run folder with config.json + last.pt")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--name", default="yolz_lite0")
    ap.add_argument("--scene-size", type=int, nargs=2, help="H W of the exported detector input "
                    "(default: the training scene size); multiples of 32")
    ap.add_argument("--threshold", type=float, default=0.5)
    ap.add_argument("--fp32-weights", action="store_true")
    args = ap.parse_args(argv)

    cfg, model, ckpt = load_run(args.run)
    data = cfg["data"]
    scene_size = tuple(args.scene_size or data["scene_size"])
    if any(s % 32 for s in scene_size):
        raise SystemExit(f"--scene-size {scene_size}: both sides must be multiples of 32")
    view_size = int(data["view_size"])
    graphs = export_graphs(model, args.out, scene_size, view_size)
    worst = check_parity(model, args.out, scene_size, view_size)
    print(f"FP32 graphs: ONNX Runtime vs torch, max abs diff {worst}")
    if max(worst.values()) > PARITY_TOL:
        raise SystemExit("export parity check failed: the ONNX graphs do not match torch")
    if not args.fp32_weights:
        for path in graphs:
            store_weights_fp16(path)
        worst = check_parity(model, args.out, scene_size, view_size)
        print(f"FP16-stored weights: max abs diff to FP32 torch {worst}")
        if max(worst.values()) > FP16_TOL:
            raise SystemExit("FP16 weight storage changed the outputs too much: use --fp32-weights")
    training = {"config": cfg, "code_sha": code_sha(), "steps": int(ckpt["step"]),
                "train_seconds": round(float(ckpt["elapsed_s"]), 1), "parity": worst}
    info = write_model_json(args.out, args.name, model.cfg, scene_size, view_size,
                            int(data["views_per_object"]), args.threshold, training)
    size_mb = sum(f.stat().st_size for f in args.out.glob("*.onnx")) / 1e6
    print(f"exported {info['model_id']} -> {args.out} ({size_mb:.1f} MB of ONNX)")


if __name__ == "__main__":
    main()
