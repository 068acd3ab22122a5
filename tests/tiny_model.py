"""A tiny model folder that follows docs/model_folder.md (yolz-model/2, objects as tokens) exactly,
for tests. No torch: the graphs are written with the `onnx` package's helper API and NumPy
weights (about 20 KB in all), so the unit tier needs neither torch nor ROS.

    from tiny_model import make_tiny_model
    folder = make_tiny_model(tmp_path / "tiny")

The graphs, like the real model's (training/match_model.py), share one "backbone": four 3x3
stride-2 convolutions (ImageNet normalisation of RGB [0, 255] inside the graph) and a unit norm
over channels, i.e. one D-dim unit token per 16 x 16 patch.
  embedder.onnx  views [N, 3, S, S] (N and S dynamic) -> embeddings [N, D, S/16, S/16]
  detector.onnx  image [1, 3, H, W] + embeddings [K, T*D] (K dynamic) -> probabilities
                 [K, H/16, W/16] = sigmoid(cell logit) * sigmoid(presence logit), where the cell
                 logit is a scaled best cosine of the cell to any of the object's T tokens and
                 the presence logit a scaled best cell of that map; with boxes=True also a box
                 head, box_distances [H/16, W/16, 4] (left, top, right, bottom input pixels from
                 each cell centre, a 1x1 convolution of the cell tokens), declared in model.json
                 "boxes" as training/model/export.py does.

`tiny_weights(...)` gives the weights a folder was built from (the same for the same arguments),
and `reference_embed` / `reference_detect` compute the graphs in NumPy, for parity tests of the
backends. tests/training/tiny_torch.py builds the same model in torch.
"""
import hashlib
import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
OPSET = 17
PATCH = 16  # the grid stride and the token patch: four stride-2 convolutions
EPS = 1e-12  # as torch.nn.functional.normalize
CHANNELS = (3, 8, 8, 8)  # then token_dim


# ------------------------------------------------------------------------------------------
# weights
def tiny_weights(token_dim=8, seed=0):
    """The weights of make_tiny_model(..., token_dim=token_dim, seed=seed), as NumPy arrays:
    convs [(weight [out, in, 3, 3], bias [out])] with PyTorch's default initialisation bounds,
    and the scales and biases of the cell and presence logits."""
    rng = np.random.default_rng(seed)
    convs = []
    channels = CHANNELS + (token_dim,)
    for c_in, c_out in zip(channels[:-1], channels[1:]):
        bound = 1.0 / np.sqrt(c_in * 9)
        convs.append((rng.uniform(-bound, bound, (c_out, c_in, 3, 3)).astype(np.float32),
                      rng.uniform(-bound, bound, c_out).astype(np.float32)))
    return {"convs": convs, "cell_scale": np.float32(6.0), "cell_bias": np.float32(-2.0),
            "presence_scale": np.float32(4.0), "presence_bias": np.float32(-1.0),
            "box_w": rng.uniform(-1, 1, (4, token_dim)).astype(np.float32),
            "box_b": np.full(4, 1.5, np.float32)}


# ------------------------------------------------------------------------------------------
# ONNX graphs
class _Graph:
    """A small helper around onnx.helper: named nodes and initializers, in order."""

    def __init__(self, prefix):
        self.prefix, self.nodes, self.inits, self.n = prefix, [], [], 0

    def const(self, name, array):
        name = f"{self.prefix}.{name}"
        self.inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def op(self, op_type, inputs, out=None, **attrs):
        self.n += 1
        out = out or f"{self.prefix}.{op_type.lower()}_{self.n}"
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=f"{op_type}_{self.n}",
                                           **attrs))
        return out

    def l2_normalize(self, x, axis, out=None):
        """x / max(||x||, eps) along `axis`, as torch.nn.functional.normalize."""
        norm = self.op("ReduceL2", [x], axes=[axis], keepdims=1)
        norm = self.op("Max", [norm, self.const(f"eps_{self.n}", np.array(EPS, np.float32))])
        return self.op("Div", [x, norm], out=out)

    def tokens(self, x, weights, out=None):
        """RGB [0, 255] [B, 3, h, w] -> unit tokens [B, D, h/16, w/16]."""
        mean = np.array(MEAN, np.float32).reshape(1, 3, 1, 1) * 255
        std = np.array(STD, np.float32).reshape(1, 3, 1, 1) * 255
        x = self.op("Div", [self.op("Sub", [x, self.const("mean", mean)]),
                            self.const("std", std)])
        layers = weights["convs"]
        for i, (w, b) in enumerate(layers):
            x = self.op("Conv", [x, self.const(f"conv{i}.weight", w),
                                 self.const(f"conv{i}.bias", b)],
                        kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
            if i < len(layers) - 1:  # no ReLU on the features
                x = self.op("Relu", [x])
        return self.l2_normalize(x, 1, out=out)

    def model(self, inputs, outputs):
        graph = helper.make_graph(self.nodes, self.prefix, inputs, outputs, self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                  producer_name="tests/tiny_model.py")
        model.ir_version = 8  # what the shipped models use; every ONNX Runtime reads it
        onnx.checker.check_model(model, full_check=True)
        return model


def embedder_graph(weights):
    """views [N, 3, S, S] -> embeddings [N, D, S/16, S/16] (unit tokens)."""
    d = weights["convs"][-1][0].shape[0]
    g = _Graph("embedder")
    g.tokens("views", weights, out="embeddings")
    return g.model(
        [helper.make_tensor_value_info("views", TensorProto.FLOAT, ["N", 3, "S", "S"])],
        [helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, ["N", d, "G", "G"])])


