"""A model folder's model.json, read and checked against docs/model_folder.md."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Optional, Tuple

FORMAT_TOKENS = "yolz-model/2"  # an object is T feature tokens; views at several sizes
FORMATS = (FORMAT_TOKENS,)  # yolz-model/1 (one pooled vector per object) is retired
DEFAULT_MODEL = "yolz_tokens"
NO_ALPHA_RULES = ("centre", "grabcut")


class ModelError(ValueError):
    """A model folder that cannot be used; the message names the folder and what is wrong."""


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def compute_model_id(name: str, hashes: Dict[str, str]) -> str:
    """``<name>@<first 12 hex of sha256 over the ONNX files' sha256 values>``, joined in file-name
    order (training/model/export.py writes it with this function)."""
    joined = "".join(hashes[k] for k in sorted(hashes))
    return f"{name}@{hashlib.sha256(joined.encode()).hexdigest()[:12]}"


@dataclass(frozen=True)
class TokenSpec:
    """yolz-model/2: how views become an object's tokens (yolz_ros/object_tokens.py)."""
    count: int  # T tokens per object (slot 0 = mean, then a farthest-point sample)
    dim: int  # D, unit norm
    patch: int  # view pixels per token side (the embedder's stride)
    min_alpha_fraction: float  # a token shows the object when this much of its patch is visible
    no_alpha_centre: float = 1.0  # views without alpha: only tokens in this central fraction
    # views without alpha: "centre" = the rule above; "grabcut" = GrabCut's object mask as the
    # view's alpha (yolz_ros/runtime/foreground.py), the centre rule where it finds none
    no_alpha: str = "centre"


@dataclass(frozen=True)
class ModelInfo:
    directory: Path
    name: str
    input_size: Tuple[int, int]  # H, W of the detector's image
    view_size: int
    pad_value: int
    rows: int
    cols: int
    stride: int
    embedding_dim: int  # length of one object's vector: token count * token dim
    views_per_object: int
    default_threshold: float
    embedder_path: Path
    detector_path: Path
    sha256: Dict[str, str]
    model_id: str
    raw: dict = field(repr=False, compare=False)
    view_sizes: Tuple[int, ...] = ()  # the embedder runs at each
    tokens: Optional["TokenSpec"] = None  # how views become tokens (always set by load)
    # detector.onnx's outputs, all of which every backend reads: probabilities [K, rows, cols],
    # and with a box head (model.json "boxes") its box_distances [rows, cols, 4]
    outputs: Tuple[str, ...] = ("probabilities",)
    box_output: Optional[str] = None

    @property
    def format(self) -> str:
        return FORMAT_TOKENS

    @classmethod
    def load(cls, directory=None, verify: bool = True) -> "ModelInfo":
        """Read ``directory``/model.json (default: default_model_dir()); with ``verify`` also check
        the ONNX files' sha256 against it."""
        directory = Path(directory) if directory is not None else default_model_dir()
        return _parse(directory, _read_json(directory), verify)


def _read_json(directory: Path) -> dict:
    if not directory.is_dir():
        raise ModelError(f"model folder {directory} does not exist; pass the folder that holds "
                         "model.json, embedder.onnx and detector.onnx")
    path = directory / "model.json"
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelError(f"model folder {directory} has no model.json") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelError(f"{path} cannot be read as JSON: {e}") from None
    if not isinstance(raw, dict):
        raise ModelError(f"{path} must hold a JSON object, got {type(raw).__name__}")
    return raw


def _field(raw: dict, directory: Path, key: str, kind, check=lambda v: True, hint: str = ""):
    """raw[key] converted by ``kind``, or a ModelError naming the folder and the field."""
    node = raw
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise ModelError(f"{directory}/model.json: missing field {key!r}")
        node = node[part]
    try:
        value = kind(node)
        ok = check(value)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ModelError(f"{directory}/model.json: invalid {key!r} = {node!r}"
                         + (f" ({hint})" if hint else ""))
    return value


