"""tests/unit/conftest.py: a run of the unit tier fails when ROS or torch gets imported (by a
test, or by a test module at collection), and says who imported it; a mixed session is not
checked. Runs pytest in a subprocess on a copy of the conftest, with stand-in `torch` and
`sensor_msgs` packages (nothing real is imported)."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent


def run_pytest(tmp_path, *paths):
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "fake"))  # the stand-ins come first
    # its own rootdir has no pytest.ini: the launch_testing plugins are turned off as there
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-p", "no:launch_testing", "-p", "no:launch_ros",
                           "--rootdir", str(tmp_path), *paths], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_the_unit_tier_fails_on_ros_or_torch(tmp_path):
    write(tmp_path / "fake" / "torch" / "__init__.py", "")
    write(tmp_path / "fake" / "sensor_msgs" / "__init__.py", "")
    write(tmp_path / "fake" / "sensor_msgs" / "msg" / "__init__.py", "")
    unit = tmp_path / "unit"
    shutil.copy(HERE / "conftest.py", unit.mkdir() or unit / "conftest.py")
    write(unit / "test_clean.py", "import json\n\ndef test_clean():\n    assert json\n")
    write(unit / "test_uses_torch.py", "def test_torch():\n    import torch  # noqa\n")
    write(unit / "test_msgs_at_import.py",
          "import sensor_msgs.msg  # noqa\n\ndef test_nothing():\n    pass\n")

    clean = run_pytest(tmp_path, "unit/test_clean.py")
    assert clean.returncode == 0, clean.stdout + clean.stderr

    out = run_pytest(tmp_path, "unit")
    text = out.stdout + out.stderr
    assert out.returncode == 1, text
    assert "test_uses_torch.py::test_torch" in text and "this test loaded ['torch']" in text
    assert "test_uses_torch.py\", line 2, in test_torch" in text  # where it was imported
    assert "ROS or torch imported" in text and "loaded: ['sensor_msgs.msg', 'torch']" in text
    assert "sensor_msgs.msg imported from:" in text and "test_msgs_at_import.py\", line 1" in text
    assert "3 passed, 1 error" in text  # only the importing test fails (in its teardown)

    # a session with other tiers in it is not checked (they import ROS and torch)
    write(tmp_path / "other" / "test_other.py", "def test_other():\n    import torch  # noqa\n")
    mixed = run_pytest(tmp_path, "unit/test_clean.py", "unit/test_uses_torch.py", "other")
    assert mixed.returncode == 0, mixed.stdout + mixed.stderr
