"""Put a trained box head (training/train_boxes.py) into a model folder's detector.

    python -m training.model.box_export --model models/yolz_tokens --boxes runs/boxes \
        --out models/yolz_v3 [--name yolz_v3]

The box head reads the frozen backbone's stride-16 features, the very tensor the match head reads
inside detector.onnx, so it is attached to that graph rather than re-exported with it: the match
head's weights and outputs stay bit for bit what they were (checked), and the detector gains one
output, computed once per frame whatever K is:

  box_distances [rows, cols, 4]  left, top, right, bottom from each cell's centre to the sides of
                                 the visible box of the object covering that cell, input pixels

model.json declares it ("boxes"); the runtime turns it into a box per detection. The embedder is
copied unchanged.
"""
from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import compose

from training.model.boxes import BoxConfig, BoxHead
from training.model.export import FP16_TOL, OPSET, PARITY_TOL, code_sha, store_weights_fp16
from yolz_ros.runtime.atomic_file import write_bytes_atomic
from yolz_ros.runtime.model_info import compute_model_id, sha256_file

BOX_OUTPUT = "box_distances"


class BoxGraph(torch.nn.Module):
    """feats [1, 112, r, c] -> box_distances [r, c, 4] in input pixels."""

    def __init__(self, head: BoxHead, stride: int):
        super().__init__()
        self.head, self.stride = head, float(stride)

    def forward(self, feats):
        return self.head(feats)[0].permute(1, 2, 0) * self.stride


def feature_tensor(graph: onnx.GraphProto) -> str:
    """The backbone's stride-16 output inside a v2 detector graph: the input of the match head's
    1x1 token projection (the Conv whose weight is model.head.proj.weight)."""
    for node in graph.node:
        if node.op_type == "Conv" and node.input[1].startswith("model.head.proj.weight"):
            return node.input[0]
    raise SystemExit("this detector.onnx has no match-head projection (model.head.proj): not a "
                     "yolz v2 detector")


def load_box_head(run: Path, checkpoint: str = "best"):
    ckpt = torch.load(run / f"{checkpoint}.pt", map_location="cpu", weights_only=True)
    if ckpt.get("boxes"):  # training/train.py with w_boxes > 0: trained with the match head
        head = BoxHead(BoxConfig(**json.loads(ckpt["config"])["boxes"]))
        head.load_state_dict(ckpt["boxes"])
        ckpt = {**ckpt, "elapsed": ckpt["elapsed_s"]}
    else:  # a box head trained alone (training/train_boxes.py)
        head = BoxHead(BoxConfig(**json.loads(ckpt["box_config"])))
        head.load_state_dict(ckpt["model"])
    return head.eval(), ckpt


def detach(detector: onnx.ModelProto) -> onnx.ModelProto:
    """The detector without an attached box head (its box_head/ nodes, weights and output):
    what a new head replaces."""
    g = onnx.ModelProto()
    g.CopyFrom(detector)
    graph = g.graph
    keep = [n for n in graph.node if not n.name.startswith("box_head/")]
    del graph.node[:]
    graph.node.extend(keep)
    inits = [i for i in graph.initializer if not i.name.startswith("box_head/")]
    del graph.initializer[:]
    graph.initializer.extend(inits)
    outs = [o for o in graph.output if o.name != BOX_OUTPUT]
    del graph.output[:]
    graph.output.extend(outs)
    return g


def similarity_as_matmul(detector: onnx.ModelProto) -> onnx.ModelProto:
    """The match head's cell-to-token cosines as a broadcast MatMul, as training/model/match.py
    now exports them: a detector exported with the einsum ("bktd,bdr->bktr": objects
    [1, K, T, D], cells [1, D, R]) gets Unsqueeze(cells, 1) + MatMul in its place. Same products
    and sums; ONNX Runtime runs the MatMul as one GEMM instead of the einsum's slower path."""
    g = onnx.ModelProto()
    g.CopyFrom(detector)
    nodes = list(g.graph.node)
    for i, node in enumerate(nodes):
        equation = [a.s for a in node.attribute if a.name == "equation"]
        if node.op_type != "Einsum" or equation != [b"bktd,bdr->bktr"]:
            continue
        objects, cells = node.input
        axis, column = f"{node.name}/axis", f"{node.name}/cells_as_matrix"
        g.graph.initializer.append(onnx.numpy_helper.from_array(np.array([1], np.int64), axis))
        nodes[i:i + 1] = [
            onnx.helper.make_node("Unsqueeze", [cells, axis], [column], name=f"{node.name}/unsq"),
            onnx.helper.make_node("MatMul", [objects, column], list(node.output),
                                  name=f"{node.name}/matmul")]
        del g.graph.node[:]
        g.graph.node.extend(nodes)
        onnx.checker.check_model(g)
        break
    return g


