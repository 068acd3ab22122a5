"""The node's parameters: one table, and the rules it drives.

Each entry says name, type, default, range (numbers) or choices (strings), description, and
whether the value is *live* (may change while the node runs; held in :class:`Settings`) or
*start-only* (read once when the node starts, or at `configure` in managed mode). The node
declares its parameters from this table, the start-only rule comes from it, and the tests check
config/yolz.yaml and the parameter table in docs/node.md against it (tools/docs_tables.py).

Plain Python: no rclpy here (only :func:`descriptor` builds rcl_interfaces messages).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, make_dataclass, replace
from typing import Any, Dict, Iterable, Mapping, Optional, Tuple

DEVICE_RE = re.compile(r"cpu|cuda(:\d{1,2})?")


class ConfigError(ValueError):
    """A parameter value that cannot be used; the message names it and says what to fix."""


@dataclass(frozen=True)
class Param:
    name: str
    type: str  # "string" | "double" | "integer" | "bool" | "string_array"
    default: Any
    description: str
    range: Optional[Tuple[float, float]] = None  # inclusive, numbers only
    choices: Tuple[str, ...] = ()  # strings only
    live: bool = False  # False: start-only

    @property
    def when(self) -> str:
        return "live" if self.live else "start"


PARAMS: Tuple[Param, ...] = (
    Param("model_dir", "string", "",
          "model folder (model.json + embedder.onnx + detector.onnx); '' = the shipped "
          "models/yolz_tokens"),
    Param("backend", "string", "auto",
          "inference backend: auto = TensorRT if it imports and a GPU is present, else ONNX "
          "Runtime (CUDA provider if installed, else CPU)",
          choices=("auto", "tensorrt", "onnxruntime")),
    Param("device", "string", "cuda",
          "cuda (the first GPU), cuda:N (GPU N) or cpu; ONNX Runtime without a CUDA provider "
          "runs on CPU and says so"),
    Param("precision", "string", "fp16", "TensorRT engine precision",
          choices=("fp16", "fp32")),
    Param("cache_dir", "string", "",
          "TensorRT engine cache; '' = $ROS_HOME/yolz_ros/engines"),
    Param("num_threads", "integer", 0, "ONNX Runtime CPU threads; 0 = its default",
          range=(0, 256)),
    Param("threshold", "double", -1.0,
          "detection threshold on the cell probability; < 0 = the model's default_threshold",
          range=(-1.0, 1.0), live=True),
    Param("zoom", "double", 1.0,
          "1 = off; 1.5 or 2: a second pass over tiles of the frame at that zoom finds small "
          "objects more often (objects < 1% of the image: AUROC 0.757 -> 0.804 / 0.834) at 5 / "
          "10 network passes per frame: for a GPU with time to spare",
          range=(1.0, 3.0), live=True),
    Param("look_closer", "integer", 0,
          "0 = off; N: up to N more network passes per frame, 2.5x tiles centred where the frame "
          "pass is least sure (docs/runtime.md); ignored while zoom > 1",
          range=(0, 9), live=True),
    Param("max_objects", "integer", 64,
          "most objects registered at once, their negative views counted (each is one more "
          "row of every frame's network call)", range=(1, 256)),
    Param("library_dir", "string", "",
          "object library folder; '' = $ROS_HOME/yolz_ros/library (ROS_HOME: ~/.ros)"),
    Param("image_transport", "string", "raw",
          "raw: sensor_msgs/Image on each camera topic; compressed: sensor_msgs/CompressedImage "
          "on the topic + /compressed", choices=("raw", "compressed")),
    Param("image_topics", "string_array", ["image"],
          "camera topics (relative, so remaps apply); with several, each camera's outputs are "
          "under ~/CAMERA/"),
    Param("qos_reliability", "string", "best_effort",
          "camera subscription reliability (best_effort = sensor-data QoS)",
          choices=("best_effort", "reliable")),
    Param("qos_depth", "integer", 5, "camera subscription history depth", range=(1, 100)),
    Param("max_rate", "double", 0.0,
          "frames per second at most, all cameras together; 0 = as fast as possible",
          range=(0.0, 1000.0), live=True),
    Param("camera_rate_hz", "double", 0.0,
          "the cameras' frame rate, if known; the transport check in /diagnostics then judges "
          "loss against it, which also catches loss too heavy for the stamps to show (~98%) "
          "and a camera gone silent; 0 = judged from the frames' stamps",
          range=(0.0, 1000.0), live=True),
    Param("max_image_pixels", "integer", 50_000_000, "camera frames with more pixels are skipped",
          range=(1, 1_000_000_000)),
    Param("use_depth", "bool", False,
          "3D output: subscribe to depth_topics and camera_info_topics and publish "
          "~/detections_3d (depth registered to the colour image is assumed)"),
    Param("depth_topics", "string_array", ["depth"],
          "depth images (16UC1 mm or 32FC1 m) registered to the colour image, one per "
          "image_topics entry; used with use_depth"),
    Param("camera_info_topics", "string_array", ["camera_info"],
          "sensor_msgs/CameraInfo of each colour camera, one per image_topics entry; used with "
          "use_depth"),
    Param("depth_tolerance", "double", 0.02,
          "a depth image matches a colour frame when their stamps differ by at most this (s)",
          range=(0.0, 1.0), live=True),
    Param("depth_timeout", "double", 0.1,
          "how long a processed frame waits for its depth image to arrive (wall s) before it "
          "gets no 3D output", range=(0.0, 1.0), live=True),
    Param("target_frame", "string", "",
          "frame of the 3D output; '' = the image's own optical frame (no transform); another "
          "frame needs tf2_ros"),
    Param("publish_markers", "bool", True,
          "publish ~/markers (visualization_msgs/MarkerArray at the 3D points; computed only "
          "while subscribed)", live=True),
    Param("register_max_age", "double", 2.0,
          "register_from_camera refuses a newest frame that arrived longer ago than this (s); "
          "0 = any age", range=(0.0, 3600.0), live=True),
    Param("publish_overlay", "bool", True,
          "publish ~/overlay (computed only while someone subscribes)", live=True),
    Param("overlay_alpha", "double", 0.5, "heatmap opacity in the overlay", range=(0.0, 1.0),
          live=True),
    Param("draw_peaks", "bool", True, "draw detection boxes, peaks and names on the overlay",
          live=True),
)
BY_NAME: Dict[str, Param] = {p.name: p for p in PARAMS}
LIVE = tuple(p.name for p in PARAMS if p.live)
START_ONLY = tuple(p.name for p in PARAMS if not p.live)

_PY_TYPES = {"string": (str,), "double": (float, int), "integer": (int,), "bool": (bool,),
             "string_array": (list, tuple)}


def check_value(name: str, value) -> Optional[str]:
    """Why ``value`` is not acceptable for parameter ``name`` (None if it is, or if the name is
    not one of ours)."""
    p = BY_NAME.get(name)
    if p is None:
        return None
    if not isinstance(value, _PY_TYPES[p.type]) or \
            (p.type in ("double", "integer") and isinstance(value, bool)):
        return f"parameter {name} must be of type {p.type}, got {value!r}"
    if p.range is not None and not (p.range[0] <= value <= p.range[1]):
        return f"parameter {name}={value!r} is outside {p.range[0]}..{p.range[1]}"
    if p.choices and value not in p.choices:
        return f"parameter {name}={value!r} is not one of {', '.join(p.choices)}"
    if name == "device" and not DEVICE_RE.fullmatch(value):
        return f"parameter device={value!r}: use cuda, cuda:N (N = GPU index) or cpu"
    return None


def check_changes(changes: Mapping[str, Any], configured: bool) -> Optional[str]:
    """Why a set of parameter changes is refused (None: accept all). Start-only parameters
    cannot change once the node is configured (running, or configured in managed mode)."""
    for name, value in changes.items():
        p = BY_NAME.get(name)
        if p is None:
            continue
        if configured and not p.live:
            return (f"parameter {name} is start-only: it is read when the node starts (in "
                    "managed mode: at configure); restart the node, or cleanup and configure "
                    "it again, to change it")
        why = check_value(name, value)
        if why:
            return why
    return None


_FIELD_TYPES = {"string": str, "double": float, "integer": int, "bool": bool,
                "string_array": Tuple[str, ...]}


def _settings_from_values(cls, values: Mapping[str, Any]):
    return cls(**{n: values[n] for n in LIVE})


def _settings_updated(self, changes: Mapping[str, Any]):
    return replace(self, **{n: v for n, v in changes.items() if n in LIVE})


# The live values, replaced whole by the parameter callback and read once per frame: one field
# per live entry of PARAMS, its default the table's (the table is the only place a parameter is
# written; config/yolz.yaml and docs/node.md are checked against it).
Settings = make_dataclass(
    "Settings", [(p.name, _FIELD_TYPES[p.type], p.default) for p in PARAMS if p.live],
    frozen=True, namespace={"from_values": classmethod(_settings_from_values),
                            "updated": _settings_updated})


def detection_threshold(threshold: float, model_default: float) -> float:
    """The threshold to decode peaks with: a negative setting means the model's default."""
    return float(model_default) if threshold < 0 else float(threshold)


