"""Search on demand (runtime/search.py, the ~/find action's logic) without ROS: the goal's checks,
the passes one by one (Detector.detect_steps), progress, cancel between passes, the time limit."""
import itertools
from types import SimpleNamespace

import numpy as np
import pytest
from tiny_model import make_tiny_model

from yolz_ros.runtime.detector import Detector
from yolz_ros.runtime.search import (DEFAULT_TIME_LIMIT_S, DEFAULT_ZOOM, MAX_TIME_LIMIT_S, Refused,
                                     check_goal, describe, search)

NAMES = ("cup", "mug", "box")


@pytest.fixture(scope="module")
def detector(tmp_path_factory):
    return Detector(make_tiny_model(tmp_path_factory.mktemp("search") / "tiny"),
                    backend="onnxruntime", device="cpu")


@pytest.fixture(scope="module")
def scene(detector):
    """A frame with one of three objects' views pasted in, and a library of the three."""
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    views = [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(3)]
    frame[200:264, 300:364] = views[1]
    embeddings = np.stack([detector.embed_views([v]).vector for v in views])
    return frame, SimpleNamespace(names=NAMES, embeddings=embeddings, negatives=None)


def test_goal_names_zoom_and_time_limit_are_checked():
    goal = check_goal([], 0, 0, NAMES)
    assert goal.names == NAMES and goal.indices == (0, 1, 2)
    assert (goal.zoom, goal.time_limit_s, goal.note) == (DEFAULT_ZOOM, DEFAULT_TIME_LIMIT_S, "")
    goal = check_goal(["box", "cup", "box"], 1.5, 2.5, NAMES)  # library order, once each
    assert (goal.names, goal.indices, goal.zoom, goal.time_limit_s) == \
        (("cup", "box"), (0, 2), 1.5, 2.5)
    goal = check_goal(["mug"], 3, 1000, NAMES)
    assert goal.time_limit_s == MAX_TIME_LIMIT_S and "capped" in goal.note
    with pytest.raises(Refused, match="no object named 'plate', 'fork'; registered: cup, mug, box"):
        check_goal(["mug", "plate", "fork"], 0, 0, NAMES)
    with pytest.raises(Refused, match="no objects are registered"):
        check_goal(["mug"], 0, 0, ())
    with pytest.raises(Refused, match="no objects are registered"):
        check_goal([], 0, 0, ())
    with pytest.raises(Refused, match="empty object name"):
        check_goal([" "], 0, 0, NAMES)
    for zoom in (0.5, 3.5, float("nan"), -1):
        with pytest.raises(Refused, match="zoom"):
            check_goal([], zoom, 0, NAMES)
    for limit in (-1, float("nan")):
        with pytest.raises(Refused, match="time_limit_s"):
            check_goal([], 0, limit, NAMES)


def test_every_pass_reports_progress_and_the_last_equals_detect(detector, scene):
    frame, snapshot = scene
    seen = []
    goal = check_goal([], 2.0, 60, NAMES)
    out = search(detector, frame, snapshot, goal, 0.0, on_progress=seen.append)
    assert (out.ended, out.reason, out.done, out.total) == ("complete", "", 10, 10)
    assert [p.done for p in seen] == list(range(1, 11)) and {p.total for p in seen} == {10}
    assert all(p.best is not None for p in seen)  # threshold 0: every map has a peak
    assert [p.best[1].score for p in seen] == sorted(p.best[1].score for p in seen)  # max fusion
    full = detector.detect(frame, snapshot.embeddings, zoom=2.0)
    np.testing.assert_array_equal(out.result.probabilities, full.probabilities)
    assert out.names == NAMES and len(out.peaks) == 3
    # the 1x pass alone: zoom 1
    out = search(detector, frame, snapshot, check_goal([], 1.0, 60, NAMES), 0.0)
    assert (out.done, out.total) == (1, 1)
    np.testing.assert_array_equal(out.result.probabilities,
                                  detector.detect(frame, snapshot.embeddings).probabilities)


def test_only_the_goals_objects_are_searched_and_the_best_is_the_strongest_peak(detector, scene):
    frame, snapshot = scene
    goal = check_goal(["mug"], 1.5, 60, NAMES)
    out = search(detector, frame, snapshot, goal, 0.0)
    assert out.names == ("mug",) and out.result.probabilities.shape[0] == 1
    assert (out.done, out.total) == (5, 5)
    name, pk = out.best  # (the tiny model's random weights do not localise: tests/ros does)
    assert name == "mug" and pk.score == max(p.score for p in out.peaks[0])
    assert np.isclose(pk.score, out.result.probabilities.max())
    text = describe(out, 0.0)
    assert text.startswith("found ") and "best 'mug'" in text and "5 of 5 passes" in text
    high = search(detector, frame, snapshot, goal, 1.0)  # nothing reaches 1
    assert high.best is None and describe(high, 1.0).startswith("nothing found above")


def test_cancel_between_passes_keeps_what_was_found(detector, scene):
    frame, snapshot = scene
    calls = []

    def stop():
        calls.append(1)
        return "canceled" if len(calls) == 3 else None
    out = search(detector, frame, snapshot, check_goal([], 2.0, 60, NAMES), 0.0, stop=stop)
    assert (out.ended, out.done, out.total, out.reason) == ("canceled", 3, 10, "canceled")
    info = detector.info
    assert out.best is not None and out.result.probabilities.shape == (3, info.rows, info.cols)
    assert "3 of 10 passes" in describe(out, 0.0) and "(canceled)" in describe(out, 0.0)
    out = search(detector, frame, snapshot, check_goal([], 2.0, 60, NAMES), 0.0,
                 stop=lambda: "the node was deactivated")
    assert (out.ended, out.done) == ("stopped", 1) and "deactivated" in out.reason


def test_time_limit_stops_after_the_pass_that_reaches_it(detector, scene):
    frame, snapshot = scene
    ticks = itertools.count()  # a clock one second per reading
    goal = check_goal([], 2.0, 3.0, NAMES)
    out = search(detector, frame, snapshot, goal, 0.0, clock=lambda: float(next(ticks)))
    assert out.ended == "time_limit" and 1 <= out.done < out.total == 10
    assert f"after {out.done} of 10 passes" in out.reason and "3 s" in out.reason
    # a limit below one pass still gives the 1x pass's result
    ticks = itertools.count(step=100)
    out = search(detector, frame, snapshot, check_goal([], 2.0, 0.001, NAMES), 0.0,
                 clock=lambda: float(next(ticks)))
    assert (out.ended, out.done) == ("time_limit", 1) and out.best is not None
