"""What every backend provides: the embedder and the detector graph of one model folder."""
from __future__ import annotations

import abc

import numpy as np


class BackendError(RuntimeError):
    """A backend that cannot be created or run; the message says what to install or change."""


class Backend(abc.ABC):
    name: str  # e.g. "onnxruntime-cpu", "tensorrt-fp16"

    @abc.abstractmethod
    def embed(self, views: np.ndarray) -> np.ndarray:
        """views float32 [N, 3, V, V], RGB in [0, 255] -> per-view embeddings float32 [N, E]."""

    @abc.abstractmethod
    def detect(self, image: np.ndarray, embeddings: np.ndarray) -> np.ndarray:
        """image float32 [1, 3, H, W], embeddings float32 [K, E] -> probabilities [K, rows, cols].

        The returned array belongs to the caller (it is not overwritten by the next call)."""
