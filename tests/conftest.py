from __future__ import annotations

import os
import random

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
# MLflow tracking is on by default when MLflow is installed; the tests that check it turn it on
# (tracking.enabled: true) against a store of their own, the others leave no ./mlruns behind.
os.environ.setdefault("HONE_TRACKING", "off")
# Every fit explains its model on validation by default (evaluate.explain: auto); the tests of that
# (tests/explain/) ask for it, the other fits skip the extra seconds.
os.environ.setdefault("HONE_EXPLAIN", "off")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from hone.testing import make_table, make_tiny_backbone, make_tiny_vision_backbone

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _seeded() -> None:
    import torch

    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 32-wide BERT with a 40-word vocabulary, as a local Hugging Face folder."""
    return make_tiny_backbone(tmp_path_factory.mktemp("tiny_bert"))


@pytest.fixture(scope="session")
def tiny_cnn(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 0.25-wide MobileNetV2 for 32-pixel images, randomly initialised, as a local Hugging Face folder."""
    return make_tiny_vision_backbone(tmp_path_factory.mktemp("tiny_cnn"))


@pytest.fixture(scope="session")
def tiny_vit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 32-wide ViT for 32-pixel images (8-pixel patches), randomly initialised."""
    return make_tiny_vision_backbone(tmp_path_factory.mktemp("tiny_vit"), kind="vit")


@pytest.fixture(scope="session")
def table() -> pa.Table:
    return make_table(400, seed=1)


@pytest.fixture(scope="session")
def tab_table() -> pa.Table:
    return make_table(600, seed=2, with_text=False)


@pytest.fixture
def fast(tiny_backbone: Path) -> dict:
    """Overrides for a quick fit with the tiny backbone."""
    return {"backbone": str(tiny_backbone), "epochs": 2, "batch_size": 32, "show_progress": False,
            "train.head_lr": 5e-3, "lr": 1e-3}


@pytest.fixture
def fine_foods() -> Path:
    return ROOT / "examples" / "fine_foods.csv"
