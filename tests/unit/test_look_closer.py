"""Look-closer: which tiles a budget buys, how they are fused, and Detector.detect's passes."""
import numpy as np
import pytest
from tiny_model import make_tiny_model

from yolz_ros.runtime.detector import Detector
from yolz_ros.runtime.look_closer import candidates, centred_tile, choose_tiles

INPUT = (480, 640)
AREA = (0.0, 0.0, 640.0, 480.0)


def test_candidates_are_local_peaks_most_undecided_first():
    probs = np.zeros((2, 30, 40), np.float32)
    probs[0, 5, 5] = 0.97  # sure: last
    probs[0, 5, 6] = 0.5  # beside a higher cell: not a peak
    probs[1, 20, 30] = 0.3  # at the threshold: first
    probs[1, 10, 10] = 0.005  # below the floor: nothing
    assert candidates(probs, 0.3).tolist() == [[20, 30], [5, 5]]


def test_a_tile_is_centred_on_its_candidate_and_kept_inside_the_image():
    assert centred_tile(320, 240, INPUT, AREA, zoom=2.0) == (160.0, 120.0, 480.0, 360.0)
    assert centred_tile(8, 8, INPUT, AREA, zoom=2.0) == (0.0, 0.0, 320.0, 240.0)  # shifted in
    assert centred_tile(320, 240, INPUT, AREA) == (192.0, 144.0, 448.0, 336.0)  # LOOK_ZOOM 2.5


def test_budget_goes_to_uncovered_candidates_then_scans_across_frames():
    probs = np.zeros((1, 30, 40), np.float32)
    probs[0, 15, 20] = 0.3
    probs[0, 16, 22] = 0.2  # inside the first tile: no second tile for it
    scan = [(0.0, 0.0, 1.0, 1.0), (1.0, 1.0, 2.0, 2.0), (2.0, 2.0, 3.0, 3.0)]
    tiles, nxt = choose_tiles(probs, 0.3, 3, INPUT, AREA, 16, scan, 0)
    assert tiles[0] == centred_tile(20.5 * 16, 15.5 * 16, INPUT, AREA)
    assert tiles[1:] == scan[:2] and nxt == 2
    tiles, nxt = choose_tiles(np.zeros_like(probs), 0.3, 2, INPUT, AREA, 16, scan, nxt)
    assert tiles == [scan[2], scan[0]] and nxt == 1  # the scan goes on where it stopped
    assert choose_tiles(probs, 0.3, 0, INPUT, AREA, 16, scan, 1) == ([], 1)


@pytest.fixture(scope="module")
def detector(tmp_path_factory):
    return Detector(make_tiny_model(tmp_path_factory.mktemp("look") / "tiny"),
                    backend="onnxruntime", device="cpu")


def test_detect_budget_zero_is_the_frame_pass_and_a_budget_bounds_the_passes(detector):
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    obj = detector.embed_views([rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)]).vector[None]
    plain = detector.detect(frame, obj).probabilities
    off = detector.detect(frame, obj, look_closer=0)
    np.testing.assert_array_equal(off.probabilities, plain)
    assert off.passes == 1
    result = detector.detect(frame, obj, look_closer=2)
    closer = result.probabilities
    assert result.passes == 3 and closer.shape == plain.shape
    assert not np.array_equal(closer, plain) and (closer >= plain).all()  # max fusion
    with pytest.raises(ValueError, match="one of them"):
        detector.detect(frame, obj, zoom=2.0, look_closer=1)
    with pytest.raises(ValueError, match="0 \\(off\\) to 9"):
        detector.detect(frame, obj, look_closer=10)
