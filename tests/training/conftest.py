"""The training tier (torch). Warning filters that name torch's own classes live here, not in
pytest.ini: resolving `torch.jit.TracerWarning` there would import torch in every tier."""
from pathlib import Path

import pytest

HERE = Path(__file__).parent


def pytest_collection_modifyitems(config, items):
    for item in items:
        if HERE in Path(item.path).parents:
            item.add_marker(pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning"))
