from __future__ import annotations

from pathlib import Path

import pytest

import hone
from hone.testing import make_table


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory, tiny_backbone: Path) -> Path:
    """A small text + tabular model the service tests serve (fitted once for all of them)."""
    out = tmp_path_factory.mktemp("serve") / "run"
    hone.fit(make_table(300, seed=5), target="label", output=out, backbone=str(tiny_backbone), epochs=1,
             show_progress=False, max_length=16, ignore=["id"])
    return out / "model"