def _parse(directory: Path, raw: dict, verify: bool) -> ModelInfo:
    f = lambda *a, **k: _field(raw, directory, *a, **k)  # noqa: E731
    positive = lambda v: v > 0  # noqa: E731
    f("format", str, lambda v: v in FORMATS, f"expected one of {FORMATS}")
    f("channel_order", str, lambda v: v == "rgb", "expected 'rgb'")
    f("pixel_range", list, lambda v: v == [0, 255], "expected [0, 255]")
    name = f("name", str, lambda v: len(v) > 0)
    h, w = f("input_size", lambda v: tuple(int(x) for x in v),
             lambda v: len(v) == 2 and min(v) > 0, "expected [H, W]")
    stride = f("grid.stride", int, positive)
    rows = f("grid.rows", int, lambda v: v == h // stride, f"expected input H {h} // stride")
    cols = f("grid.cols", int, lambda v: v == w // stride, f"expected input W {w} // stride")
    files = {}
    for graph in ("embedder", "detector"):
        fname = f(f"onnx.{graph}", str, lambda v: len(v) > 0)
        path = directory / fname
        if not path.is_file():
            raise ModelError(f"model folder {directory}: {graph} graph {fname} is missing")
        files[graph] = (fname, path)
    sha = f("sha256", dict)
    for fname, path in files.values():
        expected = sha.get(fname)
        if not isinstance(expected, str) or len(expected) != 64:
            raise ModelError(f"{directory}/model.json: missing or invalid sha256 of {fname}")
        if verify and sha256_file(path) != expected:
            raise ModelError(f"model folder {directory}: {fname} does not match the sha256 in "
                             "model.json (corrupt or replaced file); re-export the model")
    hashes = {fname: sha[fname] for fname, _ in files.values()}
    model_id = compute_model_id(name, hashes)
    if "model_id" in raw and raw["model_id"] != model_id:
        raise ModelError(f"{directory}/model.json: model_id {raw['model_id']!r} does not match "
                         f"its name and sha256 values ({model_id!r})")
    view_size = f("view_size", int, positive)
    embedding_dim = f("embedding_dim", int, positive)
    view_sizes = f("view_sizes", lambda v: tuple(int(x) for x in v),
                   lambda v: len(v) > 0 and min(v) > 0, "expected a list of view sizes")
    tokens = TokenSpec(
        count=f("object_tokens.count", int, lambda v: v >= 1),
        dim=f("object_tokens.dim", int, positive),
        patch=f("object_tokens.patch", int, lambda v: all(s % v == 0 for s in view_sizes),
                "every view size must be a multiple of it"),
        min_alpha_fraction=f("object_tokens.min_alpha_fraction", float,
                             lambda v: 0.0 <= v <= 1.0),
        no_alpha_centre=_field({"c": raw["object_tokens"].get("no_alpha_centre", 1.0)},
                               directory, "c", float, lambda v: 0.0 < v <= 1.0,
                               "object_tokens.no_alpha_centre must be in (0, 1]"),
        no_alpha=_field({"r": raw["object_tokens"].get("no_alpha", "centre")}, directory,
                        "r", str, lambda v: v in NO_ALPHA_RULES,
                        f"object_tokens.no_alpha must be one of {NO_ALPHA_RULES}"))
    if tokens.count * tokens.dim != embedding_dim:
        raise ModelError(f"{directory}/model.json: embedding_dim {embedding_dim} must be "
                         f"object_tokens.count * dim = {tokens.count * tokens.dim}")
    box_output = None
    if "boxes" in raw:
        box_output = f("boxes.output", str, lambda v: v not in ("", "probabilities"),
                       "the name of detector.onnx's box output")
    return ModelInfo(
        directory=directory, name=name, input_size=(h, w),
        view_size=view_size,
        pad_value=f("letterbox_pad_value", int, lambda v: 0 <= v <= 255),
        rows=rows, cols=cols, stride=stride,
        embedding_dim=embedding_dim,
        views_per_object=f("views_per_object", int, positive),
        default_threshold=f("default_threshold", float, lambda v: 0.0 <= v <= 1.0),
        embedder_path=files["embedder"][1], detector_path=files["detector"][1],
        sha256=hashes, model_id=model_id, raw=raw, view_sizes=view_sizes, tokens=tokens,
        outputs=("probabilities",) + ((box_output,) if box_output else ()), box_output=box_output)


def default_model_dir() -> Path:
    """The shipped model: the installed share/yolz_ros/models/<default> when it exists, else the
    source tree's models/<default>."""
    try:
        from ament_index_python.packages import get_package_share_directory
        installed = Path(get_package_share_directory("yolz_ros")) / "models" / DEFAULT_MODEL
        if installed.is_dir():
            return installed
    except (ImportError, LookupError, ValueError, OSError):
        # not installed, or no ROS environment (get_package_share_directory raises OSError when
        # AMENT_PREFIX_PATH is unset): use the source tree
        pass
    return Path(__file__).resolve().parents[2] / "models" / DEFAULT_MODEL
