"""Inference backends: the same two graphs run by TensorRT or ONNX Runtime (see select.py)."""
from yolz_ros.runtime.backends.base import Backend, BackendError
from yolz_ros.runtime.backends.select import create_backend

__all__ = ["Backend", "BackendError", "create_backend"]
