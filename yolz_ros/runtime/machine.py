"""What machine a measurement was taken on (benchmark, soak and model reports name it)."""
from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_description() -> str:
    """'<cpu>, <n> cores, <platform>' for reports."""
    return f"{cpu_model()}, {os.cpu_count()} cores, {platform.platform()}"