# The start-only values, checked (start_config): one field per start-only entry of PARAMS.
StartConfig = make_dataclass(
    "StartConfig", [(p.name, _FIELD_TYPES[p.type]) for p in PARAMS if not p.live], frozen=True)


def _topics(values, name) -> Tuple[str, ...]:
    return tuple(t.strip() for t in (values[name] or []) if t.strip())


def start_config(values: Mapping[str, Any]) -> StartConfig:
    """The start-only values from ``values`` (name -> value), or ConfigError saying what to fix."""
    for name in START_ONLY:
        why = check_value(name, values[name])
        if why:
            raise ConfigError(why)
    topics = _topics(values, "image_topics")
    if not topics:
        raise ConfigError("parameter image_topics is empty: give at least one camera topic")
    depth, info = _topics(values, "depth_topics"), _topics(values, "camera_info_topics")
    if values["use_depth"]:
        for name, given in (("depth_topics", depth), ("camera_info_topics", info)):
            if len(given) != len(topics):
                raise ConfigError(f"use_depth needs one entry of {name} per image_topics entry: "
                                  f"{len(topics)} image topics, {len(given)} in {name}")
    return StartConfig(**{**{n: values[n] for n in START_ONLY}, "image_topics": topics,
                          "depth_topics": depth, "camera_info_topics": info,
                          "target_frame": values["target_frame"].strip()})


