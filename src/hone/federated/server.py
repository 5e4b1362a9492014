"""The server's side of a federation, on Flower's ``Grid``: agree the preprocessing from the silos'
summaries, run the rounds with one of Flower's strategies (FedAvg, FedProx, optionally wrapped in its
differential-privacy clipping and noise), checkpoint every round, and leave a hone model.

Rounds are driven here rather than by ``Strategy.start`` so that a killed server resumes from its last
round's checkpoint and a round that too few clients answered keeps the previous model."""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hone._logging import get_logger
from hone.config import RunConfig
from hone.errors import FederationError
from hone.federated import protocol
from hone.federated.local import load_trainable, pooled_resolve, trainable
from hone.federated.metrics import pooled_metrics

logger = get_logger("hone.federate")


@dataclass
class Outcome:
    """What the rounds produced: the trained model (unsaved) and the run's federated record."""

    model: Any
    rcfg: Any
    history: list[dict[str, Any]]
    record: dict[str, Any]


def run_rounds(grid: Any, cfg: RunConfig, checkpoints: Path) -> Outcome:
    """Every round of the federation on ``grid``; resumes from ``checkpoints`` when it holds a round."""
    from flwr.app import ArrayRecord, ConfigRecord

    from hone.pipeline.network import build_network
    from hone.train.placement import Placement

    fed = cfg.federated
    cfg_json = json.dumps(cfg.model_dump(mode="json", exclude_unset=True), sort_keys=True)
    nodes = _wait_for_nodes(grid, fed.min_clients, fed.round_timeout)
    saved = latest_round(checkpoints)
    if saved is not None:
        state = json.loads((saved / "state.json").read_text())
        if state["config"] != cfg_json:
            raise FederationError(f"{checkpoints} holds the rounds of a run with another config; start a new run "
                                  "(another --output) or pass the same config")
        pre_json, pooled, history = state["pre"], state["pooled"], state["history"]
        start = int(state["round"])
        logger.info("resuming after round %d of %d from %s", start, fed.rounds, saved)
    else:
        from hone.federated.stats import agree_schema, merge

        # two queries: first the silos' schemas and label counts, then their statistics for the agreed schema
        described, names = protocol.query_summaries(grid, nodes, cfg_json, fed.round_timeout)
        schema = agree_schema(described, names)
        summaries, names = protocol.query_summaries(grid, nodes, cfg_json, fed.round_timeout,
                                                    schema=json.dumps(schema.to_dict()))
        pre, pooled = merge(schema, summaries, cfg.model)
        pooled["silos"] = [{"name": n, "rows": s["rows"]} for n, s in zip(names, summaries)]
        pre_json, history, start, state = json.dumps(pre.to_dict()), [], 0, {}
        logger.info("agreed from %d silos' counts and sums: %s task, %d feature column(s), %s training rows%s",
                    len(summaries), pooled["task"], len(pre.schema.columns), f"{pooled['train_rows']:,}",
                    f", classes {pre.schema.classes}" if pre.schema.classes else "")
    pooled_json = json.dumps(pooled, sort_keys=True)
    rcfg = pooled_resolve(cfg, pooled["task"], pooled["has_text"], pooled["has_image"], pooled["class_counts"],
                          pooled["train_rows"])
    from hone.features.pipeline import Preprocessor

    folders = {"text": rcfg.model.backbone, "image": rcfg.model.image_backbone}
    d = json.loads(pre_json)
    pre = Preprocessor.from_dict(d, {m: Path(folders[m]) for m in d["modalities"] if m in folders})
    model, strategy, fine_tuning, _ = build_network(rcfg, pre, Placement.local("fp32"), feeder=False)
    net = model.net
    if saved is not None:
        from safetensors.numpy import load_file

        load_trainable(net, load_file(str(saved / "arrays.safetensors")))
    arrays = ArrayRecord(trainable(net))
    n_params = sum(int(np.prod(a.shape)) for a in trainable(net).values())
    logger.info("federated %s over %d clients, %d round(s) of %g local epoch(s): %s; %s trainable parameters sent "
                "each way per client and round", fed.aggregation, len(nodes), fed.rounds, fed.local_epochs, fine_tuning,
                f"{n_params:,}")
    flower, accountant = _strategy(cfg, len(nodes))
    if accountant is not None and state.get("accountant"):
        accountant.load_state_dict(state["accountant"])
    setup = {"hone-config": cfg_json, "hone-pre": pre_json, "hone-pooled": pooled_json, "rounds": fed.rounds}
    bytes_up: list[int] = []
    test: list[Any] = []
    for r in range(start + 1, fed.rounds + 1):
        t0 = time.perf_counter()
        msgs = list(flower.configure_train(r, arrays, ConfigRecord(dict(setup)), grid))
        replies = list(grid.send_and_receive(msgs, timeout=fed.round_timeout))
        ok = [m for m in replies if not m.has_error()]
        for m in replies:
            if m.has_error():
                logger.warning("round %d: a client failed or dropped out: %s", r, protocol.reason(m))
        need = math.ceil(fed.min_fraction * len(msgs))
        new, train_metrics = (None, None)
        if len(ok) >= need:
            new, train_metrics = flower.aggregate_train(r, replies)
        if new is None:
            logger.warning("round %d: %d of %d client(s) replied, below federated.min_fraction %.2f: the round is "
                           "skipped and the model kept", r, len(ok), len(msgs), fed.min_fraction)
        else:
            arrays = new
        sent = [protocol.reply_bytes(m) for m in ok]
        bytes_up += sent
        # the last round's evaluation scores the test splits too (one message fewer per client)
        splits = ("validation", "test") if r == fed.rounds else ("validation",)
        scored = protocol.evaluate(grid, flower, r, arrays, setup, splits, fed.round_timeout)
        evaluation = scored["validation"]
        test = scored.get("test", test)
        pooled_val = pooled_metrics(pooled["task"], pre.schema.classes, evaluation)
        entry = {"round": r, "epoch": r, "step": r, **pooled_val,  # epoch/step/metric: the report's curves
                 "clients": len(msgs), "replied": len(ok), "aggregated": new is not None,
                 "train_loss": float(train_metrics["train-loss"]) if train_metrics else None,
                 "bytes_up_per_client": int(np.mean(sent)) if sent else 0,
                 "seconds": round(time.perf_counter() - t0, 2), "validation": pooled_val,
                 "silos": {name: m for name, m in protocol.per_silo(pooled["task"], pre.schema.classes, evaluation)}}
        if accountant is not None:
            spent = accountant.get_privacy_spent()
            entry["epsilon"], entry["delta"] = float(spent.epsilon), float(spent.delta)
        history.append(entry)
        logger.info("%s", _round_line(entry, fed.rounds, rcfg.train.metric))
        load_trainable(net, protocol.numpy_arrays(arrays))  # the network holds the global model from here on
        _save_round(checkpoints, r, net, {"config": cfg_json, "pre": pre_json, "pooled": pooled, "history": history,
                                          "round": r,
                                          "accountant": accountant.state_dict() if accountant is not None else None})
    if start >= fed.rounds:  # resumed after the last round: its test evaluation did not happen
        test = protocol.evaluate(grid, flower, fed.rounds, arrays, setup, ("test",), fed.round_timeout)["test"]
    record = {"aggregation": fed.aggregation, "rounds": fed.rounds, "local_epochs": fed.local_epochs,
              "clients": len(nodes), "silos": pooled.get("silos", []), "rows": pooled["rows"],
              "trainable_parameters": n_params, "fine_tuning": fine_tuning,
              "bytes_up_per_client_round": int(np.mean(bytes_up)) if bytes_up else 0,
              "bytes_down_per_client_round": int(arrays.count_bytes()),
              "validation": history[-1]["validation"] if history else {},
              "test": pooled_metrics(pooled["task"], pre.schema.classes, test),
              "test_per_silo": dict(protocol.per_silo(pooled["task"], pre.schema.classes, test)),
              "min_fraction": fed.min_fraction, "resumed_after_round": start or None}
    if accountant is not None:
        spent = accountant.get_privacy_spent()
        record["privacy"] = {"epsilon": float(spent.epsilon), "delta": float(spent.delta),
                             "noise_multiplier": fed.dp_noise, "clipping_norm": fed.dp_clip,
                             "releases": int(spent.num_releases), "accounting": str(spent.accounting_method),
                             "level": "client (one silo's whole data), server-side fixed clipping"}
        logger.info("differential privacy: epsilon %.3g at delta %g after %d round(s) (noise multiplier %g, clip %g)",
                    spent.epsilon, spent.delta, spent.num_releases, fed.dp_noise, fed.dp_clip)
    strategy.finalize(net)  # merge LoRA adapters, unfreeze: the saved network is a plain one
    return Outcome(model, rcfg, history, record)


