"""Start a run from a model folder's trained heads (config key `init_from`): the second stage of
linear-probe-then-fine-tune. The frozen-backbone model (the projection, match and box heads
trained on ImageNet tokens) is where backbone adaptation begins, instead of untrained heads.

The weights come out of the folder's detector.onnx, the only place a shipped model keeps them:
initializers keep their torch names (`model.head.*`, `boxes.*`) except four that torch's exporter
folds into anonymous constants (`_FOLDED`). `load_heads` checks the result by running the folder's
ONNX graph and the rebuilt torch graph on the same random input: a wrong mapping cannot pass.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from training.model.boxes import BoxHead
from training.model.match import DetectorGraph, MatchModel

FP16_SUFFIX = "__fp16"  # export.store_weights_fp16: <name>__fp16 -> Cast -> <name>
# head parameters the exporter folds: (the op that consumes the constant, transposed?)
_FOLDED = {"match_scale": ("Mul", False), "match_shift": ("Add", False),
           "presence.0.weight": ("MatMul", True), "presence.2.weight": ("MatMul", True)}
# The ONNX backbone's weights are FP16, torch's FP32: measured on the shipped v4, 0.003 in
# probability and 0.3 px in boxes; a head 10% off moves the probabilities by 0.29.
PROB_TOL, BOX_TOL_PX = 2e-2, 1.0


def _graph_constants(path: Path) -> tuple[dict[str, np.ndarray], dict[str, set[str]]]:
    """{name without __fp16: FP32 array}, {name: op types that consume it}."""
    graph = onnx.load(str(path)).graph
    arrays = {i.name.removesuffix(FP16_SUFFIX): numpy_helper.to_array(i).astype(np.float32)
              for i in graph.initializer}
    consumers: dict[str, set[str]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, set()).add(node.op_type)
    return arrays, consumers


def _state(module: torch.nn.Module, prefix: str, arrays, consumers) -> dict[str, torch.Tensor]:
    state, anonymous = {}, {n: a for n, a in arrays.items() if n.startswith("onnx::")}
    for key, param in module.state_dict().items():
        if prefix + key in arrays:
            value = arrays[prefix + key]
        elif key in _FOLDED:
            op, transposed = _FOLDED[key]
            shape = tuple(param.shape[::-1] if transposed else param.shape)
            hits = [a for n, a in anonymous.items() if op in consumers.get(n, ())
                    and a.size == param.numel() and (not transposed or a.shape == shape)]
            if len(hits) != 1:
                raise SystemExit(f"{key}: {len(hits)} candidate constants in the ONNX graph")
            value = hits[0].T if transposed else hits[0]
        else:
            raise SystemExit(f"{prefix}{key}: not in the ONNX graph")
        state[key] = torch.from_numpy(np.ascontiguousarray(value)).reshape(param.shape)
    return state


def load_heads(folder: Path, head: torch.nn.Module, boxes: torch.nn.Module | None) -> dict:
    """Load `head` (and `boxes`) from folder/detector.onnx and check them; -> the folder's
    model.json. The folder's backbone must be the ImageNet one (a frozen-backbone model)."""
    folder = Path(folder)
    info = json.loads((folder / "model.json").read_text())
    arrays, consumers = _graph_constants(folder / "detector.onnx")
    head.load_state_dict(_state(head, "model.head.", arrays, consumers))
    if boxes is not None:
        if not info.get("boxes"):
            raise SystemExit(f"{folder}: no box head to start the box head from")
        boxes.load_state_dict(_state(boxes, "boxes.", arrays, consumers))
    probs, box_px = detector_difference(folder, head, boxes, tuple(info["input_size"]))
    if probs > PROB_TOL or box_px > BOX_TOL_PX:
        raise SystemExit(f"{folder}: the rebuilt heads differ from detector.onnx by {probs:.3g} "
                         f"in probability, {box_px:.3g} px in boxes (> {PROB_TOL}, {BOX_TOL_PX}); "
                         "is its backbone adapted?")
    return info


@torch.no_grad()
def detector_difference(folder: Path, head, boxes, input_size, seed: int = 0) -> tuple:
    """(max abs difference of probabilities, of box distances in pixels) between the folder's
    detector.onnx and torch with `head` and `boxes` on the ImageNet backbone. The objects are the
    folder's own embeddings of two crops of the random scene, so that the probabilities are not
    all near zero (random objects match nothing and would hide a wrong head)."""
    import onnxruntime as ort

    cfg = head.cfg
    model = MatchModel(dataclasses.replace(cfg, pretrained=True)).eval()
    model.head.load_state_dict(head.state_dict())
    box_copy = None
    if boxes is not None:
        box_copy = BoxHead(boxes.cfg).eval()
        box_copy.load_state_dict(boxes.state_dict())
    rng = np.random.default_rng(seed)
    image = (rng.random((1, 3, *input_size)) * 255).astype(np.float32)
    s = cfg.view_sizes[-1]
    views = np.stack([image[0, :, :s, :s], image[0, :, -s:, -s:]])
    run = {name: ort.InferenceSession(str(Path(folder) / f"{name}.onnx"),
                                      providers=["CPUExecutionProvider"])
           for name in ("embedder", "detector")}
    tokens = run["embedder"].run(None, {"views": views})[0]  # [2, D, s/16, s/16]
    tokens = tokens.reshape(2, cfg.token_dim, -1).transpose(0, 2, 1)
    tokens = np.concatenate([tokens, tokens.mean(1, keepdims=True)], 1)[:, -cfg.object_tokens:]
    objects = (tokens / np.linalg.norm(tokens, axis=-1, keepdims=True)).reshape(2, -1)
    objects = objects.astype(np.float32)
    ref = DetectorGraph(model, box_copy)(torch.from_numpy(image), torch.from_numpy(objects))
    ref = [r.numpy() for r in (ref if isinstance(ref, tuple) else (ref,))]
    got = run["detector"].run(None, {"image": image, "embeddings": objects})
    worst = [float(np.abs(r - g).max()) for r, g in zip(ref, got)]
    return worst[0], (worst[1] if len(worst) > 1 else 0.0)
