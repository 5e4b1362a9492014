"""The messages of a hone federation, on Flower's Message API.

Server to client: ``query`` (the run config: send your summary), ``train`` and ``evaluate`` (the
global trainable weights, the run config, the agreed preprocessing and the pooled counts). Client to
server, only ever: a summary of counts and sums (``MetricRecord``) with the names they are counts of
(``ConfigRecord``: columns, roles, labels, categories shared by enough rows); trainable weights
(``ArrayRecord``) with the rows they were trained on; evaluation sums (a confusion matrix, sums of
errors). The silo's name travels with every reply."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from hone.errors import FederationError
from hone.federated.metrics import silo_metrics
from hone.federated.stats import from_records

CONFIG = "config"  # the ConfigRecord key of server-to-client settings (Flower's strategies use it too)


def numpy_arrays(record: Any) -> dict[str, Any]:
    """A Flower ``ArrayRecord`` (weights) as ``{name: numpy array}``."""
    return {k: v.numpy() for k, v in record.to_torch_state_dict().items()}


def query_summaries(grid: Any, nodes: list[int], cfg_json: str, timeout: float, *, schema: str | None = None
                    ) -> tuple[list[dict[str, Any]], list[str]]:
    """Every client's summary and name, in name order: its schema, labels and rows; or, given the agreed
    ``schema``, the statistics of its training split for it (counts and sums)."""
    from flwr.app import ConfigRecord, Message, MessageType, RecordDict

    setting = {"hone-config": cfg_json, **({"hone-schema": schema} if schema is not None else {})}
    msgs = [Message(RecordDict({CONFIG: ConfigRecord(setting)}), dst_node_id=n,
                    message_type=MessageType.QUERY) for n in nodes]
    replies = list(grid.send_and_receive(msgs, timeout=timeout))
    failed = [m for m in replies if m.has_error()]
    if failed or len(replies) < len(msgs):
        why = (
            "; ".join(reason(m) for m in failed)
            or f"{len(msgs) - len(replies)} client(s) did not answer in {timeout:.0f} s"
        )
        raise FederationError(f"the silos' summaries could not be gathered: {why}")
    summaries, names = [], []
    for m in replies:
        c = m.content
        summaries.append(from_records(*[dict(r) for r in c.metric_records.values()],
                                      *[dict(r) for k, r in c.config_records.items() if k != "silo"]))
        names.append(silo_name(m))
    order = sorted(range(len(names)), key=lambda i: names[i])
    return [summaries[i] for i in order], [names[i] for i in order]


def silo_name(m: Any) -> str:
    rec = m.content.config_records.get("silo")
    return str(rec["name"]) if rec is not None and "name" in rec else f"node {m.metadata.src_node_id}"


def reason(m: Any) -> str:
    """What went wrong at a client, in one line."""
    text = str(getattr(m.error, "reason", "") or "no reason given")
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    hone_line = next((ln for ln in reversed(lines) if "Error:" in ln), lines[-1] if lines else text)
    return f"node {m.metadata.src_node_id}: {hone_line[:400]}"


def reply_bytes(m: Any) -> int:
    """The bytes of a reply's records (weights, metrics, names)."""
    c = m.content
    records = [*c.array_records.values(), *c.metric_records.values(), *c.config_records.values()]
    return int(sum(r.count_bytes() for r in records))


def evaluate(grid: Any, flower: Any, server_round: int, arrays: Any, setup: dict[str, Any], splits: tuple[str, ...],
             timeout: float) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """Per split, ``(silo, sums)`` of the global model on each client's own ``splits`` (the clients
    that answered)."""
    from flwr.app import ConfigRecord

    msgs = list(flower.configure_evaluate(server_round, arrays, ConfigRecord({**setup, "split": ",".join(splits)}),
                                          grid))
    out: dict[str, list[tuple[str, dict[str, Any]]]] = {s: [] for s in splits}
    for m in grid.send_and_receive(msgs, timeout=timeout):
        if m.has_error():
            continue
        for split in splits:
            metrics = m.content.metric_records[split]
            out[split].append((silo_name(m), {k: (list(v) if isinstance(v, list) else v) for k, v in metrics.items()}))
    return {s: sorted(v) for s, v in out.items()}


def per_silo(
    task: str, classes: list[Any], evaluation: list[tuple[str, dict[str, Any]]]
) -> Iterator[tuple[str, dict[str, float]]]:
    for name, m in evaluation:
        yield name, silo_metrics(task, classes, m)


def aggregate_train_metrics(records: list[Any], weighted_by_key: str) -> Any:
    """Train replies' metrics: rows and steps summed, the loss averaged over rows."""
    from flwr.app import MetricRecord

    metrics = [next(iter(r.metric_records.values())) for r in records]
    rows = sum(float(m.get("num-examples", 0)) for m in metrics)
    loss = sum(float(m.get("train-loss", 0.0)) * float(m.get("num-examples", 0)) for m in metrics) / max(rows, 1.0)
    return MetricRecord({"num-examples": int(rows), "train-loss": loss,
                         "steps": int(sum(int(m.get("steps", 0)) for m in metrics))})
