"""Presence verification by layout (training/evaluation/presence_layout.py): the score and the
token positions it reads."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from training.evaluation import presence_layout  # noqa: E402
from training.train import pooled  # noqa: E402


def test_layout_score_rewards_a_kept_arrangement():
    rng = np.random.default_rng(0)
    view = rng.random((40, 2))
    sims = np.ones(40)
    turned = view @ np.array([[0.0, -3.0], [3.0, 0.0]]) + [10, 4]  # lying, 3x, moved
    assert presence_layout.layout_score(view, turned, sims) == pytest.approx(1.0)
    scattered = rng.integers(0, 7, (40, 2)).astype(float)
    assert presence_layout.layout_score(view, scattered, sims) < 0.4
    # every token on one cell (a small object) carries no layout; too few tokens neither
    assert presence_layout.layout_score(view, np.full((40, 2), 3.0), sims) == 0.0
    assert presence_layout.layout_score(view[:5], turned[:5], sims[:5]) == 0.0
    # only the better-matched half is fitted: badly matched scattered tokens do not count
    mixed = np.where(np.arange(40)[:, None] < 20, turned, scattered)
    assert presence_layout.layout_score(view, mixed, np.r_[np.ones(20), np.zeros(20)]) == \
        pytest.approx(1.0)


def test_view_positions_follow_the_pooled_token_order():
    """Each pooled token's position is that of the patch it came from (sizes, views, patches)."""
    rng = np.random.default_rng(1)
    sizes, c, n = (64, 96), 2, 3
    ep, tokens = {}, {}
    for s in sizes:
        g = s // 16
        mask = rng.random((c, n, 2, g, g)) < 0.6
        ep[f"mask_{s}"] = mask
        centres = (np.arange(g) + 0.5) / g
        xy = np.stack(np.meshgrid(centres, centres), axis=-1).reshape(-1, 2)  # the truth
        t = np.broadcast_to(xy, (c, n, 2, g * g, 2)).copy()
        tokens[s] = (torch.from_numpy(t), torch.from_numpy(mask.reshape(c, n, 2, -1)))
    views = np.array([0, 2])
    got = presence_layout.view_positions(ep, 1, views, 0, sizes)
    np.testing.assert_allclose(got, pooled(tokens, 1, views, 0).numpy())
