"""Run a trainer as on a lent GPU machine (torch, numpy, onnx, onnxruntime and OpenCV only)."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MISSING_THERE = ("yaml", "tensorboard", "torch.utils.tensorboard", "pybullet", "rclpy")


def run_as_on_a_gpu_machine(module: str, args: list) -> subprocess.CompletedProcess:
    """``python -m module args`` in a fresh interpreter where what that machine lacks cannot
    be imported."""
    code = ("import sys, runpy\n"
            f"for m in {MISSING_THERE!r}: sys.modules[m] = None\n"
            f"sys.argv = [{module!r}] + {[str(a) for a in args]!r}\n"
            f"runpy.run_module({module!r}, run_name='__main__')\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)
