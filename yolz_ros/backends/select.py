"""Pick and create a backend: TensorRT on a GPU when it can, else ONNX Runtime (CUDA, then CPU)."""
from __future__ import annotations

import logging
from typing import Optional, Tuple

from yolz_ros.backends.base import Backend, BackendError
from yolz_ros.model_info import ModelInfo

BACKENDS = ("auto", "tensorrt", "onnxruntime")
DEVICES = ("cuda", "cpu")
PRECISIONS = ("fp16", "fp32")

log = logging.getLogger("yolz_ros.backends")


def tensorrt_available() -> Tuple[bool, str]:
    """(usable, why not): TensorRT and cuda-python import and a GPU is visible."""
    from yolz_ros.backends.tensorrt_backend import gpu_count, import_tensorrt

    try:
        import_tensorrt()
        if gpu_count() == 0:
            return False, "no CUDA GPU is visible"
    except BackendError as e:
        return False, str(e)
    return True, ""


def _check_choice(label: str, value: str, allowed: Tuple[str, ...]) -> None:
    if value not in allowed:
        raise BackendError(f"unknown {label} {value!r}; use one of {', '.join(allowed)}")


def create_backend(model_info: ModelInfo, backend: str = "auto", device: str = "cuda",
                   precision: str = "fp16", max_objects: int = 64, cache_dir=None,
                   num_threads: int = 0, logger: Optional[logging.Logger] = None) -> Backend:
    """The backend for ``model_info``.

    auto: TensorRT when it imports and a GPU is present (device='cuda'), else ONNX Runtime's CUDA
    provider when installed, else ONNX Runtime on CPU. 'tensorrt' that cannot run raises
    BackendError. With 'onnxruntime', device='cuda' is a preference: without the CUDA provider it
    runs on CPU and says so. ``precision`` applies to TensorRT only (ONNX Runtime runs the FP32
    graphs); ``num_threads`` to ONNX Runtime only (0: all cores).
    """
    from yolz_ros.backends.onnxruntime_backend import OnnxRuntimeBackend, cuda_available

    logger = logger or log
    _check_choice("backend", backend, BACKENDS)
    _check_choice("device", device, DEVICES)
    _check_choice("precision", precision, PRECISIONS)
    if int(max_objects) < 1:
        raise BackendError(f"max_objects must be >= 1, got {max_objects}")

    if backend in ("auto", "tensorrt") and device == "cuda":
        usable, why = tensorrt_available()
        if usable:
            from yolz_ros.backends.tensorrt_backend import TensorRTBackend

            return TensorRTBackend(model_info, precision, int(max_objects), cache_dir, logger)
        if backend == "tensorrt":
            raise BackendError(f"backend 'tensorrt' is not available: {why}")
        logger.info(f"TensorRT not used: {why}")
    elif backend == "tensorrt":
        raise BackendError("backend 'tensorrt' needs device 'cuda'")

    if device == "cuda" and not cuda_available():
        if backend == "onnxruntime":
            logger.warning("ONNX Runtime has no CUDA provider here (install onnxruntime-gpu); "
                           "running on CPU")
        device = "cpu"
    return OnnxRuntimeBackend(model_info, device, num_threads)
