"""Negative views ("not that one"): the suppression rule, the refusals, and Detector.detect with
negatives through a real ONNX Runtime session of the tiny model."""
import numpy as np
import pytest
from tiny_model import make_tiny_model

from yolz_ros.runtime.detector import Detector
from yolz_ros.runtime.negatives import (MAX_NEGATIVES, NegativeError, check_negative,
                                        stack_negatives, suppress)


def test_a_cell_that_matches_a_negative_better_is_lowered_the_rest_kept():
    probs = np.array([[[0.8, 0.4]], [[0.5, 0.5]]], np.float32)  # K = 2 objects, 1 x 2 cells
    neg = np.array([[[0.6, 0.8]], [[0.7, 0.1]], [[0.2, 0.7]]], np.float32)
    out = suppress(probs, neg, np.array([0, 0, 1]), margin=1.0)
    # object 0: cell 0 beats its negatives (kept), cell 1 loses to 0.8 -> 0.4 * 0.4 / 0.8
    assert out[0, 0, 0] == pytest.approx(0.8) and out[0, 0, 1] == pytest.approx(0.2)
    # object 1: only cell 1 loses (0.7 > 0.5)
    assert out[1, 0, 0] == pytest.approx(0.5) and out[1, 0, 1] == pytest.approx(0.5 * 0.5 / 0.7)
    assert probs[0, 0, 1] == pytest.approx(0.4)  # the input is not changed
    # a margin of 0.5: a negative counts from half the object's score (0.7 > 0.5 * 0.8)
    half = suppress(probs, neg, np.array([0, 0, 1]), margin=0.5)
    assert half[0, 0, 0] == pytest.approx(0.8 * 0.4 / 0.7)
    assert suppress(probs, neg[:0], np.zeros(0, int)) is probs


def test_negatives_are_stacked_after_the_objects_with_their_owner():
    objects = np.ones((2, 6), np.float32)
    rows, owners = stack_negatives(objects, [None, np.zeros((2, 6), np.float32)])
    assert rows.shape == (4, 6) and owners.tolist() == [1, 1]
    with pytest.raises(ValueError, match="one entry per object"):
        stack_negatives(objects, [None])
    with pytest.raises(ValueError, match=r"\[M, 6\]"):
        stack_negatives(objects, [np.zeros((1, 5), np.float32), None])
    with pytest.raises(ValueError, match="more than"):
        stack_negatives(objects, [np.zeros((MAX_NEGATIVES + 1, 6), np.float32), None])
    with pytest.raises(ValueError, match="NaN"):
        stack_negatives(objects, [np.full((1, 6), np.nan, np.float32), None])


@pytest.fixture(scope="module")
def detector(tmp_path_factory):
    return Detector(make_tiny_model(tmp_path_factory.mktemp("neg") / "tiny"),
                    backend="onnxruntime", device="cpu")


def _views(seed, n=3):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (48, 40, 3), dtype=np.uint8) for _ in range(n)]


def test_a_negative_that_is_the_object_is_refused_a_look_alike_accepted(detector):
    obj = detector.embed_views(_views(1))
    dim = detector.info.tokens.dim
    own = detector.embed_views(_views(1)[:1])  # one of the object's own views
    with pytest.raises(NegativeError, match="itself"):
        check_negative(obj.per_view, obj.vector, own.vector, dim)
    other = detector.embed_views(_views(2, 1))
    cosine = check_negative(obj.per_view, obj.vector, other.vector, dim)
    assert cosine < float((obj.per_view @ obj.vector[:dim]).max())
    with pytest.raises(NegativeError, match="remove some"):
        check_negative(obj.per_view, obj.vector, other.vector, dim, existing=MAX_NEGATIVES)


def test_detect_with_negatives_suppresses_in_the_same_call(detector, monkeypatch):
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    a, b = (detector.embed_views(_views(s)).vector for s in (1, 2))
    both = detector.detect(frame, np.stack([a, b])).probabilities
    assert (both[1] > both[0]).any() and (both[1] <= both[0]).any()  # a mixed map to test on
    calls = []
    real = detector.backend.detect
    monkeypatch.setattr(detector.backend, "detect", lambda *x: calls.append(len(x[1])) or real(*x))
    plain = detector.detect(frame, a[None], negatives=[None]).probabilities
    out = detector.detect(frame, a[None], negatives=[b[None]]).probabilities
    assert calls == [1, 2]  # the negative rode in the object's network call
    np.testing.assert_array_equal(plain[0], both[0])  # no negative: bit-identical
    np.testing.assert_allclose(out[0], suppress(both[:1], both[1:], np.array([0]))[0], rtol=1e-6)
    assert (out[0] < plain[0]).any()
    with pytest.raises(ValueError, match="max_objects"):
        small = Detector(detector.info.detector_path.parent, backend="onnxruntime", device="cpu",
                         max_objects=1)
        small.detect(frame, a[None], negatives=[b[None]])
