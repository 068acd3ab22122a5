"""Pick and create a backend: TensorRT on a GPU when it can, else ONNX Runtime (CUDA, then CPU)."""
from __future__ import annotations

import logging
import re
from typing import Optional, Tuple

from yolz_ros.runtime.backends.base import Backend, BackendError
from yolz_ros.runtime.model_info import ModelInfo

BACKENDS = ("auto", "tensorrt", "onnxruntime")
DEVICES = ("cuda", "cuda:N", "cpu")
PRECISIONS = ("fp16", "fp32")
_DEVICE_RE = re.compile(r"(cpu|cuda)(?::(\d{1,2}))?")

log = logging.getLogger("yolz_ros.runtime.backends")


def tensorrt_available() -> Tuple[bool, str]:
    """(usable, why not): TensorRT and cuda-python import and a GPU is visible."""
    from yolz_ros.runtime.backends.tensorrt_backend import gpu_count, import_tensorrt

    try:
        import_tensorrt()
        if gpu_count() == 0:
            return False, "no CUDA GPU is visible"
    except BackendError as e:
        return False, str(e)
    return True, ""


def parse_device(device: str) -> Tuple[str, Optional[int]]:
    """'cpu' -> ('cpu', None); 'cuda' -> ('cuda', None); 'cuda:N' -> ('cuda', N)."""
    m = _DEVICE_RE.fullmatch(str(device))
    if m is None or (m.group(1) == "cpu" and m.group(2) is not None):
        raise BackendError(f"unknown device {device!r}; use cuda, cuda:N (N = GPU index) or "
                           "cpu")
    return m.group(1), (int(m.group(2)) if m.group(2) is not None else None)


def _check_choice(label: str, value: str, allowed: Tuple[str, ...]) -> None:
    if value not in allowed:
        raise BackendError(f"unknown {label} {value!r}; use one of {', '.join(allowed)}")


def create_backend(model_info: ModelInfo, backend: str = "auto", device: str = "cuda",
                   precision: str = "fp16", max_objects: int = 64, cache_dir=None,
                   num_threads: int = 0, logger: Optional[logging.Logger] = None,
                   embed_threads: Optional[int] = None) -> Backend:
    """The backend for ``model_info``.

    auto: TensorRT when it imports and a GPU is present (device 'cuda'), else ONNX Runtime's CUDA
    provider when installed, else ONNX Runtime on CPU. device 'cuda:N' picks GPU N (ONNX
    Runtime's CUDA provider; TensorRT runs on the first visible GPU only). 'tensorrt' that cannot
    run raises BackendError. With 'onnxruntime', device 'cuda' is a preference: without the CUDA
    provider it runs on CPU and says so. ``precision`` applies to TensorRT only (ONNX Runtime
    runs the FP32 graphs); ``num_threads`` to ONNX Runtime only (0: all cores), and
    ``embed_threads`` to its embedder session (None: num_threads).
    """
    from yolz_ros.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend, cuda_available

    logger = logger or log
    _check_choice("backend", backend, BACKENDS)
    kind, index = parse_device(device)
    _check_choice("precision", precision, PRECISIONS)
    if int(max_objects) < 1:
        raise BackendError(f"max_objects must be >= 1, got {max_objects}")

    if backend == "tensorrt" and index:
        # The TensorRT backend builds and runs on the CUDA runtime's current device, which is
        # per thread (0 in the node's worker); selecting another one here would split the engine
        # and its execution across devices. Say how to get GPU N instead.
        raise BackendError(f"backend 'tensorrt' runs on the first visible GPU only: for GPU "
                           f"{index} start the node with CUDA_VISIBLE_DEVICES={index} and "
                           "device 'cuda'")
    if backend == "auto" and kind == "cuda" and index:
        logger.info(f"TensorRT not used: device {device!r} (TensorRT runs on the first visible "
                    "GPU only); trying ONNX Runtime's CUDA provider")
    elif backend in ("auto", "tensorrt") and kind == "cuda":
        usable, why = tensorrt_available()
        if usable:
            from yolz_ros.runtime.backends.tensorrt_backend import TensorRTBackend

            return TensorRTBackend(model_info, precision, int(max_objects), cache_dir, logger)
        if backend == "tensorrt":
            raise BackendError(f"backend 'tensorrt' is not available: {why}")
        logger.info(f"TensorRT not used: {why}")
    elif backend == "tensorrt":
        raise BackendError("backend 'tensorrt' needs device 'cuda'")

    if kind == "cuda" and not cuda_available():
        if backend == "onnxruntime" or index:
            logger.warning(f"ONNX Runtime has no CUDA provider here (install onnxruntime-gpu); "
                           f"device {device!r} runs on CPU")
        kind = "cpu"
    runtime = OnnxRuntimeBackend(model_info, kind, num_threads, embed_threads)
    if kind == "cuda" and index:
        _use_cuda_device(runtime, index)
    return runtime


def _use_cuda_device(runtime, index: int) -> None:
    """Move an ONNX Runtime backend's sessions to GPU ``index`` (CUDA provider option
    device_id); BackendError if there is no such GPU."""
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    try:
        for session in (runtime._embedder, runtime._detector):
            session.set_providers(providers, [{"device_id": str(index)}, {}])
            active = session.get_provider_options().get("CUDAExecutionProvider", {})
            if str(active.get("device_id")) != str(index):
                raise RuntimeError(f"the CUDA provider runs on device {active.get('device_id')}")
    except Exception as e:  # noqa: BLE001 - ONNX Runtime raises several kinds here
        raise BackendError(f"device 'cuda:{index}' cannot be used: {e} (is there a GPU "
                           f"{index}? nvidia-smi lists them)") from e
    runtime.name = f"onnxruntime-cuda:{index}"
