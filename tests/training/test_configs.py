"""Every shipped training config loads as the trainer loads it: known keys only, model and box
settings that their dataclasses accept, and a _12k row that differs from its base row only in
the episodes it trains on (the data lever alone)."""
from pathlib import Path

import pytest
import yaml

from training import train
from training.config import load_config
from training.model.boxes import BoxConfig
from training.model.match import MatchConfig

FOLDER = Path(train.__file__).parent / "configs"
CONFIGS = sorted(FOLDER.rglob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_config_loads_as_the_trainer_loads_it(path):
    cfg = load_config(path, train.DEFAULTS)
    MatchConfig(**cfg["model"])
    BoxConfig(**cfg["boxes"])
    assert cfg["steps"] > cfg["warmup_steps"] >= 0


@pytest.mark.parametrize("base", ["frozen", "blocks8_10"])
def test_12k_row_changes_only_the_episodes(base):
    a = yaml.safe_load((FOLDER / "v4" / f"{base}.yaml").read_text())
    b = yaml.safe_load((FOLDER / "v4" / f"{base}_12k.yaml").read_text())
    assert (a.pop("max_train_episodes"), b.pop("max_train_episodes")) == (5474, 12000)
    assert a == b


def test_unknown_key_is_refused(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps: 10\nlearning_rate: 0.1\n")
    with pytest.raises(SystemExit, match="learning_rate"):
        load_config(bad, train.DEFAULTS)
