"""On-disk cache of built TensorRT engines. Pure Python (no TensorRT import), so it is tested
everywhere.

An engine is only valid for one ONNX file, TensorRT version, GPU, precision and set of
optimisation-profile shapes; all of these go into the cache key, and the engine is stored as
``<key>.engine`` with a ``<key>.json`` sidecar (written last: the commit point) that records them
plus the engine's own sha256. Files are written atomically (temporary file + os.replace), so a
crash or a second process never leaves a half-written engine under a valid name. Anything that does
not check out is logged and rebuilt, never loaded.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional, Tuple, TypeVar

from yolz_ros.runtime.atomic_file import write_bytes_atomic

FORMAT = "yolz-engine/1"
BUILD_HINT = ("this takes a few minutes on Jetson (about a minute on a desktop GPU) and happens "
              "once per model, GPU and TensorRT version")

log = logging.getLogger("yolz_ros.engine_cache")
T = TypeVar("T")

Shape = Tuple[int, ...]


def default_cache_dir() -> Path:
    """$ROS_HOME/yolz_ros/engines when ROS_HOME is set, else ~/.cache/yolz_ros/engines."""
    ros_home = os.environ.get("ROS_HOME")
    if ros_home:
        return Path(ros_home).expanduser() / "yolz_ros" / "engines"
    cache = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(cache).expanduser() / "yolz_ros" / "engines"


@dataclass(frozen=True)
class EngineSpec:
    """Everything an engine depends on; its sha256 is the cache key."""
    onnx_sha256: str
    tensorrt_version: str
    gpu_name: str
    compute_capability: str  # "8.7"
    precision: str  # "fp16" | "fp32"
    profiles: Tuple[Tuple[str, Shape, Shape, Shape], ...]  # (input, min, opt, max) per input

    def as_json(self) -> dict:
        # JSON has no tuples: normalise so a spec read back from a sidecar compares equal.
        return json.loads(json.dumps(asdict(self)))

    def key(self) -> str:
        return hashlib.sha256(json.dumps(self.as_json(), sort_keys=True).encode()).hexdigest()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class EngineCache:
    def __init__(self, directory=None, logger=None):
        self.directory = Path(directory) if directory is not None else default_cache_dir()
        self.log = logger or log

    def paths(self, spec: EngineSpec) -> Tuple[Path, Path]:
        key = spec.key()
        return self.directory / f"{key}.engine", self.directory / f"{key}.json"

    def load(self, spec: EngineSpec) -> Tuple[Optional[bytes], str]:
        """(engine bytes, "ok") when a valid cached engine exists, else (None, why not)."""
        engine_path, sidecar_path = self.paths(spec)
        if not sidecar_path.exists() and not engine_path.exists():
            return None, "no cached engine"
        try:
            sidecar = json.loads(sidecar_path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            return None, f"sidecar {sidecar_path} unreadable ({e})"
        if not isinstance(sidecar, dict) or sidecar.get("format") != FORMAT:
            return None, f"sidecar {sidecar_path} has an unknown format"
        if sidecar.get("key") != spec.key() or sidecar.get("spec") != spec.as_json():
            return None, f"sidecar {sidecar_path} describes a different engine"
        try:
            data = engine_path.read_bytes()
        except OSError as e:
            return None, f"engine {engine_path} unreadable ({e})"
        if len(data) != sidecar.get("size") or _sha256(data) != sidecar.get("engine_sha256"):
            return None, f"engine {engine_path} is corrupt (size or sha256 differs from sidecar)"
        return data, "ok"

    def save(self, spec: EngineSpec, data: bytes, build_seconds: float = 0.0) -> bool:
        """Store an engine; False (logged) when the cache directory is not writable."""
        engine_path, sidecar_path = self.paths(spec)
        sidecar = {"format": FORMAT, "key": spec.key(), "spec": spec.as_json(),
                   "size": len(data), "engine_sha256": _sha256(data),
                   "build_seconds": round(build_seconds, 1), "created": time.time()}
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            write_bytes_atomic(engine_path, data)
            write_bytes_atomic(sidecar_path, (json.dumps(sidecar, indent=2) + "\n").encode())
        except OSError as e:
            self.log.warning(f"cannot cache the engine in {self.directory} ({e}); it will be "
                             "built again at the next start")
            return False
        return True

    def get_or_build(self, spec: EngineSpec, build: Callable[[], bytes],
                     deserialize: Callable[[bytes], Optional[T]], what: str = "engine"
                     ) -> Tuple[T, bool]:
        """The deserialised cached engine, or a freshly built (and cached) one.

        ``deserialize`` returns None (or raises) for bytes the runtime rejects; such a cache entry
        is rebuilt too. Returns (engine, built)."""
        data, reason = self.load(spec)
        if data is not None:
            try:
                engine = deserialize(data)
            except Exception as e:  # any runtime rejection means: rebuild
                engine, reason = None, f"TensorRT could not deserialise it ({e})"
            if engine is not None:
                self.log.info(f"{what}: loaded cached engine {self.paths(spec)[0]}")
                return engine, False
            reason = reason if reason != "ok" else "TensorRT could not deserialise it"
        level = logging.INFO if reason == "no cached engine" else logging.WARNING
        self.log.log(level, f"{what}: {reason}; building a TensorRT engine ({spec.precision}) "
                            f"- {BUILD_HINT}")
        start = time.monotonic()
        data = build()
        seconds = time.monotonic() - start
        self.log.info(f"{what}: engine built in {seconds:.0f} s")
        self.save(spec, data, seconds)
        engine = deserialize(data)
        if engine is None:
            raise RuntimeError(f"{what}: TensorRT could not deserialise the engine it just built")
        return engine, True

