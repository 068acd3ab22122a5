"""`make colcon-test` inside `make test`: the package builds with colcon from PyPI in the pip
environment, `colcon test` runs the tests CMakeLists.txt registers and `colcon test-result`
passes (scripts/colcon_test.sh). Here only the unit tier runs under colcon (TIERS, default
"unit"; YOLZ_COLCON_TIERS="unit ros" for both): `make test` runs the ros tier itself already.
The first build takes a few minutes on 2 cores, later ones are incremental."""
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_colcon_build_test_and_test_result():
    suffix = "" if os.environ.get("ROS_DISTRO", "kilted") == "kilted" else \
        "-" + os.environ["ROS_DISTRO"]
    build, install = ROOT / f"build-colcon{suffix}", ROOT / f"install-colcon{suffix}"
    venv = Path(os.environ.get("VIRTUAL_ENV", ROOT / ".venv"))
    untouched = [p for p in (ROOT / f"build{suffix}" / "CMakeCache.txt",
                             venv / "share" / "yolz_ros" / "package.xml") if p.exists()]
    before = {p: p.stat().st_mtime_ns for p in untouched}
    tiers = os.environ.get("YOLZ_COLCON_TIERS", "unit")
    out = subprocess.run(["bash", str(ROOT / "scripts" / "colcon_test.sh")], cwd=ROOT,
                         env=dict(os.environ, TIERS=tiers), capture_output=True, text=True,
                         timeout=1800)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-6000:]
    assert "Summary:" in text and ", 0 errors, 0 failures," in text, text[-3000:]
    for tier in tiers.split():
        assert f"{tier}_tests.xunit.xml" in text, text[-3000:]
    # both tiers are registered with ctest, whatever ran
    listed = subprocess.run(["ctest", "-N"], cwd=build / "yolz_ros", capture_output=True,
                            text=True, check=True).stdout
    assert "unit_tests" in listed and "ros_tests" in listed, listed
    # the package is installed into colcon's prefix, generated interfaces included ...
    assert (install / "yolz_ros" / "share" / "yolz_ros" / "package.xml").is_file()
    assert list(install.glob("yolz_ros/lib/python3*/site-packages/yolz_ros/srv/__init__.py"))
    # ... and the bootstrap's build folder and venv install are left alone
    assert {p: p.stat().st_mtime_ns for p in untouched} == before
