"""Fast tests of the training data pipeline (cell rule, splits, composites, renders, sampler)."""
import numpy as np
import pytest

pytest.importorskip("cv2")
from training.data import sources  # noqa: E402
from training.data.compose import ComposeConfig, compose_scene, paste  # noqa: E402
from training.data.episodes import EpisodeConfig, EpisodeSampler, cell_targets, make_eval_set  # noqa: E402


def _rule(index_map, c, min_px=20):
    return cell_targets(index_map, c, stride=16, coverage=0.25, min_visible_pixels=min_px)


# ----------------------------------------------------------------------------- the cell rule

def test_cell_rule_coverage_threshold():
    m = np.full((32, 32), -1, np.int16)
    m[0:8, 0:8] = 0             # object 0: exactly 25% of cell (0, 0) -> positive
    m[16:23, 16:25] = 0         # and 63 px (< 25%) of cell (1, 1): neither threshold nor argmax
    m[0:9, 16:23] = 1           # object 1: 63 px in cell (0, 1), its only cell -> argmax positive
    m[16:32, 0:16] = 1          # ... plus all of cell (1, 0)
    t, vis = _rule(m, 2)
    assert t.shape == (2, 2, 2) and t.dtype == np.float32
    np.testing.assert_array_equal(t[0], [[1, 0], [0, 0]])
    np.testing.assert_array_equal(t[1], [[0, 0], [1, 0]])  # 63 px cell is not the argmax (256 px is)
    np.testing.assert_array_equal(vis, [64 + 63, 63 + 256])


def test_tiny_object_gets_exactly_one_cell():
    m = np.full((48, 48), -1, np.int16)
    m[14:19, 14:19] = 0  # 25 px over four cells: 4, 6, 6, 9 px
    t, vis = _rule(m, 1)
    assert vis[0] == 25 and t[0].sum() == 1 and t[0, 1, 1] == 1


def test_occluded_pixels_do_not_count():
    img = np.zeros((32, 32, 3), np.float32)
    inst = np.full((32, 32), -1, np.int16)
    square = np.full((16, 16, 4), 255, np.uint8)
    paste(img, inst, square, 0, 0, 0)          # object 0 fills cell (0, 0)...
    paste(img, inst, square[:14, :16], 1, 0, 0)  # ...then object 1 hides all but 2 rows of it
    t, vis = _rule(inst, 2)
    assert vis[0] == 32 and vis[1] == 14 * 16
    assert t[0, 0, 0] == 1  # 32 visible px: below 25% of the cell, but its best cell
    assert t[1, 0, 0] == 1


def test_absent_objects_are_all_zero():
    m = np.full((32, 32), -1, np.int16)
    m[0:2, 0:5] = 0  # 10 px < min_visible_pixels -> absent
    t, vis = _rule(m, 3)
    assert vis.tolist() == [10, 0, 0]
    assert t.sum() == 0


# ----------------------------------------------------------------------------- sources

def test_split_ids_disjoint_and_as_specified():
    train, val, test = (set(sources.split_ids(s)) for s in ("train", "val", "test"))
    assert train == set(range(800)) and val == set(range(800, 900)) and test == set(range(900, 1000))
    assert not (train & val or train & test or val & test)
    with pytest.raises(ValueError):
        sources.split_ids("validation")
    assert sources.stable_split("animals/birds/heron") == sources.stable_split("animals/birds/heron")


# ----------------------------------------------------------------------------- composites

def test_composite_instance_map_matches_pasted():
    rng = np.random.default_rng(0)
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    cutouts = []
    for col in colours:
        c = np.zeros((40, 30, 4), np.uint8)
        c[:, :, :3] = col
        c[:, :, 3] = 255
        cutouts.append(c)
    cfg = ComposeConfig(max_rotation=0, object_jitter=0, blur_prob=0, noise_max=0, global_jitter=0,
                        overlap_prob=1.0, min_scale=0.3, max_scale=0.5)
    bg = np.full((96, 128, 3), 40, np.uint8)
    img, inst, painted = compose_scene(bg, cutouts, rng, cfg)
    assert img.shape == (96, 128, 3) and inst.shape == (96, 128) and inst.dtype == np.int16
    assert (inst == 2).any()  # the last paste is never hidden ...
    assert painted[2] == (inst == 2).sum()  # ... so all it painted is still visible
    for i in range(3):  # earlier pastes keep at most what they painted
        assert 0 < painted[i] and (inst == i).sum() <= painted[i]
    for i, col in enumerate(colours):
        sel = inst == i
        if sel.any():
            # Interior pixels (away from resampled edges) have exactly the pasted colour.
            assert (np.abs(img[sel].astype(int) - col).max(axis=1) <= 2).mean() > 0.8
    assert (img[inst == -1] == 40).all()


