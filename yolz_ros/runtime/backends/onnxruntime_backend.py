"""ONNX Runtime backend: one InferenceSession per graph; CUDA provider if requested and present."""
from __future__ import annotations

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
        def options(threads: int):
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
        return dict(zip(self._outputs, self._detector.run(self._outputs, feeds)))
