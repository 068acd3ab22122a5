"""The opt-in second pass over zoomed tiles (yolz_ros/runtime/zoom_pass.py, Detector.detect's
zoom): tile geometry, pooling, and what it does to a real ONNX Runtime detection."""
import numpy as np
import pytest

from tiny_model import make_tiny_model
from yolz_ros.runtime.detector import Detector
from yolz_ros.runtime.geometry import Letterbox, cell_boxes
from yolz_ros.runtime.zoom_pass import frame_span, pool_tile, tile_warp, zoom_tiles


@pytest.mark.parametrize("zoom,count", [(1.0, 1), (1.5, 4), (2.0, 9), (3.0, 25)])
def test_tiles_cover_the_input_with_half_tile_overlap(zoom, count):
    tiles = np.array(zoom_tiles((480, 640), zoom))
    assert len(tiles) == count
    assert np.allclose(tiles[:, 2] - tiles[:, 0], 640 / zoom)
    assert np.allclose(tiles[:, 3] - tiles[:, 1], 480 / zoom)
    assert tiles[:, :2].min() == 0 and np.isclose(tiles[:, 2].max(), 640)
    assert np.isclose(tiles[:, 3].max(), 480)
    assert np.diff(np.unique(tiles[:, 0])).max(initial=0) <= 640 / zoom / 2 + 1e-6
    assert np.diff(np.unique(tiles[:, 1])).max(initial=0) <= 480 / zoom / 2 + 1e-6


def test_tile_warp_maps_the_source_region_onto_the_tile():
    # a 1280x480 frame letterboxed into 640x480: scale 0.5, 120 px bands above and below
    lb = Letterbox.fit((480, 1280), (480, 640))
    rect = (320.0, 120.0, 640.0, 360.0)  # model-input pixels: the lower right quarter's top
    m = tile_warp(rect, lb, (480, 640))
    corners = np.array([[640.0, 0.0, 1], [1280.0, 480.0, 1]])  # source pixels of the rect
    assert np.allclose(corners @ m.T, [[0, 0], [640, 480]])


def test_frame_span_marks_the_letterbox_bands_in_a_tile():
    lb = Letterbox.fit((480, 1280), (480, 640))  # bands: model rows 0-120 and 360-480
    m = tile_warp((0.0, 0.0, 320.0, 240.0), lb, (480, 640))  # top left tile at 2x
    assert frame_span(m, (480, 1280)) == (0, 240, 1280, 720)  # tile rows < 240: the band


def test_pool_tile_takes_the_max_into_the_cell_of_each_centre():
    grid = np.full((1, 4, 6), 0.1, np.float32)
    tile = np.zeros((1, 4, 6), np.float32)
    tile[0, 3, 5] = 0.9  # the tile's last cell ...
    pool_tile(grid, tile, (0.0, 0.0, 48.0, 32.0), stride=16)  # ... of a tile on the top left
    assert grid[0, 1, 2] == pytest.approx(0.9)  # centre (44, 30) -> row 1, col 2
    assert (np.delete(grid.ravel(), 1 * 6 + 2) == pytest.approx(0.1))  # nothing lowered


@pytest.fixture(scope="module")
def detector(tmp_path_factory):
    return Detector(make_tiny_model(tmp_path_factory.mktemp("zoom") / "tiny"),
                    backend="onnxruntime", device="cpu")


def test_detect_with_zoom_adds_passes_keeps_the_grid(detector, monkeypatch):
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (60, 1200, 3), dtype=np.uint8)  # letterboxed: wide bands
    objects = detector.embed_views([rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)]).vector
    objects = objects[None]
    base = detector.detect(frame, objects)
    calls = []
    real = detector.backend.detect
    monkeypatch.setattr(detector.backend, "detect", lambda *a: calls.append(1) or real(*a))
    zoomed = detector.detect(frame, objects, zoom=3.0)
    # 25 tiles, less those wholly in the padding bands; the frame's own pass first
    lb = base.letterbox
    inside = [r for r in zoom_tiles(detector.info.input_size, 3.0)
              if r[3] > lb.offset_y and r[1] < lb.offset_y + lb.resized_height]
    assert len(calls) == 1 + len(inside) < 26
    # the last tile's pixels outside the frame are the letterbox's pad value, as in its pass
    u0, v0, u1, v1 = frame_span(tile_warp(inside[-1], lb, detector.info.input_size),
                                frame.shape[:2])
    assert v1 < detector.info.input_size[0] and (detector._canvas[v1:] == 114).all()
    assert zoomed.probabilities.shape == base.probabilities.shape
    _, padding = cell_boxes(lb, detector.info.rows, detector.info.cols, detector.info.stride)
    assert (zoomed.probabilities[:, padding] == 0).all()
    assert (zoomed.probabilities >= base.probabilities).all()
    assert (zoomed.probabilities > base.probabilities + 1e-4).any()
    assert np.array_equal(zoomed.boxes, base.boxes)


@pytest.mark.parametrize("zoom", [0.5, 3.5, float("nan")])
def test_detect_refuses_a_zoom_out_of_range(detector, zoom):
    frame = np.zeros((48, 64, 3), np.uint8)
    with pytest.raises(ValueError, match="zoom"):
        detector.detect(frame, np.zeros((1, detector.info.embedding_dim), np.float32), zoom=zoom)
