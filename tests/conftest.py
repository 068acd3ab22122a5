"""Test isolation for real DDS traffic: localhost only, and a domain id of this run's own."""
import os

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
# Several test runs on one machine must not hear each other: domain from the pid (0..100 is safe
# for Fast DDS port arithmetic on loopback).
os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 100))


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def toy_data_dir(tmp_path_factory):
    """A few rendered objects of the train and test splits (PyBullet), for pipeline-level tests.

    Episodes on it need `tabletop_fraction=0` and `tuxpaint_fraction=0` (composites only).
    """
    pytest.importorskip("pybullet")
    from training.data import render

    root = tmp_path_factory.mktemp("toy_data")
    out = str(root / "pybullet")
    for split, ids in (("train", ["0", "1", "2", "3"]), ("test", ["900", "901", "902", "903"])):
        render.main(["--split", split, "--ids", *ids, "--views-per-object", "8",
                     "--view-size", "64", "--scenes", "0", "--out", out, "--workers", "1"])
    return root


TOY_EPISODE = ["objects_per_episode=3", "scenes_per_episode=2", "tabletop_fraction=0",
               "tuxpaint_fraction=0"]


@pytest.fixture()
def photo_free(monkeypatch):
    """Photo pool from scikit-image's bundled photos only: no package downloads in the test."""
    from training.data import photos

    monkeypatch.setattr(photos, "photo_files", lambda data_dir="data": {})
    photos.photo_pool.cache_clear()
    yield
    photos.photo_pool.cache_clear()


@pytest.fixture(scope="module")
def ros():
    """The test's own rclpy context, client node and executor (tests/node_harness.py)."""
    from node_harness import Ros
    r = Ros()
    yield r
    r.close()


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A model folder with random weights in the shipped format (tests/tiny_model.py)."""
    from tiny_model import make_tiny_model
    directory = tmp_path_factory.mktemp("tiny_model")
    make_tiny_model(directory)
    return directory