# ----------------------------------------------------------------------------- rendering + sampler

def test_render_object_view_rgba():
    pytest.importorskip("pybullet")
    from training.data.render import render_object_views
    views = render_object_views(3, 2, 64, np.random.default_rng(0))
    assert views.shape == (2, 64, 64, 4) and views.dtype == np.uint8
    for v in views:
        ys, xs = np.nonzero(v[:, :, 3] >= 128)
        assert len(ys) > 50
        assert abs((ys.min() + ys.max()) / 2 - 32) <= 3 and abs((xs.min() + xs.max()) / 2 - 32) <= 3
        assert 0.55 * 64 <= max(np.ptp(ys), np.ptp(xs)) + 1 <= 0.85 * 64  # fills ~70% of the view


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    pytest.importorskip("pybullet")
    from training.data.render import render_object_views, render_tabletop_scene
    root = tmp_path_factory.mktemp("data")
    (root / "pybullet" / "views").mkdir(parents=True)
    (root / "pybullet" / "scenes").mkdir()
    rng = np.random.default_rng(0)
    ids = [0, 1, 2]
    for i in ids:
        np.savez(root / "pybullet" / "views" / f"{i:03d}.npz", rgba=render_object_views(i, 4, 48, rng))
    img, inst = render_tabletop_scene(ids, (64, 64), rng)
    np.savez(root / "pybullet" / "scenes" / "train_0000.npz", images=img[None], instances=inst[None])
    return root


def _tiny_cfg(root, **kw):
    base = dict(split="train", objects_per_episode=3, views_per_object=2, view_size=32,
                scenes_per_episode=3, scene_size=(64, 96), stride=16, tabletop_fraction=0.5,
                tuxpaint_fraction=0.0, data_dir=str(root))
    return EpisodeConfig(**{**base, **kw})


def test_sampler_shapes_and_dtypes(tiny_data):
    sampler = EpisodeSampler(_tiny_cfg(tiny_data))
    ep = sampler.sample(np.random.default_rng(1))
    assert ep["views_a"].shape == (3, 2, 32, 32, 3) and ep["views_a"].dtype == np.uint8
    assert ep["views_b"].shape == (3, 2, 32, 32, 3) and ep["views_b"].dtype == np.uint8
    assert ep["scenes"].shape == (3, 64, 96, 3) and ep["scenes"].dtype == np.uint8
    assert ep["targets"].shape == (3, 3, 4, 6) and ep["targets"].dtype == np.float32
    assert ep["present"].shape == (3, 3) and ep["present"].dtype == bool
    assert ep["visible_pixels"].shape == (3, 3) and ep["visible_pixels"].dtype == np.int32
    frac = ep["visible_fraction"]
    assert frac.shape == (3, 3) and frac.dtype == np.float32
    known = ~np.isnan(frac)
    assert ((frac[known] >= 0) & (frac[known] <= 1)).all()
    assert sorted(ep["object_ids"]) == [0, 1, 2]
    np.testing.assert_array_equal(ep["present"], ep["visible_pixels"] >= 20)
    assert (ep["targets"].sum(axis=(2, 3)) > 0).tolist() == ep["present"].tolist()
    assert set(np.unique(ep["targets"])) <= {0.0, 1.0}


def test_eval_set_is_deterministic(tiny_data):
    cfg = _tiny_cfg(tiny_data)
    a, b = make_eval_set("train", 4, cfg, seed=7), make_eval_set("train", 4, cfg, seed=7)
    assert len(a) == 2
    for ea, eb in zip(a, b):
        for k in ("views_a", "views_b", "scenes", "targets", "present", "visible_pixels",
                  "visible_fraction"):
            np.testing.assert_array_equal(ea[k], eb[k])
        assert ea["object_ids"] == eb["object_ids"]


def test_missing_data_names_the_render_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="training.data.render"):
        EpisodeSampler(EpisodeConfig(data_dir=str(tmp_path)))
