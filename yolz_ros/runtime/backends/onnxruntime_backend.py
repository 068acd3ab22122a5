"""ONNX Runtime backend: one InferenceSession per graph; CUDA provider if requested and present."""
from __future__ import annotations

import contextlib
import threading
from typing import Dict, Optional

import numpy as np

from yolz_ros.runtime.backends.base import Backend, BackendError
from yolz_ros.runtime.model_info import ModelInfo


def cuda_available() -> bool:
    try:
        import onnxruntime as ort
    except ImportError:
        return False
    return "CUDAExecutionProvider" in ort.get_available_providers()


class OnnxRuntimeBackend(Backend):
    def __init__(self, info: ModelInfo, device: str = "cpu", num_threads: int = 0,
                 embed_threads: Optional[int] = None):
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise BackendError("onnxruntime is not installed: pip install onnxruntime "
                               "(or onnxruntime-gpu)") from e
        if device == "cuda" and not cuda_available():
            raise BackendError("ONNX Runtime has no CUDAExecutionProvider here: install "
                               "onnxruntime-gpu, or use device='cpu'")
        providers = (["CUDAExecutionProvider"] if device == "cuda" else []) + \
            ["CPUExecutionProvider"]
        def options(threads: int):  # noqa: E306
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = int(threads)  # 0: ONNX Runtime picks (all cores)
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            return opts
        # The embedder has its own thread count: with 1 it runs on the caller's thread alone
        # (no pool), so a registration thread of low priority keeps it from the detector's cores.
        embed_threads = num_threads if embed_threads is None else embed_threads
        self._embedder = ort.InferenceSession(str(info.embedder_path), options(embed_threads),
                                              providers=providers)
        self._detector = ort.InferenceSession(str(info.detector_path), options(num_threads),
                                              providers=providers)
        # cores_shared: frames run on a second, one-thread detector session (made at first use)
        # while the holder computes, instead of the pool competing with it for both cores.
        self._one_thread = lambda: ort.InferenceSession(str(info.detector_path), options(1),
                                                        providers=providers)
        self._detector_one: Optional[object] = None
        self._sharing, self._sharing_lock = 0, threading.Lock()
        self._shares = device == "cpu" and int(num_threads) != 1
        self._outputs = list(info.outputs)
        have = {o.name for o in self._detector.get_outputs()}
        missing = [o for o in self._outputs if o not in have]
        if missing:
            raise BackendError(f"{info.detector_path} has no output {missing} that model.json "
                               f"declares (it has {sorted(have)}): re-export the model")
        self.name = f"onnxruntime-{device}"
        self.version = ort.__version__

    def embed(self, views: np.ndarray) -> np.ndarray:
        # Contiguous float32 numpy inputs are read in place by the CPU provider (no copy).
        views = np.ascontiguousarray(views, np.float32)
        return self._embedder.run(["embeddings"], {"views": views})[0]

    def detect(self, image: np.ndarray, embeddings: np.ndarray) -> Dict[str, np.ndarray]:
        feeds = {"image": np.ascontiguousarray(image, np.float32),
                 "embeddings": np.ascontiguousarray(embeddings, np.float32)}
        session = self._detector_one if self._sharing else self._detector
        return dict(zip(self._outputs, session.run(self._outputs, feeds)))

    @contextlib.contextmanager
    def cores_shared(self):
        if not self._shares:
            yield
            return
        with self._sharing_lock:
            if self._detector_one is None:
                self._detector_one = self._one_thread()
            self._sharing += 1
        try:
            yield
        finally:
            with self._sharing_lock:
                self._sharing -= 1
