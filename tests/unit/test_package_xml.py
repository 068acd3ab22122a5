"""package.xml declares every ROS package the code imports (and the Python libraries by their
rosdep keys), so `rosdep install` gives a ROS user everything the node needs."""
import ast
import os
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Python libraries -> their rosdep keys
ROSDEP_KEYS = {"numpy": "python3-numpy", "cv2": "python3-opencv", "yaml": "python3-yaml"}
# Imported only where present, installed by other means (README / docs/runtime.md): ONNX Runtime
# has no rosdep key on every distribution; TensorRT and CUDA come with JetPack / NVIDIA's apt.
NOT_ROSDEP = {"onnxruntime", "tensorrt", "cuda"}
# ROS packages that are not in the pip environment's ament index (PyPI has no wheels of them)
ROS_NOT_ON_PYPI = {"launch", "launch_ros", "tf2_ros", "cv_bridge", "message_filters"}


def imported_top_level(folders=("yolz_ros", "launch")):
    names = {}
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    mods = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                    mods = [node.module]
                else:
                    continue
                for m in mods:
                    names.setdefault(m.split(".")[0], str(path.relative_to(ROOT)))
    return names


def ros_packages():
    """Package names in the ament index of every prefix on AMENT_PREFIX_PATH."""
    found = set(ROS_NOT_ON_PYPI)
    for prefix in filter(None, os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep)):
        index = Path(prefix) / "share" / "ament_index" / "resource_index" / "packages"
        if index.is_dir():
            found |= {p.name for p in index.iterdir()}
    return found


def declared(kinds=("depend", "exec_depend", "build_export_depend")):
    tree = ET.parse(ROOT / "package.xml")
    return {e.text.strip() for k in kinds for e in tree.getroot().iter(k)}


def missing_declarations():
    ros, have = ros_packages(), declared()
    missing = []
    for name, where in sorted(imported_top_level().items()):
        if name in sys.stdlib_module_names or name in NOT_ROSDEP or name == "yolz_ros":
            continue
        key = ROSDEP_KEYS.get(name, name)
        if name not in ROSDEP_KEYS and name not in ros:
            missing.append(f"{name} (imported by {where}) is neither a known ROS package nor "
                           "mapped to a rosdep key in this test")
        elif key not in have:
            missing.append(f"{key} (imported by {where}) is not declared in package.xml")
    return missing


def test_every_imported_ros_package_is_declared():
    assert os.environ.get("AMENT_PREFIX_PATH"), "run with the ROS environment (scripts/env.sh)"
    assert missing_declarations() == []


def test_the_check_sees_an_undeclared_import(monkeypatch):
    """Break package.xml (drop rclpy): the check names it."""
    real = declared
    monkeypatch.setattr(sys.modules[__name__], "declared", lambda: real() - {"rclpy"})
    assert any(m.startswith("rclpy ") for m in missing_declarations())
