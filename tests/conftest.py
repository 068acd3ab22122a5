"""Test isolation for real DDS traffic: localhost only, and a domain id of this run's own."""
import os

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
# Several test runs on one machine must not hear each other: domain from the pid (0..100 is safe
# for Fast DDS port arithmetic on loopback).
os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 100))


import pytest  # noqa: E402
from photo_free import skimage_photos_only  # noqa: E402


@pytest.fixture(scope="session")
def toy_bench(tmp_path_factory):
    """The real-object benchmark at toy scale, built once: its data folder, holding
    realbench/val (2 episodes of one product family, 2 scenes each). Photos from scikit-image
    only, so nothing is downloaded."""
    pytest.importorskip("pybullet")
    from training.data import realbench

    with skimage_photos_only():
        data = tmp_path_factory.mktemp("toy_bench") / "data"
        cfg = realbench.RealConfig(split="val", data_dir=str(data), families_per_episode=1,
                                   stamps_per_episode=0, scenes_per_episode=2)
        realbench.build("val", 2, cfg)
    return data


@pytest.fixture()
def photo_free():
    with skimage_photos_only():
        yield


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


# launch_testing's tests (a module with generate_test_description marked launch_test) are
# collected here, with launch_testing's own classes: its pytest plugin is off (pytest.ini), its
# hook being written for an older pytest. Without launch_testing such a module is collected as a
# plain one, and skips (or, under CI, fails) itself (tests/ros/ros2_tools.py).
def pytest_addoption(parser):
    parser.addoption("--launch-args", action="append", nargs="*", default=[],
                     help="launch arguments for the launch tests (launch_testing's option)")


def pytest_configure(config):
    config.addinivalue_line("markers", "launch_test: a launch_testing entry point "
                            "(generate_test_description)")


def pytest_pycollect_makemodule(module_path, parent):
    if not module_path.name.startswith("test_") or \
            "def generate_test_description" not in module_path.read_text(errors="replace"):
        return None
    try:
        from launch_testing.pytest.hooks import LaunchTestModule
    except ImportError:
        return None
    return LaunchTestModule.from_parent(parent=parent, path=module_path)
