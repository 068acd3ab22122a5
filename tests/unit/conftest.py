"""The unit tier imports neither ROS nor torch: a run of this tier alone (`make test-unit`,
`make test-fast`, `pytest tests/unit[/...]`) fails when one of them gets imported.

Forbidden: torch; rclpy and rosidl_* (the ROS client library, generated-code support); any ROS
interface module (`<package>.msg`, `.srv`, `.action`, e.g. sensor_msgs.msg, yolz_ros.srv). So
the tier runs where neither ROS nor torch is installed. Code of yolz_ros.ros that needs none of
them (e.g. the parameter table) may be imported; message conversions are tested in tests/ros,
training in tests/training.

How: while the tier runs alone, an import hook notes where each forbidden module was first
looked up (it never blocks an import); a test after which a forbidden module is loaded fails in
its teardown, and the session fails at its end when one is loaded at all (an import at
collection time, by a test module, is caught there). In a session that also collects other
tiers (`pytest tests`) the check is off (they import ROS and torch), which is why `make test`
runs this tier on its own first. tests/unit/test_tier_guard.py tests this file.
"""
import sys
import traceback
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
INTERFACE_KINDS = ("msg", "srv", "action")


def forbidden(name: str) -> bool:
    """Whether module `name` is ROS or torch (see the module docstring)."""
    parts = name.split(".")
    return (parts[0] in ("torch", "rclpy") or parts[0].startswith("rosidl_")
            or (len(parts) > 1 and parts[1] in INTERFACE_KINDS))


def loaded():
    return sorted(name for name in list(sys.modules) if forbidden(name))


class _Recorder:
    """A sys.meta_path finder that only notes who first looked up a forbidden module."""

    def __init__(self):
        self.first_lookup = {}

    def find_spec(self, name, path=None, target=None):
        if forbidden(name) and name not in self.first_lookup:
            stack = [f for f in traceback.extract_stack()[:-1]
                     if not any(s in f.filename for s in ("importlib", "_pytest", "pluggy",
                                                          "/pytest/", "<frozen"))]
            self.first_lookup[name] = "".join(traceback.format_list(stack[-4:]))
        return None  # let the normal finders import it

    def where(self, names):
        """Where each outermost module of `names` (whose parent is not among them) was first
        looked up."""
        tops = [n for n in names if n.rpartition(".")[0] not in names]
        return "".join(f"{n} imported from:\n{self.first_lookup.get(n, '  (before the tier ran)')}"
                       for n in tops)


_state = {"active": False, "recorder": None, "before": [], "problem": ""}


def _only_this_tier(config) -> bool:
    """True when every path the session was asked to run lies in this folder."""
    base = Path(config.invocation_params.dir)
    paths = [(base / str(a).split("::")[0]).resolve() for a in config.args]
    return bool(paths) and all(p == HERE or HERE in p.parents for p in paths)


def pytest_configure(config):
    if not _only_this_tier(config):
        return
    recorder = _Recorder()
    sys.meta_path.insert(0, recorder)
    _state.update(active=True, recorder=recorder, before=loaded())


def pytest_unconfigure(config):
    recorder = _state["recorder"]
    if recorder is not None and recorder in sys.meta_path:
        sys.meta_path.remove(recorder)


@pytest.fixture(autouse=True)
def _no_ros_no_torch():
    """Fails the test (in its teardown) that loaded a forbidden module."""
    if not _state["active"]:
        yield
        return
    before = set(loaded())
    yield
    new = sorted(set(loaded()) - before)
    if new:
        pytest.fail(f"the unit tier imports neither ROS nor torch; this test loaded {new}\n"
                    + _state["recorder"].where(new), pytrace=False)


def pytest_sessionfinish(session, exitstatus):
    if not _state["active"]:
        return
    names = loaded()
    if names:
        _state["problem"] = (
            "the unit tier imports neither ROS nor torch (tests/unit/conftest.py), but these "
            f"were loaded: {names}\n" + _state["recorder"].where(names)
            + "\nMove the test to tests/ros or tests/training, or import the runtime only.")
        if session.exitstatus == 0:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter):
    if _state["problem"]:
        terminalreporter.section("unit tier: ROS or torch imported", sep="=", red=True)
        terminalreporter.write_line(_state["problem"])