def _strategy(cfg: RunConfig, clients: int) -> tuple[Any, Any]:
    from flwr.serverapp.strategy import FedAvg, FedProx

    fed = cfg.federated
    dp = fed.dp_noise is not None
    common = dict(fraction_train=1.0, fraction_evaluate=1.0, min_train_nodes=fed.min_clients,
                  min_evaluate_nodes=fed.min_clients, min_available_nodes=fed.min_clients,
                  # DP's accountant needs equal client weights; otherwise a silo counts by its rows
                  weighted_by_key="weight" if dp else "num-examples",
                  train_metrics_aggr_fn=protocol.aggregate_train_metrics)  # evaluation is pooled by hone
    flower = FedProx(proximal_mu=fed.proximal_mu, **common) if fed.aggregation == "fedprox" else FedAvg(**common)
    if not dp:
        return flower, None
    from flwr.serverapp.strategy import DifferentialPrivacyServerSideFixedClipping
    from flwr.supercore.privacy_accounting import NeighboringRelation, PrivacyConfig, SamplingMethod
    from flwr.supercore.privacy_accounting.rdp_accountant import RdpAccountant

    accountant = RdpAccountant(PrivacyConfig(target_delta=fed.dp_delta, population_size=clients,
                                             neighboring_relation=NeighboringRelation.ADD_OR_REMOVE_ONE,
                                             sampling_method=SamplingMethod.NO_AMPLIFICATION))
    wrapped = DifferentialPrivacyServerSideFixedClipping(flower, fed.dp_noise, fed.dp_clip, clients,
                                                         accountant=accountant)
    return wrapped, accountant