def detector_graph(weights, input_size, token_count, boxes=False):
    """image [1, 3, H, W] + embeddings [K, T*D] -> probabilities [K, H/16, W/16] (and with
    `boxes` box_distances [H/16, W/16, 4])."""
    h, w = input_size
    rows, cols = h // PATCH, w // PATCH
    d = weights["convs"][-1][0].shape[0]
    g = _Graph("detector")
    tokens = g.tokens("image", weights)  # [1, D, rows, cols]
    outputs = []
    if boxes:  # stride * softplus(1x1 conv): positive distances of about a cell
        dist = g.op("Conv", [tokens, g.const("box.weight", weights["box_w"][:, :, None, None]),
                             g.const("box.bias", weights["box_b"])], kernel_shape=[1, 1])
        dist = g.op("Mul", [g.op("Softplus", [dist]),
                            g.const("box.scale", np.array(PATCH, np.float32))])
        g.op("Transpose", [g.op("Squeeze", [dist, g.const("axis0", np.array([0], np.int64))])],
             out="box_distances", perm=[1, 2, 0])
        outputs.append(helper.make_tensor_value_info("box_distances", TensorProto.FLOAT,
                                                     [rows, cols, 4]))
    cells = g.op("Reshape", [tokens, g.const("cells_shape", np.array([d, rows * cols], np.int64))])
    objects = g.op("Reshape", ["embeddings",
                               g.const("tokens_shape", np.array([-1, token_count, d], np.int64))])
    objects = g.l2_normalize(objects, 2)  # [K, T, D]
    best = g.op("ReduceMax", [g.op("MatMul", [objects, cells])], axes=[1], keepdims=0)  # [K, R]
    cell = g.op("Add", [g.op("Mul", [best, g.const("cell_scale", weights["cell_scale"])]),
                        g.const("cell_bias", weights["cell_bias"])])
    presence = g.op("ReduceMax", [best], axes=[1], keepdims=1)  # [K, 1]
    presence = g.op("Add", [g.op("Mul", [presence, g.const("presence_scale",
                                                           weights["presence_scale"])]),
                            g.const("presence_bias", weights["presence_bias"])])
    probs = g.op("Mul", [g.op("Sigmoid", [cell]), g.op("Sigmoid", [presence])])
    g.op("Reshape", [probs, g.const("grid_shape", np.array([-1, rows, cols], np.int64))],
         out="probabilities")
    return g.model(
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, h, w]),
         helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, ["K", token_count * d])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["K", rows, cols])]
        + outputs)


