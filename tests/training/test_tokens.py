"""yolz v2 pieces without a trained model: object tokens, token masks, the match model's shapes,
and the real-object benchmark's labels."""
import numpy as np
import pytest

from yolz_ros.runtime.object_tokens import farthest_point_indices, object_tokens, token_mask


def _unit(rng, m, d):
    x = rng.standard_normal((m, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_object_tokens_keep_the_mean_and_the_most_different_tokens():
    rng = np.random.default_rng(0)
    # three tight clusters of tokens: a farthest-point sample of 3 takes one of each
    centres = _unit(rng, 3, 16)
    tokens = np.concatenate([c + 0.01 * rng.standard_normal((20, 16)) for c in centres])
    tokens = (tokens / np.linalg.norm(tokens, axis=1, keepdims=True)).astype(np.float32)
    slots, idx = object_tokens(tokens, 4)
    assert slots.shape == (4, 16)
    mean = tokens.mean(0) / np.linalg.norm(tokens.mean(0))
    np.testing.assert_allclose(slots[0], mean, atol=1e-6)
    assert sorted(i // 20 for i in idx) == [0, 1, 2]  # one token from every cluster
    np.testing.assert_allclose(np.linalg.norm(slots, axis=1), 1.0, atol=1e-5)


def test_few_tokens_repeat_and_cancelling_views_are_refused():
    rng = np.random.default_rng(1)
    tokens = _unit(rng, 2, 8)
    idx = farthest_point_indices(tokens, 5, start=1)
    assert len(idx) == 5 and set(idx) == {0, 1}
    with pytest.raises(ValueError, match="cancel out"):
        object_tokens(np.stack([tokens[0], -tokens[0]]), 3)
    with pytest.raises(ValueError):
        object_tokens(np.zeros((0, 8), np.float32), 3)


def test_token_mask_follows_alpha_and_letterbox():
    alpha = np.zeros((64, 64), np.uint8)
    alpha[:32, :32] = 255  # top-left quarter visible
    mask = token_mask(alpha, (64, 64), 64, 16, 0.5)
    assert mask.shape == (4, 4)
    assert mask[:2, :2].all() and mask.sum() == 4
    # no alpha: every token that is not letterbox padding (a 2:1 view letterboxed into a square)
    mask = token_mask(None, (32, 64), 64, 16, 0.5)
    assert mask.sum() == 8 and mask[1:3].all()
    # no alpha, centre prior: only the central 60% (here the middle 2 x 2 of 4 x 4 tokens)
    mask = token_mask(None, (64, 64), 64, 16, 0.5, no_alpha_centre=0.6)
    assert mask.sum() == 4 and mask[1:3, 1:3].all()
    # a tiny object still gets its best token
    alpha = np.zeros((64, 64), np.uint8)
    alpha[40:43, 40:43] = 255
    assert token_mask(alpha, (64, 64), 64, 16, 0.5).sum() == 1


def test_match_model_shapes_and_objects_are_scored_independently():
    torch = pytest.importorskip("torch")
    from training.model.match import DetectorGraph, EmbedderGraph, MatchConfig, MatchModel

    cfg = MatchConfig(pretrained=False, object_tokens=5, token_dim=8)
    model = MatchModel(cfg).eval()
    with torch.no_grad():
        for s in cfg.view_sizes:
            tok = EmbedderGraph(model)(torch.rand(3, 3, s, s) * 255)
            assert tok.shape == (3, 8, s // 16, s // 16)
            torch.testing.assert_close(tok.norm(dim=1), torch.ones(3, s // 16, s // 16))
        image = torch.rand(1, 3, 96, 128) * 255
        objects = torch.nn.functional.normalize(torch.randn(4, 5, 8), dim=-1).reshape(4, -1)
        det = DetectorGraph(model)
        probs = det(image, objects)
        assert probs.shape == (4, 6, 8) and ((probs >= 0) & (probs <= 1)).all()
        one = det(image, objects[2:3])  # K = 1: the same grid for that object
        torch.testing.assert_close(one[0], probs[2])


def test_fine_grid_head_shapes_with_dynamic_k():
    """The stride-8 cell grid (FineGridHead): [B, K, 2r, 2c] for any K, each object scored on
    its own, its stride-8 input used, presence on the stride-16 grid as MatchHead's."""
    torch = pytest.importorskip("torch")
    from training.model.match import FineGridHead, MatchConfig

    torch.manual_seed(0)
    head = FineGridHead(MatchConfig(pretrained=False, object_tokens=5, token_dim=8)).eval()
    feats, feats8 = torch.randn(2, 112, 6, 8), torch.randn(2, 40, 12, 16)
    with torch.no_grad():
        for k in (1, 3, 7):
            objects = torch.nn.functional.normalize(torch.randn(2, k, 5, 8), dim=-1)
            a, b = head(feats, objects, feats8)
            assert a.shape == (2, k, 12, 16) and b.shape == (2, k)
        one_a, one_b = head(feats, objects[:, 4:5], feats8)
        torch.testing.assert_close(one_a[:, 0], a[:, 4])
        torch.testing.assert_close(one_b[:, 0], b[:, 4])
        changed, _ = head(feats, objects, feats8 + torch.randn_like(feats8))
        assert not torch.allclose(changed, a)  # the stride-8 stage reaches the cells


def test_small_instance_episodes(tmp_path, photo_free):
    """--small-prob: the same objects and views as the default episode of that seed, its
    pasted objects 20-60 px tall; the episode's instance map gives the cell rule at any stride."""
    pytest.importorskip("pybullet")
    from training.data import realbench
    from training.data.episodes import cell_targets

    cfg = realbench.RealConfig(split="train", data_dir=str(tmp_path), families_per_episode=1,
                               stamps_per_episode=0, scenes_per_episode=3)
    src = realbench.ObjectSource("train", str(tmp_path), with_stamps=False)
    plain = realbench.make_episode(src, cfg, np.random.default_rng(5))
    cfg.small_prob = 1.0
    small = realbench.make_episode(src, cfg, np.random.default_rng(5))
    assert np.array_equal(plain["views_alpha"], small["views_alpha"])
    def heights(ep):
        return (ep["boxes"][..., 3] - ep["boxes"][..., 1])[ep["present"]]

    assert small["present"].any()
    assert (heights(small) <= 61).all()  # occlusion only shrinks a visible box
    assert (heights(plain) > 61).any()
    for s, inst in enumerate(small["instances"]):
        t16, visible = cell_targets(inst, small["present"].shape[1], 16, cfg.cell_positive_coverage,
                                    cfg.min_visible_pixels)
        assert np.array_equal(t16, small["targets"][s])
        assert np.array_equal(visible, small["visible_pixels"][s])


def test_real_benchmark_labels(tmp_path, photo_free):
    pytest.importorskip("pybullet")
    from training.data import products, realbench

    cfg = realbench.RealConfig(split="train", data_dir=str(tmp_path), families_per_episode=1,
                               stamps_per_episode=0, scenes_per_episode=3)
    src = realbench.ObjectSource("train", str(tmp_path), with_stamps=False)
    ep = realbench.make_episode(src, cfg, np.random.default_rng(3))
    c = products.FAMILY_SIZE
    assert ep["views_alpha"].shape == (c, 8, 128, 128, 4)
    assert ep["views_photo"].shape == (c, 8, 128, 128, 3)
    assert ep["scenes"].shape == (3, 480, 640, 3) and ep["targets"].shape == (3, c, 30, 40)
    # the cell rule: present <=> >= 20 visible pixels; a present object has a positive cell;
    # an absent one has none
    assert (ep["present"] == (ep["visible_pixels"] >= 20)).all()
    pos = ep["targets"].reshape(3, c, -1).max(-1)
    assert (pos[ep["present"]] == 1).all() and (pos[~ep["present"]] == 0).all()
    assert ep["present"].any(axis=1).all()  # every scene shows one of its episode objects
    # alpha views are cut-outs; photo views put a background where alpha is transparent
    a = ep["views_alpha"][0, 0]
    assert (a[..., 3] == 0).any() and (a[..., 3] == 255).any()
    opaque = a[..., 3] == 255
    np.testing.assert_allclose(ep["views_photo"][0, 0][opaque], a[..., :3][opaque], atol=1)
    # one family: siblings share shape and size (the hard negatives)
    specs = [products.product_spec("train", int(n.split(":")[-1])) for n in ep["object_names"]]
    assert len({s.kind for s in specs}) == 1 and len({s.family for s in specs}) == 1
    # deterministic from the seed
    again = realbench.make_episode(src, cfg, np.random.default_rng(3))
    assert np.array_equal(again["scenes"], ep["scenes"])
    assert np.array_equal(again["targets"], ep["targets"])


def test_product_instances_are_new_viewpoints(tmp_path, photo_free):
    pytest.importorskip("pybullet")
    from training.data import products

    spec = products.product_spec("val", 5)
    assert spec == products.product_spec("val", 5)
    r = products.product_cache(spec, 6, 4, 64, 96, data_dir=str(tmp_path))
    assert r["views"].shape == (6, 64, 64, 4) and r["instances"].shape == (4, 96, 96, 4)
    cos = r["instance_dirs"] @ r["view_dirs"].T
    assert (cos < np.cos(np.radians(15)) + 1e-6).all()  # >= 15 degrees from every view
    assert (r["views"][..., 3] > 0).mean() > 0.05  # the object is there
    textured = r["views"][r["views"][..., 3] == 255][:, :3].std(axis=0).mean()
    assert textured > 10  # a label, not a flat colour


def test_photo_splits_are_disjoint(tmp_path, photo_free):
    from training.data import photos

    pools = {s: photos.photo_pool(s, str(tmp_path)) for s in ("train", "val", "test")}
    assert all(len(p) for p in pools.values())
    keys = {s: {p.tobytes()[:4096] for p in pool} for s, pool in pools.items()}
    assert not (keys["train"] & keys["val"]) and not (keys["train"] & keys["test"])
