"""The layout is the architecture: imports point down the layers only, and no module imports
another module's private helpers.

    yolz_ros.runtime   numpy, OpenCV, ONNX Runtime (TensorRT where present); no rclpy, no torch
    yolz_ros.ros       the ROS 2 layer on the runtime (rclpy, messages)
    yolz_ros.cli       command-line tools on both
    training           torch; meets the runtime at the model folder and reuses its preprocessing
    tools              developer tools (demo, soak, probe, benchmark); may use everything

Read from the source with ast, so a lazy import inside a function counts as much as one at the
top of the file.
"""
import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# layer -> what it may import of ours (the generated yolz_ros.msg / .srv / .action are the ROS
# layer's interfaces)
IFACES = ("yolz_ros.msg", "yolz_ros.srv", "yolz_ros.action")
ALLOWED = {
    "yolz_ros.runtime": ("yolz_ros.runtime",),
    "yolz_ros.ros": ("yolz_ros.runtime", "yolz_ros.ros", *IFACES),
    "yolz_ros.cli": ("yolz_ros.runtime", "yolz_ros.ros", "yolz_ros.cli", *IFACES),
    "training": ("yolz_ros.runtime", "training"),
    "tools": ("yolz_ros.runtime", "yolz_ros.ros", *IFACES, "training", "tools"),
}
# A CLI module is an entry point, not a library: what another module needs from one belongs in
# runtime or ros, so only the CLI layer itself imports yolz_ros.cli (tools run CLIs with -m).
# third-party packages a layer must not touch
FORBIDDEN = {
    "yolz_ros.runtime": ("rclpy", "rcl_interfaces", "sensor_msgs", "std_msgs", "vision_msgs",
                         "action_msgs", "torch", "launch", "launch_ros"),
    "yolz_ros.ros": ("torch",),
    "yolz_ros.cli": ("torch",),
    "training": ("rclpy",),
}
OURS = ("yolz_ros", "training", "tools")


def layer_of(module: str) -> str:
    for layer in sorted(ALLOWED, key=len, reverse=True):
        if module == layer or module.startswith(layer + "."):
            return layer
    return ""


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path, root: Path = ROOT):
    """(imported module, [names]) for every import statement in the file, relative ones resolved."""
    tree = ast.parse(path.read_text(), str(path))
    package = module_name(path, root) if path.name == "__init__.py" else \
        module_name(path, root).rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            yield base, [a.name for a in node.names]


def sources(root: Path = ROOT):
    for folder in ("yolz_ros", "training", "tools"):
        yield from sorted((root / folder).rglob("*.py"))


def offences(root: Path = ROOT):
    found = []
    for path in sources(root):
        layer = layer_of(module_name(path, root))
        if not layer:
            continue  # yolz_ros/__init__.py: the import root, no code
        for target, names in imports(path, root):
            top = target.split(".")[0]
            where = f"{path.relative_to(root)} imports {target}"
            if top in OURS:
                full = [target] + [f"{target}.{n}" for n in names]
                if not any(f == a or f.startswith(a + ".") for f in full
                           for a in ALLOWED[layer]):
                    found.append(f"{where}: {layer} may import only {ALLOWED[layer]}")
                private = [n for n in names if n.startswith("_") and n != "__version__"]
                if private:
                    found.append(f"{where}: private helper(s) {private} of another module")
            elif top in FORBIDDEN.get(layer, ()):
                found.append(f"{where}: {layer} must not depend on {top}")
    return found


def test_imports_point_down_the_layers():
    assert offences() == []


def test_the_check_catches_an_upward_and_a_private_import(tmp_path):
    """The checker itself, on a tree in tmp_path: a runtime module that imports the ROS layer,
    rclpy and a private helper is reported three times; a tool and a ROS module importing a CLI
    module once each; a CLI importing another CLI not at all."""
    (tmp_path / "yolz_ros" / "runtime").mkdir(parents=True)
    (tmp_path / "yolz_ros" / "ros").mkdir()
    (tmp_path / "yolz_ros" / "cli").mkdir()
    (tmp_path / "tools").mkdir()
    (tmp_path / "yolz_ros" / "runtime" / "probe.py").write_text(
        "import rclpy\nfrom yolz_ros.ros.node import main\n"
        "from yolz_ros.runtime.image import _jpeg_size\n")
    (tmp_path / "tools" / "probe.py").write_text("from yolz_ros.cli.camera_player import x\n")
    (tmp_path / "yolz_ros" / "ros" / "probe.py").write_text("from yolz_ros.cli import common\n")
    (tmp_path / "yolz_ros" / "cli" / "probe.py").write_text("from yolz_ros.cli import common\n")
    found = offences(tmp_path)
    assert len([o for o in found if o.startswith("yolz_ros/runtime/probe.py")]) == 3, found
    assert len([o for o in found if o.startswith("tools/probe.py")]) == 1, found
    assert len([o for o in found if o.startswith("yolz_ros/ros/probe.py")]) == 1, found
    assert not [o for o in found if o.startswith("yolz_ros/cli/")], found


def test_runtime_loads_without_rclpy_and_torch():
    """Importing every runtime module pulls in neither rclpy nor torch (at run time too, not
    only in the source)."""
    mods = [module_name(p) for p in sorted((ROOT / "yolz_ros" / "runtime").rglob("*.py"))]
    code = ("import sys\n" + "".join(f"import {m}\n" for m in mods) +
            "print(sorted(m for m in ('rclpy', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"