# ------------------------------------------------------------------------------------------
# the folder
def _sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def make_tiny_model(directory, name="tiny", input_size=(64, 96), view_sizes=(32, 48),
                    token_dim=8, token_count=4, seed=0, threshold=0.5, min_alpha_fraction=0.5,
                    no_alpha_centre=0.6, boxes=False):
    """Write a model folder (model.json, embedder.onnx, detector.onnx, report.md/json); return
    its Path. The same arguments give the same bytes (and model_id). input_size and view_sizes
    must be multiples of 16. `boxes`: with a box head (output box_distances)."""
    directory = Path(directory)
    h, w = input_size
    if h % PATCH or w % PATCH or any(s % PATCH for s in view_sizes):
        raise ValueError(f"input_size {input_size} and view_sizes {view_sizes}: multiples of "
                         f"{PATCH}")
    directory.mkdir(parents=True, exist_ok=True)
    weights = tiny_weights(token_dim, seed)
    onnx.save(embedder_graph(weights), str(directory / "embedder.onnx"))
    onnx.save(detector_graph(weights, input_size, token_count, boxes),
              str(directory / "detector.onnx"))
    hashes = {f: _sha256(directory / f) for f in ("embedder.onnx", "detector.onnx")}
    joined = "".join(hashes[k] for k in sorted(hashes))
    info = {
        "format": "yolz-model/2",
        "name": name,
        "model_id": f"{name}@{hashlib.sha256(joined.encode()).hexdigest()[:12]}",
        "input_size": [h, w],
        "view_size": max(view_sizes),
        "view_sizes": list(view_sizes),
        "channel_order": "rgb",
        "pixel_range": [0, 255],
        "letterbox_pad_value": 114,
        "grid": {"rows": h // PATCH, "cols": w // PATCH, "stride": PATCH},
        "embedding_dim": token_count * token_dim,
        "object_tokens": {"count": token_count, "dim": token_dim, "patch": PATCH,
                          "min_alpha_fraction": min_alpha_fraction,
                          "no_alpha_centre": no_alpha_centre},
        "views_per_object": 4,
        "default_threshold": threshold,
        "onnx": {"embedder": "embedder.onnx", "detector": "detector.onnx", "opset": OPSET},
        "sha256": hashes,
        "training": {"config": {"tiny": True, "seed": seed}, "code_sha": "test", "data": "none",
                     "steps": 0, "metrics": {}},
    }
    if boxes:
        info["boxes"] = {"output": "box_distances",
                         "layout": "rows, cols, (left, top, right, bottom)",
                         "units": "input pixels from the cell centre", "training": {"tiny": True}}
    (directory / "model.json").write_text(json.dumps(info, indent=2) + "\n")
    (directory / "report.json").write_text(json.dumps({"note": "untrained test model"}) + "\n")
    (directory / "report.md").write_text("# tiny\n\nUntrained test model (tests/tiny_model.py).\n")
    return directory


# ------------------------------------------------------------------------------------------
# NumPy reference of the graphs (float64)
def _conv(x, w, b):
    """3x3 convolution, stride 2, padding 1, NCHW."""
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (3, 3), axis=(2, 3))
    windows = windows[:, :, ::2, ::2]  # [N, C, h/2, w/2, 3, 3]
    return np.einsum("nchwij,ocij->nohw", windows, w.astype(np.float64)) + \
        b.astype(np.float64)[None, :, None, None]


def _normalize(x, axis):
    return x / np.maximum(np.linalg.norm(x, axis=axis, keepdims=True), EPS)


def _tokens(weights, x):
    x = (np.asarray(x, np.float64) - np.array(MEAN).reshape(1, 3, 1, 1) * 255) / \
        (np.array(STD).reshape(1, 3, 1, 1) * 255)
    layers = weights["convs"]
    for i, (w, b) in enumerate(layers):
        x = _conv(x, w, b)
        if i < len(layers) - 1:
            x = np.maximum(x, 0)
    return _normalize(x, 1)


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def reference_embed(weights, views):
    """What embedder.onnx computes: views [N, 3, S, S] -> tokens [N, D, S/16, S/16] float32."""
    return _tokens(weights, views).astype(np.float32)


def reference_boxes(weights, image):
    """What a box head computes: [1, 3, H, W] -> box_distances [H/16, W/16, 4] float32."""
    cells = _tokens(weights, image)[0]  # [D, rows, cols]
    logit = np.einsum("od,drc->rco", weights["box_w"].astype(np.float64), cells) + weights["box_b"]
    return (PATCH * np.logaddexp(0, logit)).astype(np.float32)


def reference_detect(weights, image, embeddings):
    """What detector.onnx computes: [1, 3, H, W], [K, T*D] -> probabilities [K, H/16, W/16]
    float32 (the box head's output: reference_boxes)."""
    cells = _tokens(weights, image)[0]
    d, rows, cols = cells.shape
    objects = _normalize(np.asarray(embeddings, np.float64).reshape(len(embeddings), -1, d), 2)
    best = (objects @ cells.reshape(d, rows * cols)).max(axis=1)  # [K, R]
    cell = float(weights["cell_scale"]) * best + float(weights["cell_bias"])
    presence = float(weights["presence_scale"]) * best.max(axis=1, keepdims=True) + \
        float(weights["presence_bias"])
    return (_sigmoid(cell) * _sigmoid(presence)).reshape(-1, rows, cols).astype(np.float32)