def attach(detector: onnx.ModelProto, head: BoxHead, stride: int, workdir: Path,
           fp16: bool = True) -> onnx.ModelProto:
    detector = similarity_as_matmul(detach(detector))  # a model with a head gets the new one
    feats = feature_tensor(detector.graph)
    box_path = workdir / "box_head.onnx"
    x = torch.rand(1, head.body[0].in_channels, 30, 40)
    torch.onnx.export(BoxGraph(head, stride), (x,), str(box_path), opset_version=OPSET,
                      input_names=["feats"], output_names=[BOX_OUTPUT],
                      dynamic_axes={"feats": {2: "r", 3: "c"}, BOX_OUTPUT: {0: "r", 1: "c"}},
                      dynamo=False)
    if fp16:
        store_weights_fp16(box_path)
    box = onnx.load(str(box_path))
    # merge_models joins on graph outputs: expose the feature tensor, join, hide it again
    det = onnx.ModelProto()
    det.CopyFrom(detector)
    det.graph.output.append(onnx.helper.make_tensor_value_info(feats, onnx.TensorProto.FLOAT,
                                                               None))
    box.ir_version = det.ir_version
    merged = compose.merge_models(det, box, io_map=[(feats, "feats")], prefix2="box_head/",
                                  outputs=[o.name for o in detector.graph.output] +
                                  [f"box_head/{BOX_OUTPUT}"])
    for out in merged.graph.output:  # the output keeps its plain name
        if out.name == f"box_head/{BOX_OUTPUT}":
            out.name = BOX_OUTPUT
    for node in merged.graph.node:
        node.output[:] = [BOX_OUTPUT if o == f"box_head/{BOX_OUTPUT}" else o for o in node.output]
    onnx.checker.check_model(merged)
    return merged


@torch.no_grad()
def check(source: Path, out: Path, head: BoxHead, stride: int, size, seed: int = 0):
    """(max abs difference of the probabilities to the source model, of the box distances to
    torch on the features the source graph computes)."""
    import onnxruntime as ort

    rng = np.random.default_rng(seed)
    src = ort.InferenceSession(detach(onnx.load(str(source / "detector.onnx"))).SerializeToString(),
                               providers=["CPUExecutionProvider"])
    new = ort.InferenceSession(str(out / "detector.onnx"), providers=["CPUExecutionProvider"])
    dim = int(src.get_inputs()[1].shape[1]) if isinstance(src.get_inputs()[1].shape[1], int) \
        else json.loads((source / "model.json").read_text())["embedding_dim"]
    # the features themselves, for the torch reference: the source graph with them as an output
    probe = detach(onnx.load(str(source / "detector.onnx")))
    feats_name = feature_tensor(probe.graph)
    probe.graph.output.append(onnx.helper.make_tensor_value_info(feats_name,
                                                                 onnx.TensorProto.FLOAT, None))
    feats_sess = ort.InferenceSession(probe.SerializeToString(),
                                      providers=["CPUExecutionProvider"])
    worst_p = worst_b = 0.0
    for k in (1, 5):
        img = (rng.random((1, 3, *size)) * 255).astype(np.float32)
        emb = rng.standard_normal((k, dim)).astype(np.float32)
        p0 = src.run(["probabilities"], {"image": img, "embeddings": emb})[0]
        p1, dist = new.run(["probabilities", BOX_OUTPUT], {"image": img, "embeddings": emb})
        feats = feats_sess.run([feats_name], {"image": img, "embeddings": emb})[0]
        ref = BoxGraph(head, stride)(torch.from_numpy(feats)).numpy()
        worst_p = max(worst_p, float(np.abs(p0 - p1).max()))
        worst_b = max(worst_b, float(np.abs(ref - dist).max()))
    return worst_p, worst_b


def main(argv=None):
    ap = argparse.ArgumentParser(description="Attach a trained box head to a model folder.")
    ap.add_argument("--model", required=True, type=Path, help="source model folder (yolz v2)")
    ap.add_argument("--boxes", required=True, type=Path, help="box head run (train_boxes)")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--name", default=None, help="default: the output folder's name")
    ap.add_argument("--checkpoint", default="best", choices=["best", "last"])
    ap.add_argument("--no-alpha", choices=["centre", "grabcut"], default=None,
                    help="the rule for views without alpha (object_tokens.no_alpha); default: "
                         "the source model's")
    args = ap.parse_args(argv)
    info = json.loads((args.model / "model.json").read_text())
    stride, size = int(info["grid"]["stride"]), tuple(info["input_size"])
    head, ckpt = load_box_head(args.boxes, args.checkpoint)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        merged = attach(onnx.load(str(args.model / "detector.onnx")), head, stride, Path(tmp))
        write_bytes_atomic(args.out / "detector.onnx", merged.SerializeToString())
    if args.out.resolve() != args.model.resolve():
        shutil.copyfile(args.model / "embedder.onnx", args.out / "embedder.onnx")
    worst_p, worst_b = check(args.model, args.out, head, stride, size)
    print(f"probabilities vs {args.model}: max abs diff {worst_p}; box distances vs torch "
          f"(FP16-stored weights): {worst_b:.4f} px")
    if worst_p > PARITY_TOL or worst_b > FP16_TOL * stride * 4:
        raise SystemExit("parity check failed")
    name = args.name or args.out.name
    hashes = {f: sha256_file(args.out / f) for f in ("embedder.onnx", "detector.onnx")}
    info.update(name=name, model_id=compute_model_id(name, hashes), sha256=hashes)
    if args.no_alpha:
        info["object_tokens"]["no_alpha"] = args.no_alpha
    info["boxes"] = {"output": BOX_OUTPUT, "layout": "rows, cols, (left, top, right, bottom)",
                     "units": "input pixels from the cell centre",
                     "training": {"config": json.loads(ckpt["config"]), "code_sha": code_sha(),
                                  "steps": int(ckpt["step"]), "checkpoint": args.checkpoint,
                                  "train_seconds": round(float(ckpt["elapsed"]), 1),
                                  "val": json.loads(ckpt["val"] or "{}"),
                                  "parity_px": round(worst_b, 4)}}
    write_bytes_atomic(args.out / "model.json", (json.dumps(info, indent=2) + "\n").encode())
    print(f"exported {info['model_id']} -> {args.out}")


if __name__ == "__main__":
    main()
