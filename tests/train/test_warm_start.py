"""--init-from: a network starts from an earlier model where it means the same thing here: the same
table continues (encoders and head), a new target keeps the encoders and gets a new head."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch

import hone
from hone.testing import make_table

QUIET = {"show_progress": False, "audit": False, "evaluate.explain": False, "tracking.enabled": False}
STILL = {"epochs": 1, "lr": 1e-12, "train.head_lr": 1e-12}  # training that does not move the weights


@pytest.fixture(scope="module")
def first(tmp_path_factory: pytest.TempPathFactory, tiny_backbone: Path) -> tuple[Path, pa.Table]:
    root = tmp_path_factory.mktemp("warm")
    table = make_table(400, seed=3)
    hone.fit(table, target="label", output=root / "a", backbone=str(tiny_backbone), epochs=3, lr=1e-3, **QUIET)
    return root, table


def _tensors(model: hone.Model, prefix: str) -> dict[str, torch.Tensor]:
    return {k: v.float() for k, v in model.net.state_dict().items() if k.startswith(prefix)}


def test_the_same_table_continues_from_the_earlier_network(first: tuple[Path, pa.Table], tiny_backbone: Path) -> None:
    root, table = first
    b = hone.fit(table, target="label", output=root / "b", backbone=str(tiny_backbone),
                 init_from=str(root / "a" / "model"), **STILL, **QUIET)
    record = json.loads((root / "b" / "metrics.json").read_text())["training"]["init_from"]
    assert set(record["kept"]) >= {"text", "numeric", "categorical", "head"} and record["new"] == []
    a = hone.load(root / "a" / "model", precision="fp32")
    b = hone.load(root / "b" / "model", precision="fp32")
    batch = table.slice(0, 50)
    with torch.no_grad():
        np.testing.assert_allclose(b.net(b.pre.inputs(batch)).numpy(), a.net(a.pre.inputs(batch)).numpy(), atol=1e-4)


def test_a_new_target_keeps_the_encoders_and_trains_a_new_head(first: tuple[Path, pa.Table],
                                                               tiny_backbone: Path) -> None:
    root, table = first
    store = table.column("store").to_pylist()
    t2 = table.append_column("coast", pa.array(["yes" if s in ("east", "west") else "no" for s in store]))
    hone.fit(t2, target="coast", output=root / "c", backbone=str(tiny_backbone), ignore=["label"],
             init_from=str(root / "a" / "model"), **STILL, **QUIET)
    record = json.loads((root / "c" / "metrics.json").read_text())["training"]["init_from"]
    assert set(record["kept"]) >= {"text", "numeric", "categorical"} and record["new"] == ["head"]
    a, c = hone.load(root / "a" / "model", precision="fp32"), hone.load(root / "c" / "model", precision="fp32")
    for k, v in _tensors(a, "encoders.text.").items():  # the fine-tuned backbone, not the pretrained one
        torch.testing.assert_close(_tensors(c, "encoders.text.")[k], v, atol=1e-5, rtol=0)
    assert not torch.allclose(_tensors(c, "head.")["head.1.weight"], _tensors(a, "head.")["head.1.weight"])