def _wait_for_nodes(grid: Any, n: int, timeout: float) -> list[int]:
    t0 = time.monotonic()
    said = False
    while True:
        nodes = sorted(grid.get_node_ids())
        if len(nodes) >= n:
            return nodes
        if time.monotonic() - t0 > timeout:
            raise FederationError(f"{len(nodes)} client(s) connected in {timeout:.0f} s; federated.min_clients is {n}")
        if not said:
            logger.info("waiting for %d client(s) (%d connected)", n, len(nodes))
            said = True
        time.sleep(0.5)


def latest_round(checkpoints: Path) -> Path | None:
    """The newest complete round checkpoint in ``checkpoints``, or None."""
    done = sorted(p for p in checkpoints.glob("round-*") if (p / "state.json").is_file())
    return done[-1] if done else None


def _save_round(checkpoints: Path, r: int, net: Any, state: dict[str, Any]) -> None:
    """``round-NNNN/`` written beside and renamed into place: a kill leaves the previous round whole."""
    from safetensors.numpy import save_file

    checkpoints.mkdir(parents=True, exist_ok=True)
    tmp = checkpoints / f".round-{r:04d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_file({k: np.ascontiguousarray(v.cpu().numpy()) for k, v in trainable(net).items()},
              str(tmp / "arrays.safetensors"))
    (tmp / "state.json").write_text(json.dumps(state, default=str))
    final = checkpoints / f"round-{r:04d}"
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    for old in sorted(checkpoints.glob("round-*"))[:-2]:  # keep the last two
        shutil.rmtree(old, ignore_errors=True)


def _round_line(e: dict[str, Any], rounds: int, metric: str) -> str:
    val = e["validation"]
    shown = metric if metric in val else next(iter(val), None)
    parts = [f"round {e['round']}/{rounds}: {e['replied']}/{e['clients']} clients"]
    if e["train_loss"] is not None:
        parts.append(f"train loss {e['train_loss']:.4f}")
    if shown:
        parts.append(f"validation {shown} {val[shown]:.4f}")
        per = ", ".join(f"{n} {m.get(shown, float('nan')):.3f}" for n, m in e["silos"].items())
        if per:
            parts.append(f"per silo: {per}")
    parts.append(f"{e['bytes_up_per_client'] / 1e6:.2f} MB up per client")
    if "epsilon" in e:
        parts.append(f"epsilon {e['epsilon']:.3g}")
    parts.append(f"{e['seconds']:.1f} s")
    return "; ".join(parts)
