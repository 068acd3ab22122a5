"""The trainer's plain-value configs, learning-rate schedule and optional TensorBoard writer.
Needs only the standard library (and PyYAML for .yaml configs), so the trainer also runs where
little is installed (a lent GPU machine: torch, numpy, onnx, OpenCV)."""
from __future__ import annotations

import json
import math
from pathlib import Path


def load_config(path, defaults: dict) -> dict:
    """The trainer's defaults overridden by a YAML or JSON file (unknown keys refused)."""
    cfg = json.loads(json.dumps(defaults))
    text = Path(path).read_text()
    if str(path).endswith(".json"):
        user = json.loads(text)
    else:
        import yaml
        user = yaml.safe_load(text) or {}
    unknown = set(user) - set(cfg)
    if unknown:
        raise SystemExit(f"{path}: unknown config keys {sorted(unknown)}")
    cfg.update(user)
    return cfg


def lr_at(step: int, cfg: dict) -> float:
    """Multiplier of cfg['lr']: linear warm-up, then cosine down to 5%."""
    if step < cfg["warmup_steps"]:
        return (step + 1) / cfg["warmup_steps"]
    progress = (step - cfg["warmup_steps"]) / max(1, cfg["steps"] - cfg["warmup_steps"])
    return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


class _NoWriter:
    def add_scalar(self, *args, **kwargs):
        pass

    def close(self):
        pass


def summary_writer(folder):
    """TensorBoard's SummaryWriter into ``folder``, or a writer that drops everything where
    TensorBoard is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        print("tensorboard is not installed: no TensorBoard logs (checkpoints and stdout only)")
        return _NoWriter()
    return SummaryWriter(str(folder))
