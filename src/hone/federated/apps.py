"""hone's Flower apps: the ClientApp each silo runs and the ServerApp that drives the rounds.

The same apps run under Flower's simulation engine (``hone federate DATA ...``: the settings come in
through the factories) and its deployment engine (``hone federate server|client``: the client's data
comes from its SuperNode's ``--node-config``, the server's settings from the run config)."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from hone._logging import get_logger
from hone.config import build_config
from hone.federated.protocol import CONFIG, numpy_arrays

logger = get_logger("hone.federate")

_CLIENTS: dict[tuple[str, str, str], Any] = {}  # one SiloClient per (data, work, config) in this process
_LOCK = threading.Lock()


def client_app(silos: list[str] | None = None, work: str | None = None, *, log_messages: str | None = None,
               mods: list[Any] | None = None) -> Any:
    """The ClientApp. ``silos``/``work`` (simulation): the partition's silo file and work folder;
    without them the SuperNode's node config gives ``data``, ``target``, ``name`` and ``work``.
    ``log_messages``: a folder each reply is written to, as it leaves the client (its records and
    their contents). ``mods``: Flower client mods run around every message, outermost first (a
    deployment's own checks, or a test's dropout)."""
    from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
    from flwr.clientapp import ClientApp

    app = ClientApp(mods=[*(mods or []), *([_message_log(log_messages)] if log_messages else [])])

    def silo(msg: Any, context: Any) -> Any:
        return _silo_client(msg, context, silos, work)

    def reply(msg: Any, client: Any, **records: Any) -> Any:
        return Message(RecordDict({**records, "silo": ConfigRecord({"name": client.name})}), reply_to=msg)

    @app.query()
    def query(msg: Any, context: Any) -> Any:
        from hone.federated.stats import to_records

        client = silo(msg, context)
        agreed = msg.content[CONFIG].get("hone-schema")
        numbers, names = to_records(client.describe() if agreed is None else client.summary(str(agreed)))
        return reply(msg, client, counts=MetricRecord(numbers), names=ConfigRecord(names))

    @app.train()
    def train(msg: Any, context: Any) -> Any:
        client = silo(msg, context)
        cfg = msg.content[CONFIG]
        r = int(cfg["server-round"])
        client.setup(cfg["hone-config"], cfg["hone-pre"], cfg["hone-pooled"])
        arrays = numpy_arrays(msg.content["arrays"])
        weights, metrics = client.train(arrays, server_round=r, rounds=int(cfg["rounds"]),
                                        proximal_mu=float(cfg.get("proximal-mu", 0.0)))
        return reply(msg, client, arrays=ArrayRecord(weights), metrics=MetricRecord({**metrics, "weight": 1.0}))

    @app.evaluate()
    def evaluate(msg: Any, context: Any) -> Any:
        client = silo(msg, context)
        cfg = msg.content[CONFIG]
        client.setup(cfg["hone-config"], cfg["hone-pre"], cfg["hone-pooled"])
        arrays = numpy_arrays(msg.content["arrays"])
        records = {split: MetricRecord({**client.evaluate(arrays, split), "weight": 1.0})
                   for split in str(cfg["split"]).split(",")}
        return reply(msg, client, **records)

    return app


def _silo_client(msg: Any, context: Any, silos: list[str] | None, work: str | None) -> Any:
    """This process's client for the message's silo (built on its first message, then reused)."""
    from hone.federated.local import SiloClient

    cfg_json = msg.content[CONFIG]["hone-config"]
    node = context.node_config
    if silos is not None:
        part = int(node["partition-id"])
        source, name, folder = silos[part], f"silo-{part}", str(Path(str(work)) / f"client-{part}")
    else:
        if "data" not in node:
            raise ValueError("this SuperNode has no data: start it with hone federate client DATA --target Y")
        source = str(node["data"])
        name = str(node.get("name") or Path(source).stem)
        folder = str(node.get("work") or Path.home() / ".cache" / "hone" / "federate" / name)
    key = (source, folder, cfg_json)
    with _LOCK:
        client = _CLIENTS.get(key)
        if client is None:
            cfg = build_config(json.loads(cfg_json))
            if silos is None and str(node.get("target", cfg.data.target)) != str(cfg.data.target):
                raise ValueError(f"the server trains on target {cfg.data.target!r}; this client was started with "
                                 f"--target {node.get('target')!r}")
            client = _CLIENTS[key] = SiloClient(source, cfg, Path(folder), name=name)
    return client


def _message_log(folder: str) -> Any:
    """A Flower mod that writes every reply leaving this client to ``folder`` as JSON: each record's
    type, keys and values (weights as name, shape and dtype, and their bytes beside as .npz)."""
    import numpy as np

    def mod(msg: Any, context: Any, call_next: Any) -> Any:
        out = call_next(msg, context)
        if out.has_error():
            return out
        root = Path(folder)
        root.mkdir(parents=True, exist_ok=True)
        c = out.content
        entry: dict[str, Any] = {"type": msg.metadata.message_type, "arrays": {}, "metrics": {}, "configs": {}}
        weights = {key: numpy_arrays(rec) for key, rec in c.array_records.items()}
        for key, arrays in weights.items():
            entry["arrays"][key] = {k: {"shape": list(v.shape), "dtype": str(v.dtype)} for k, v in arrays.items()}
        for key, rec in c.metric_records.items():
            entry["metrics"][key] = {k: (list(v) if isinstance(v, list) else v) for k, v in rec.items()}
        for key, rec in c.config_records.items():
            entry["configs"][key] = {k: (list(v) if isinstance(v, list) else v)
                                     if not isinstance(v, bytes) else f"<{len(v)} bytes>" for k, v in rec.items()}
        stem = root / f"{c.config_records['silo']['name']}-{msg.metadata.message_type}-{msg.metadata.message_id[:12]}"
        stem.with_suffix(".json").write_text(json.dumps(entry))
        for key, arrays in weights.items():
            np.savez(stem.with_suffix(f".{key}.npz"), **arrays)
        return out

    return mod


def server_app(cfg_json: str, checkpoints: str, done: dict[str, Any]) -> Any:
    """The ServerApp: runs :func:`hone.federated.server.run_rounds` and hands the outcome to ``done``
    (its ``outcome`` key; ``error`` when it failed)."""
    from flwr.serverapp import ServerApp

    app = ServerApp()

    @app.main()
    def main(grid: Any, context: Any) -> None:
        from hone.federated.server import run_rounds

        try:
            done["outcome"] = run_rounds(grid, build_config(json.loads(cfg_json)), Path(checkpoints))
        except BaseException as err:  # noqa: BLE001 -- handed to the caller, which raises it in its own thread
            done["error"] = err

    return app
