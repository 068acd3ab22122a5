"""What every backend provides: the embedder and the detector graph of one model folder."""
from __future__ import annotations

import abc
from typing import Dict

import numpy as np


class BackendError(RuntimeError):
    """A backend that cannot be created or run; the message says what to install or change."""


class Backend(abc.ABC):
    name: str  # e.g. "onnxruntime-cpu", "tensorrt-fp16"

    @abc.abstractmethod
    def embed(self, views: np.ndarray) -> np.ndarray:
        """views float32 [N, 3, V, V], RGB in [0, 255] -> per-view embeddings float32 [N, E]."""

    @abc.abstractmethod
    def detect(self, image: np.ndarray, embeddings: np.ndarray) -> Dict[str, np.ndarray]:
        """image float32 [1, 3, H, W], embeddings float32 [K, E] -> every output model.json
        declares (ModelInfo.outputs) by name: probabilities [K, rows, cols], and with a box head
        box_distances [rows, cols, 4].

        The returned arrays belong to the caller (they are not overwritten by the next call)."""
