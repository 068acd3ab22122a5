"""The torch-free tiny test model (tests/tiny_model.py) against the torch layers it stands for:
ONNX Runtime on the hand-written graphs == torch modules with the same weights."""
import numpy as np
import pytest
import torch

from tiny_model import make_tiny_model
from tiny_torch import build_tiny_modules
from yolz_ros.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend
from yolz_ros.runtime.model_info import ModelInfo


@pytest.mark.parametrize("token_dim,token_count,input_size", [(8, 4, (64, 96)),
                                                              (12, 3, (48, 32))])
def test_onnxruntime_matches_torch(tmp_path, token_dim, token_count, input_size):
    folder = make_tiny_model(tmp_path / "tiny", input_size=input_size, token_dim=token_dim,
                             token_count=token_count, seed=4)
    backend = OnnxRuntimeBackend(ModelInfo.load(folder), "cpu", num_threads=1)
    embedder, detector = build_tiny_modules(token_dim, token_count, seed=4)
    rng = np.random.default_rng(3)
    image = (rng.random((1, 3, *input_size)) * 255).astype(np.float32)
    objects = rng.standard_normal((5, token_count * token_dim)).astype(np.float32)
    with torch.no_grad():
        for s in (32, 48, 64):  # the view size is dynamic
            views = (rng.random((3, 3, s, s)) * 255).astype(np.float32)
            np.testing.assert_allclose(backend.embed(views),
                                       embedder(torch.from_numpy(views)).numpy(), atol=1e-5)
        ref_probs = detector(torch.from_numpy(image), torch.from_numpy(objects)).numpy()
    np.testing.assert_allclose(backend.detect(image, objects)["probabilities"], ref_probs,
                               atol=1e-5)
    rows, cols = input_size[0] // 16, input_size[1] // 16
    assert backend.detect(image, objects[:1])["probabilities"].shape == (1, rows, cols)