def descriptor(p: Param, read_only: bool = False):
    """The rcl_interfaces ParameterDescriptor of a table entry."""
    from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor,
                                    ParameterType)
    types = {"string": ParameterType.PARAMETER_STRING,
             "double": ParameterType.PARAMETER_DOUBLE,
             "integer": ParameterType.PARAMETER_INTEGER,
             "bool": ParameterType.PARAMETER_BOOL,
             "string_array": ParameterType.PARAMETER_STRING_ARRAY}
    text = p.description + (" (live)" if p.live else " (start-only)")
    d = ParameterDescriptor(description=text, type=types[p.type], read_only=read_only)
    if p.range is not None and p.type == "double":
        d.floating_point_range = [FloatingPointRange(from_value=float(p.range[0]),
                                                     to_value=float(p.range[1]), step=0.0)]
    if p.range is not None and p.type == "integer":
        d.integer_range = [IntegerRange(from_value=int(p.range[0]), to_value=int(p.range[1]),
                                        step=1)]
    if p.choices:
        d.additional_constraints = "one of: " + ", ".join(p.choices)
    if p.name == "device":
        d.additional_constraints = "cuda, cuda:N or cpu"
    return d


# -- documentation ---------------------------------------------------------------------------
def _md_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value) if value == "" else value
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(repr(v) for v in value) + "]"
    return str(value)


def markdown_rows(params: Iterable[Param] = PARAMS) -> list:
    """The parameter table of docs/node.md, one line per parameter (tools/docs_tables.py)."""
    rows = ["| parameter | type | default | range | when | meaning |",
            "| --- | --- | --- | --- | --- | --- |"]
    for p in params:
        if p.range is not None:
            span = f"{_md_value(p.range[0])} – {_md_value(p.range[1])}"
        elif p.choices:
            span = ", ".join(f"`{c}`" for c in p.choices)
        else:
            span = ""
        rows.append(f"| `{p.name}` | {p.type} | `{_md_value(p.default)}` | {span} | {p.when} "
                    f"| {p.description} |")
    return rows


if __name__ == "__main__":
    print("\n".join(markdown_rows()))
