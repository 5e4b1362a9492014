"""A silo's side of a federation in plain hone (no Flower): what a round sends under each fine-tuning
strategy, and that a round trains only those weights."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hone.federated.local import SiloClient, trainable
from hone.federated.stats import agree_schema, merge
from hone.pipeline.runs import make_config


@pytest.fixture(scope="module")
def silo(tmp_path_factory: pytest.TempPathFactory, table: pa.Table) -> Path:
    path = tmp_path_factory.mktemp("silo") / "silo.parquet"
    pq.write_table(table.slice(0, 240), path)
    return path


@pytest.mark.parametrize("strategy", ["lora", "frozen"])
def test_a_round_sends_and_trains_only_the_strategys_weights(silo: Path, tiny_backbone: Path, tmp_path: Path,
                                                            strategy: str) -> None:
    cfg = make_config(str(silo), target="label", overrides={"backbone": str(tiny_backbone), "strategy": strategy,
                                                            "batch_size": 32, "show_progress": False,
                                                            "quality.audit": False})
    client = SiloClient(str(silo), cfg, tmp_path / "work", name="a")
    schema = agree_schema([client.describe()], ["a"])
    pre, pooled = merge(schema, [client.summary(json.dumps(schema.to_dict()))], cfg.model)
    client.setup(json.dumps(cfg.model_dump(mode="json", exclude_unset=True)), json.dumps(pre.to_dict()),
                 json.dumps(pooled))
    net = client.model.net
    sent = trainable(net)
    every = sum(p.numel() for p in net.parameters())
    assert 0 < sum(v.numel() for v in sent.values()) < every  # less than a full fine-tune (MiniLM: bench/federated.py)
    if strategy == "lora":
        assert any("lora_" in k for k in sent) and not any("lora_" not in k and k.startswith("text.") for k in sent)
    else:
        assert not any(k.startswith("text.") for k in sent)  # frozen: the backbone never travels
    before = {k: v.detach().clone() for k, v in net.state_dict().items()}
    weights, metrics = client.train({k: v.numpy().copy() for k, v in sent.items()}, server_round=1, rounds=2)
    after = net.state_dict()
    changed = {k for k in before if not np.allclose(before[k].numpy(), after[k].numpy())}
    assert changed and changed <= set(sent)  # only what is sent trains
    assert metrics["num-examples"] == client.prep.split.counts["train"] and metrics["steps"] > 0
    sums = client.evaluate({k: v.numpy() for k, v in weights.items()}, "validation")
    assert sum(sums["confusion"]) == client.prep.split.counts["validation"]
