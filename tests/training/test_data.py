"""Fast tests of the training data helpers (the cell rule, pasting, stable splits)."""
import numpy as np
import pytest

pytest.importorskip("cv2")
from training.data import sources  # noqa: E402
from training.data.compose import paste  # noqa: E402
from training.data.episodes import cell_targets  # noqa: E402


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

def test_stable_split_is_deterministic():
    assert sources.stable_split("animals/birds/heron") == sources.stable_split("animals/birds/heron")
    names = [f"stamps/{i}" for i in range(200)]
    assert {sources.stable_split(n) for n in names} == {"train", "val", "test"}
