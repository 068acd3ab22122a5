"""The runtime without ROS or torch: image conversion, letterbox, model folder, backends,
Detector (on the tiny model of tests/tiny_model.py). The sensor_msgs side of image conversion is
tests/ros/test_image_msgs.py."""
import json
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest

from tiny_model import (make_tiny_model, reference_boxes, reference_detect, reference_embed,
                        tiny_weights)
from yolz_ros.runtime.backends import BackendError, create_backend
from yolz_ros.runtime.backends.engine_cache import EngineCache, EngineSpec
from yolz_ros.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend
from yolz_ros.runtime.decode import decode_peaks
from yolz_ros.runtime.detector import Detector
from yolz_ros.runtime.geometry import Letterbox, cell_boxes, letterbox, prepare_view
from encoded_images import ENCODINGS, RGB, encoded
from yolz_ros.runtime.image import ImageError, to_rgb
from yolz_ros.runtime.model_info import ModelError, ModelInfo, compute_model_id


PAD = 114
E, D, T = 32, 8, 4  # the tiny model's embedding_dim = T tokens x D


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture(scope="session")
def detector(tiny_dir):
    return Detector(tiny_dir, backend="onnxruntime", device="cpu")


def rand_rgb(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# ----------------------------------------------------------------------------- geometry
@pytest.mark.parametrize("src", [(480, 640), (720, 1280), (100, 100), (1080, 300), (10, 7)])
def test_letterbox_follows_the_contract(src):
    h, w = src
    out, lb = letterbox(np.zeros((h, w, 3), np.uint8), (64, 96), PAD)
    scale = min(96 / w, 64 / h)
    rw, rh = round(w * scale), round(h * scale)
    assert (lb.scale, lb.offset_x, lb.offset_y) == (scale, (96 - rw) // 2, (64 - rh) // 2)
    assert out.shape == (64, 96, 3)
    inside = np.zeros((64, 96), bool)
    inside[lb.offset_y:lb.offset_y + rh, lb.offset_x:lb.offset_x + rw] = True
    assert (out[inside] == 0).all() and (out[~inside] == PAD).all()


@pytest.mark.parametrize("src,interp", [((480, 640), cv2.INTER_AREA), ((20, 30), cv2.INTER_LINEAR)])
def test_letterbox_interpolation_and_reused_canvas(src, interp):
    rgb = rand_rgb(*src)
    canvas = np.full((64, 96, 3), 7, np.uint8)
    out, lb = letterbox(rgb, (64, 96), PAD, out=canvas)
    assert out is canvas
    expected = cv2.resize(rgb, (lb.resized_width, lb.resized_height), interpolation=interp)
    region = out[lb.offset_y:lb.offset_y + lb.resized_height,
                 lb.offset_x:lb.offset_x + lb.resized_width]
    np.testing.assert_array_equal(region, expected)
    assert not (out == 7).all(axis=2).any()  # every old canvas pixel was overwritten


def test_model_source_round_trip():
    lb = Letterbox.fit((480, 640), (64, 96))
    rng = np.random.default_rng(1)
    x, y = rng.uniform(0, 640, 100), rng.uniform(0, 480, 100)
    np.testing.assert_allclose(lb.to_source(*lb.to_model(x, y)), (x, y), atol=1e-9)
    mx, my = rng.uniform(0, 96, 100), rng.uniform(0, 64, 100)
    np.testing.assert_allclose(lb.to_model(*lb.to_source(mx, my)), (mx, my), atol=1e-9)
    assert lb.to_model(0, 0) == (lb.offset_x, lb.offset_y)


@pytest.mark.parametrize("src", [(480, 640), (1080, 300), (300, 1080), (64, 96)])
def test_cell_boxes_contain_the_pixels_that_map_into_them(src):
    h, w = src
    lb = Letterbox.fit(src, (64, 96))
    boxes, padding = cell_boxes(lb, 4, 6, 16)
    assert boxes.shape == (4, 6, 4) and boxes.dtype == np.float32
    assert (boxes[..., 0] >= 0).all() and (boxes[..., 2] <= w).all()
    assert (boxes[..., 1] >= 0).all() and (boxes[..., 3] <= h).all()
    rng = np.random.default_rng(2)
    x, y = rng.uniform(0, w, 2000), rng.uniform(0, h, 2000)
    mx, my = lb.to_model(x, y)
    r, c = (my // 16).astype(int), (mx // 16).astype(int)
    eps = 1e-3
    assert (boxes[r, c, 0] - eps <= x).all() and (x <= boxes[r, c, 2] + eps).all()
    assert (boxes[r, c, 1] - eps <= y).all() and (y <= boxes[r, c, 3] + eps).all()
    assert not padding[r, c].any()
    # Padding cells are exactly those whose letterboxed pixels are all padding.
    canvas, _ = letterbox(np.zeros((h, w, 3), np.uint8), (64, 96), PAD)
    all_pad = (canvas[..., 0] == PAD).reshape(4, 16, 6, 16).all(axis=(1, 3))
    np.testing.assert_array_equal(padding, all_pad)
    assert ((boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1]))[padding].max(
        initial=0) == 0


def test_prepare_view_paints_transparent_pixels_with_pad():
    rgb = np.full((40, 20, 3), 200, np.uint8)
    alpha = np.zeros((40, 20), np.uint8)
    alpha[10:30, 5:15] = 255
    view = prepare_view(rgb, alpha, 32, PAD)
    assert view.shape == (32, 32, 3)
    assert (view[16, 16] == 200).all() and (view[1, 16] == PAD).all() and (view[16, 1] == PAD).all()
    assert (rgb == 200).all()  # the caller's image is not modified


# ----------------------------------------------------------------------------- images


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_every_encoding_converts(encoding):
    pixels, rgb, alpha = encoded(encoding)
    got_rgb, got_alpha = to_rgb(pixels, encoding)
    assert got_rgb.dtype == np.uint8 and got_rgb.shape == (2, 3, 3)
    np.testing.assert_array_equal(got_rgb, rgb)
    if alpha is None:
        assert got_alpha is None
    else:
        np.testing.assert_array_equal(got_alpha, alpha)


def test_bad_arrays_raise():
    with pytest.raises(ImageError, match="accepted"):
        to_rgb(RGB, "rgb16")
    with pytest.raises(ImageError, match="uint8"):
        to_rgb(RGB.astype(np.float32), "rgb8")
    with pytest.raises(ImageError, match="HxWx4"):
        to_rgb(RGB, "rgba8")
    with pytest.raises(ImageError, match="over the limit"):
        to_rgb(RGB, "rgb8", max_pixels=5)
    assert issubclass(ImageError, ValueError)


# ----------------------------------------------------------------------------- model folder
def test_model_info_reads_the_contract(tiny_dir):
    info = ModelInfo.load(tiny_dir)
    raw = json.loads((tiny_dir / "model.json").read_text())
    assert info.model_id == raw["model_id"] == compute_model_id(raw["name"], raw["sha256"])
    assert (info.input_size, info.rows, info.cols, info.stride) == ((64, 96), 4, 6, 16)
    assert (info.view_size, info.view_sizes, info.embedding_dim, info.pad_value) == \
        (48, (32, 48), E, 114)
    assert (info.tokens.count, info.tokens.dim, info.tokens.patch) == (T, D, 16)


def test_tiny_model_is_small_and_deterministic(tiny_dir, tmp_path):
    """(made without torch: tests/unit/conftest.py fails the tier if anything imports it)"""
    again = make_tiny_model(tmp_path / "again")
    assert json.loads((again / "model.json").read_text())["model_id"] == \
        ModelInfo.load(tiny_dir).model_id  # the same arguments, the same bytes
    assert sum(f.stat().st_size for f in tiny_dir.iterdir()) < 40_000


@pytest.mark.parametrize("damage,match", [
    (lambda d: shutil.rmtree(d), "does not exist"),
    (lambda d: (d / "model.json").unlink(), "no model.json"),
    (lambda d: (d / "model.json").write_text("{not json"), "cannot be read as JSON"),
    (lambda d: (d / "detector.onnx").unlink(), "detector.onnx is missing"),
    (lambda d: (d / "embedder.onnx").write_bytes(b"changed"), "does not match the sha256"),
    (lambda d: _edit_json(d, lambda j: j.pop("view_size")), "missing field 'view_size'"),
    (lambda d: _edit_json(d, lambda j: j["grid"].update(rows=5)), "invalid 'grid.rows'"),
    (lambda d: _edit_json(d, lambda j: j.update(format="other/2")), "invalid 'format'"),
    (lambda d: _edit_json(d, lambda j: j["object_tokens"].update(count=5)),
     "embedding_dim 32 must be object_tokens.count"),
    (lambda d: _edit_json(d, lambda j: j["object_tokens"].update(patch=20)),
     "invalid 'object_tokens.patch'"),
])
def test_broken_model_folders_raise(tiny_dir, tmp_path, damage, match):
    folder = tmp_path / "m"
    shutil.copytree(tiny_dir, folder)
    damage(folder)
    with pytest.raises(ModelError, match=match) as e:
        ModelInfo.load(folder)
    assert str(folder) in str(e.value)


def _edit_json(folder, edit):
    raw = json.loads((folder / "model.json").read_text())
    edit(raw)
    (folder / "model.json").write_text(json.dumps(raw))


# ----------------------------------------------------------------------------- backends
def test_onnxruntime_matches_the_reference(tiny_dir):
    """ONNX Runtime on the graphs == their NumPy reference (tests/tiny_model.py); N, S and K are
    dynamic. (tests/training/test_tiny_model.py checks the graphs against torch.)"""
    info = ModelInfo.load(tiny_dir)
    backend = OnnxRuntimeBackend(info, "cpu", num_threads=1)
    weights = tiny_weights()
    rng = np.random.default_rng(3)
    for n, s in ((3, 32), (1, 48), (2, 64)):
        views = (rng.random((n, 3, s, s)) * 255).astype(np.float32)
        tokens = backend.embed(views)
        assert tokens.shape == (n, D, s // 16, s // 16)
        np.testing.assert_allclose(tokens, reference_embed(weights, views), atol=1e-5)
    image = (rng.random((1, 3, 64, 96)) * 255).astype(np.float32)
    objects = rng.standard_normal((5, E)).astype(np.float32)
    outputs = backend.detect(image, objects)
    assert list(outputs) == ["probabilities"]
    probs = outputs["probabilities"]
    np.testing.assert_allclose(probs, reference_detect(weights, image, objects), atol=1e-5)
    assert probs.shape == (5, 4, 6) and probs.dtype == np.float32
    assert backend.detect(image, objects[:1])["probabilities"].shape == (1, 4, 6)
    np.testing.assert_allclose(backend.detect(image, objects[2:3])["probabilities"], probs[2:3],
                               atol=1e-6)


def test_a_box_head_is_read_by_name(tmp_path):
    """A detector.onnx with a box head (model.json "boxes"): the backend returns both outputs,
    the Detector turns the distances into a box per cell and per peak."""
    folder = make_tiny_model(tmp_path / "boxes", boxes=True)
    info = ModelInfo.load(folder)
    assert info.box_output == "box_distances"
    backend = OnnxRuntimeBackend(info, "cpu", num_threads=1)
    rng = np.random.default_rng(4)
    image = (rng.random((1, 3, 64, 96)) * 255).astype(np.float32)
    objects = rng.standard_normal((2, E)).astype(np.float32)
    outputs = backend.detect(image, objects)
    weights = tiny_weights()
    np.testing.assert_allclose(outputs["box_distances"], reference_boxes(weights, image),
                               atol=1e-4)
    assert (outputs["box_distances"] > 0).all()
    np.testing.assert_allclose(outputs["probabilities"],
                               reference_detect(weights, image, objects), atol=1e-5)
    det = Detector(folder, backend="onnxruntime", device="cpu")
    result = det.detect(rand_rgb(480, 640), objects)
    assert result.object_boxes.shape == (4, 6, 4)
    x0, y0, x1, y1 = np.moveaxis(result.object_boxes, -1, 0)
    assert (x0 <= x1).all() and (y0 <= y1).all() and x0.min() >= 0 and x1.max() <= 640
    assert all(len(p) >= 1 for p in det.peaks(result, threshold=0.0))
    with pytest.raises(BackendError, match="no output"):  # declared but not in the graph
        _edit_json(folder, lambda j: j["boxes"].update(output="other"))
        OnnxRuntimeBackend(ModelInfo.load(folder), "cpu")


def test_backend_choice(tiny_dir):
    info = ModelInfo.load(tiny_dir)
    assert create_backend(info, "auto", "cpu").name == "onnxruntime-cpu"
    with pytest.raises(BackendError, match="unknown backend"):
        create_backend(info, "openvino")
    with pytest.raises(BackendError, match="needs device 'cuda'"):
        create_backend(info, "tensorrt", "cpu")


def _tensorrt_missing():
    try:
        import tensorrt  # noqa: F401
    except Exception as e:  # ImportError, or OSError when libnvinfer is absent
        return f"TensorRT Python bindings cannot be imported here ({type(e).__name__}: {e})"
    return ""


@pytest.mark.skipif(bool(_tensorrt_missing()), reason=_tensorrt_missing() or "TensorRT present")
def test_tensorrt_matches_onnxruntime(tiny_dir, tmp_path):
    ort_det = Detector(tiny_dir, backend="onnxruntime", device="cpu")
    trt_det = Detector(tiny_dir, backend="tensorrt", precision="fp32", cache_dir=tmp_path)
    rgb, objects = rand_rgb(480, 640), np.eye(E, dtype=np.float32)[:3]
    np.testing.assert_allclose(trt_det.detect(rgb, objects).probabilities,
                               ort_det.detect(rgb, objects).probabilities, atol=1e-3)
    assert len(list(tmp_path.glob("*.engine"))) == 2  # cached for the next start


@pytest.mark.skipif(not _tensorrt_missing(), reason="TensorRT is installed here")
def test_tensorrt_unavailable_is_a_clear_error(tiny_dir):
    with pytest.raises(BackendError, match="tensorrt' is not available: TensorRT"):
        create_backend(ModelInfo.load(tiny_dir), "tensorrt", "cuda")


# ----------------------------------------------------------------------------- engine cache
SPEC = EngineSpec(onnx_sha256="a" * 64, tensorrt_version="10.3.0", gpu_name="Orin",
                  compute_capability="8.7", precision="fp16",
                  profiles=(("embeddings", (1, 256), (4, 256), (64, 256)),))


@pytest.mark.parametrize("change", [
    dict(onnx_sha256="b" * 64), dict(tensorrt_version="10.4.0"), dict(gpu_name="RTX 4090"),
    dict(compute_capability="8.9"), dict(precision="fp32"),
    dict(profiles=(("embeddings", (1, 256), (4, 256), (32, 256)),)),
])
def test_engine_cache_key_changes_with_every_input(change):
    other = EngineSpec(**{**SPEC.__dict__, **change})
    assert other.key() != SPEC.key()
    assert EngineSpec(**SPEC.__dict__).key() == SPEC.key()


def test_engine_cache_round_trip_and_rebuild_on_corruption(tmp_path):
    cache = EngineCache(tmp_path)
    builds = []

    def build():
        builds.append(1)
        return b"engine-bytes-%d" % len(builds)

    engine, built = cache.get_or_build(SPEC, build, deserialize=lambda b: b)
    assert built and engine == b"engine-bytes-1"
    engine_path, sidecar_path = cache.paths(SPEC)
    assert engine_path.name == SPEC.key() + ".engine" and sidecar_path.exists()
    assert not list(tmp_path.glob(".tmp-*"))  # atomic writes leave no temporaries
    assert cache.get_or_build(SPEC, build, deserialize=lambda b: b) == (b"engine-bytes-1", False)

    engine_path.write_bytes(b"engine-bytes-X")  # same size, different content
    data, reason = cache.load(SPEC)
    assert data is None and "corrupt" in reason
    assert cache.get_or_build(SPEC, build, deserialize=lambda b: b) == (b"engine-bytes-2", True)

    sidecar_path.write_text("{")
    assert "unreadable" in cache.load(SPEC)[1]
    assert cache.get_or_build(SPEC, build, deserialize=lambda b: b)[1]

    # Bytes TensorRT rejects (e.g. another TensorRT build) are rebuilt, not used.
    engine, built = cache.get_or_build(SPEC, build, deserialize=lambda b: None if
                                       b == b"engine-bytes-3" else b)
    assert built and engine == b"engine-bytes-4" and len(builds) == 4


# ----------------------------------------------------------------------------- Detector
@pytest.mark.parametrize("src,has_padding_cells", [
    ((480, 640), False), ((240, 320), False), ((720, 1280), False), ((1080, 300), True),
    ((50, 50), True)])
def test_detect_shapes_and_padding(detector, src, has_padding_cells):
    objects = detector.embed_views([rand_rgb(40, 30, s) for s in range(3)]).vector[None]
    objects = np.concatenate([objects, np.eye(E, dtype=np.float32)[:2]])
    result = detector.detect(rand_rgb(*src), objects)
    assert result.probabilities.shape == (3, 4, 6) and result.probabilities.dtype == np.float32
    assert result.boxes.shape == (4, 6, 4) and result.latency_ms > 0
    _, padding = cell_boxes(result.letterbox, 4, 6, 16)
    assert (result.probabilities[:, padding] == 0).all()
    assert (result.probabilities[:, ~padding] > 0).all()  # sigmoid: never exactly 0
    assert padding.any() == has_padding_cells
    assert len(detector.peaks(result, threshold=0.0)) == 3


def test_detect_without_objects_skips_the_network(detector):
    result = detector.detect(rand_rgb(480, 640), np.zeros((0, E), np.float32))
    assert result.probabilities.shape == (0, 4, 6)
    assert detector.peaks(result) == []


def test_detect_rejects_bad_inputs(detector):
    with pytest.raises(ValueError, match=rf"\[K, {E}\]"):
        detector.detect(rand_rgb(48, 64), np.zeros((2, 8), np.float32))
    with pytest.raises(ValueError, match="RGB uint8"):
        detector.detect(np.zeros((48, 64), np.uint8), np.zeros((1, E), np.float32))
    with pytest.raises(ValueError, match="max_objects"):
        detector.detect(rand_rgb(48, 64), np.ones((65, E), np.float32))
    with pytest.raises(ValueError, match="NaN"):
        detector.detect(rand_rgb(48, 64), np.full((1, E), np.nan, np.float32))


def test_embed_views_agreement_flags_the_odd_one_out(detector):
    rng = np.random.default_rng(5)
    base = np.zeros((48, 48, 3), np.uint8)
    base[8:40, 8:40] = (220, 30, 30)  # a red square on black
    views = [np.clip(base.astype(int) + rng.integers(-10, 10, base.shape), 0, 255).astype(np.uint8)
             for _ in range(4)]
    odd = np.zeros((48, 48, 3), np.uint8)
    odd[:, ::4] = (30, 220, 30)  # green stripes
    emb = detector.embed_views(views + [odd])
    assert emb.vector.shape == (E,) and emb.vector.dtype == np.float32
    assert emb.per_view.shape == (5, D) and emb.agreement.shape == (5,)
    tokens = emb.vector.reshape(T, D)  # slot 0 the mean token, then a farthest-point sample
    np.testing.assert_allclose(np.linalg.norm(tokens, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(emb.per_view, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(emb.agreement, emb.per_view @ tokens[0], atol=1e-5)
    assert emb.agreement[4] < emb.agreement[:4].min()


def test_embed_views_uses_alpha_and_rejects_bad_views(detector):
    rgb = rand_rgb(48, 48)
    alpha = np.zeros((48, 48), np.uint8)
    alpha[8:40, 8:40] = 255
    other = rand_rgb(48, 48, seed=9)
    other[alpha >= 128] = rgb[alpha >= 128]  # the same object on another background
    masked = detector.embed_views([np.dstack([rgb, alpha])]).vector
    np.testing.assert_allclose(detector.embed_views([np.dstack([other, alpha])]).vector, masked,
                               atol=1e-6)  # transparent pixels do not count
    assert not np.allclose(detector.embed_views([rgb]).vector, masked, atol=1e-3)
    with pytest.raises(ValueError, match="no views"):
        detector.embed_views([])
    with pytest.raises(ValueError, match="view 1"):
        detector.embed_views([rgb, rgb[..., 0]])
    with pytest.raises(ValueError, match="fully transparent"):
        detector.embed_views([np.zeros((8, 8, 4), np.uint8)])


def test_decode_peaks_finds_connected_regions():
    lb = Letterbox.fit((64, 96), (64, 96))
    boxes, _ = cell_boxes(lb, 4, 6, 16)
    grid = np.zeros((4, 6), np.float32)
    grid[0, 0], grid[0, 1], grid[1, 1] = 0.6, 0.9, 0.7  # one 4-connected region
    grid[3, 5] = 0.8
    grid[2, 2] = 0.55  # touches (1, 1) only diagonally: a region of its own
    peaks = decode_peaks(grid, boxes, 0.5)
    assert [p.num_cells for p in peaks] == [3, 1, 1]
    top = peaks[0]
    assert (top.score, top.peak_x, top.peak_y) == (pytest.approx(0.9), 24.0, 8.0)
    assert (top.x_min, top.y_min, top.x_max, top.y_max) == (0, 0, 32, 32)
    assert peaks[1].score == pytest.approx(0.8) and peaks[2].score == pytest.approx(0.55)


def test_benchmark_writes_json_and_plot(tiny_dir, tmp_path):
    from tools import benchmark

    out = tmp_path / "bench.json"
    report = benchmark.main(["--model", str(tiny_dir), "--out", str(out), "--backend",
                             "onnxruntime", "--iterations", "2", "--warmup", "1"])
    assert json.loads(out.read_text()) == report and out.with_suffix(".png").stat().st_size > 0
    assert [r["objects"] for r in report["results"]["vs_objects"]] == [1, 4, 16, 64]
    assert report["environment"]["backend"] == "onnxruntime-cpu"
    rows = report["results"]["vs_objects"]
    assert all(r["iterations"] == 2 for r in rows)
    assert report["results"]["k64_over_k1_p50"] == round(rows[-1]["p50_ms"] / rows[0]["p50_ms"], 2)


def test_benchmark_times_a_baseline_in_the_same_turns(tiny_dir, tmp_path):
    from tools import benchmark

    report = benchmark.main(["--model", str(tiny_dir), "--baseline", str(tiny_dir), "--out",
                             str(tmp_path / "b.json"), "--backend", "onnxruntime",
                             "--iterations", "2", "--warmup", "1"])
    v = report["versus_baseline"]
    assert v["model_ms"]["iterations"] == v["baseline_ms"]["iterations"] == 4
    there = v["model_ms"]["p50_ms"] / v["baseline_ms"]["p50_ms"]
    back = v["reverse"]["model_ms"]["p50_ms"] / v["reverse"]["baseline_ms"]["p50_ms"]
    # the geometric mean of both directions (each p50 rounded to 1 us, each ratio to 0.001)
    assert v["p50_ratio"] == pytest.approx((there / back) ** 0.5, rel=0.01)


def test_benchmark_times_a_sweep_in_rotating_turns():
    from tools import benchmark

    order = []
    fns = [lambda i=i: order.append(i) for i in range(3)]
    stats = benchmark.measure_in_turns(fns, iterations=3, warmup=1)
    assert order[:3] == [0, 1, 2]  # warm-up, each once
    assert order[3:] == [0, 1, 2, 2, 0, 1, 1, 2, 0]  # one of each per round, order rotating
    assert [s["iterations"] for s in stats] == [3, 3, 3]


def test_runtime_never_imports_torch():
    code = ("import sys, yolz_ros.runtime.detector, yolz_ros.runtime.image, tools.benchmark, "
            "yolz_ros.runtime.backends.tensorrt_backend; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
