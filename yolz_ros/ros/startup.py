"""Start-up decisions: which model folder and library folder, loading them, and the errors
that stop the node with a line saying what to fix. Plain Python (no rclpy)."""
from __future__ import annotations

import logging
import os
from pathlib import Path

from yolz_ros.ros.params import StartConfig

# The embedder's intra-op threads in the node: registration runs it on its one thread
# (registration.Registrar), so the frame pipeline keeps the other cores.
REGISTRATION_EMBED_THREADS = 1


class StartupError(RuntimeError):
    """A configuration problem that stops the node at start (message says what to fix)."""


def default_library_dir() -> Path:
    ros_home = os.environ.get("ROS_HOME") or os.path.join(os.path.expanduser("~"), ".ros")
    return Path(ros_home) / "yolz_ros" / "library"


def model_folder(cfg: StartConfig) -> Path:
    from yolz_ros.runtime.model_info import default_model_dir
    return Path(cfg.model_dir).expanduser() if cfg.model_dir else default_model_dir()


def load_detector(cfg: StartConfig, logger: logging.Logger):
    """The Detector of ``cfg``, or StartupError naming the folder."""
    from yolz_ros.runtime.detector import Detector
    model_dir = model_folder(cfg)
    if not model_dir.is_dir():
        raise StartupError(f"model folder {model_dir} does not exist: set the parameter "
                           "model_dir to a folder holding model.json, embedder.onnx and "
                           "detector.onnx (see docs/model_folder.md)")
    try:
        return Detector(model_dir=str(model_dir), backend=cfg.backend, device=cfg.device,
                        precision=cfg.precision, max_objects=cfg.max_objects,
                        cache_dir=cfg.cache_dir or None, num_threads=cfg.num_threads,
                        logger=logger, embed_threads=REGISTRATION_EMBED_THREADS)
    except Exception as exc:  # noqa: BLE001 - anything here is fatal, say where
        raise StartupError(f"cannot load the model folder {model_dir}: "
                           f"{type(exc).__name__}: {exc}") from exc


def open_library(cfg: StartConfig, detector, logger):
    """The object library of ``cfg``, loaded (objects of another model re-embedded)."""
    from yolz_ros.runtime.library import LibraryError, ObjectLibrary
    directory = Path(cfg.library_dir).expanduser() if cfg.library_dir else default_library_dir()
    try:
        library = ObjectLibrary(directory, detector.model_id, logger=logger,
                                embedding_dim=detector.info.embedding_dim)
        library.load(embed_fn=detector.embed_views)
    except LibraryError as exc:  # a library of another format: refused, left as it is
        raise StartupError(str(exc)) from exc
    except OSError as exc:
        raise StartupError(f"cannot use the object library folder {directory}: {exc}; set the "
                           "parameter library_dir to a writable folder") from exc
    counts = library.counts()
    rows = len(counts) + sum(int(m) for _, _, m in counts)
    if rows > cfg.max_objects:  # a library from a node with a larger max_objects
        logger.warning(f"object library {directory}: {len(counts)} objects and "
                       f"{rows - len(counts)} negative views are {rows} rows, more than "
                       f"max_objects={cfg.max_objects}: every frame will be refused until "
                       "max_objects is raised or objects are removed")
    return library
