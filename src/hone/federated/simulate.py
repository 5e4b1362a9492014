"""``hone federate DATA --target Y --silos N``: one table dealt into N silos and a federation run over
them on Flower's simulation engine (Ray), each simulated client reading only its own silo's file."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from hone._io import atomic_path, write_json
from hone._logging import get_logger
from hone.errors import ConfigError, MissingDependencyError

logger = get_logger("hone.federate")


def import_flower() -> None:
    """Flower with its simulation engine, or one clear line on how to install it."""
    os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
    os.environ.setdefault("FLWR_DISABLE_UPDATE_CHECK", "1")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")  # Ray's FutureWarning on CPU-only actors
    try:
        import flwr  # noqa: F401
        import flwr.simulation  # noqa: F401
    except ImportError as err:
        raise MissingDependencyError("hone federate needs Flower: pip install -c constraints.txt 'hone[federated]' "
                                     f"({err})") from err


def federate(source: Any = None, *, target: str | None = None, config: Any = None, output: str | Path | None = None,
             overwrite: bool = False, silos: int | None = 3, by: str | None = None, skew: float | None = None,
             resume: str | Path | None = None, log_messages: str | Path | None = None,
             client_mods: list[Any] | None = None, command: list[str] | None = None, **overrides: Any) -> Any:
    """Train one model across silos made from ``source`` on Flower's simulation engine; returns the
    :class:`hone.Model` saved in the run directory (``model.run_dir``), as :func:`hone.fit` does.

    Args:
        source, target, config, output, overwrite, **overrides: as for :func:`hone.fit` (the
            ``federated.*`` settings: rounds, strategy, local_epochs, dp_noise...).
        silos: how many silos (with ``by``: at most the column's distinct values; default: one per value).
        by: deal rows by the values of this column (non-IID: one silo per region...).
        skew: deal each class's rows by Dirichlet(``skew``) shares (label skew; smaller is more skewed).
        resume: the run directory of a killed federation: it continues after its last round.
        log_messages: a folder where every message a client sends is written as it leaves.
        client_mods: Flower client mods every silo's client runs around each message (checks of your own;
            a test's dropout: ``node_config["partition-id"]`` is the silo's number).
        command: the command line ``environment.json`` records (the CLI's; default ``sys.argv``).
    """
    from hone.pipeline.runs import make_config, resume_record
    from hone.pipeline.runs import run_dir as new_run_dir

    import_flower()
    started = time.time()
    if resume is not None:
        if target is not None or config is not None or overrides or output is not None:
            raise ConfigError("--resume continues a federation with the settings it started with; pass no others")
        run_dir = Path(resume)
        rec = resume_record(run_dir)
        cfg = make_config(config=rec["config"])
        src, silos, by, skew = source or rec["source"], rec["silos"], rec["by"], rec["skew"]
        if src is None:
            raise ConfigError(f"the federation in {str(run_dir)!r} read a DataFrame: pass the same data again")
    else:
        cfg = make_config(source, target=target, config=config, overrides=overrides)
        src = source if source is not None else cfg.data.source
        if by is None and silos is None:
            silos = 3
        run_dir = new_run_dir(cfg, src, output, overwrite)
    checkpoints = run_dir / "checkpoints"
    if resume is None:  # a new run (or --overwrite): earlier rounds are not this run's
        shutil.rmtree(checkpoints, ignore_errors=True)
    checkpoints.mkdir(parents=True, exist_ok=True)
    if resume is None:
        write_json(checkpoints / "run.json", {"config": cfg.model_dump(mode="json", exclude_unset=True),
                                             "source": str(src) if isinstance(src, (str, os.PathLike)) else None,
                                             "silos": silos, "by": by, "skew": skew, "command": sys.argv,
                                             "started": started})
    try:
        with atomic_path(run_dir) as stage:
            stage.mkdir(parents=True)
            try:
                model, files = _simulate(
                    cfg, src, stage, checkpoints, silos, by, skew, log_messages, client_mods, started
                )
            finally:
                shutil.rmtree(stage / ".work", ignore_errors=True)
            from hone.federated.package import write_run

            write_run(stage, files, run_dir.name, started, command)
    except BaseException:
        from hone.federated.server import latest_round

        if latest_round(checkpoints) is not None:
            logger.error("the federation stopped; continue it after its last round with: hone federate --resume %s",
                         run_dir)
        else:
            shutil.rmtree(checkpoints, ignore_errors=True)
            if run_dir.is_dir() and not any(run_dir.iterdir()):
                run_dir.rmdir()
        raise
    model.run_dir = run_dir
    logger.info("saved run to %s (model in %s)", run_dir, run_dir / "model")
    return model


def _simulate(cfg: Any, src: Any, stage: Path, checkpoints: Path, n: int | None, by: str | None, skew: float | None,
              log_messages: Any, mods: list[Any] | None, started: float) -> tuple[Any, dict[str, Any]]:
    from flwr.simulation import run_simulation

    from hone._ray import local_cores
    from hone.federated.apps import client_app, server_app
    from hone.federated.package import finish
    from hone.federated.silos import make_silos

    work = stage / ".work"
    dealt = make_silos(src, str(cfg.data.target), n, work / "silos", by=by, skew=skew, seed=cfg.data.split.seed,
                       memory_limit=cfg.data.memory_limit)
    k = len(dealt.paths)
    fed = cfg.federated
    if "min_clients" not in fed.model_fields_set:  # a simulation waits for every silo
        cfg = cfg.model_copy(update={"federated": fed.model_copy(update={"min_clients": k})})
    if fed.min_clients > k:
        raise ConfigError(f"federated.min_clients is {fed.min_clients} but there are {k} silos")
    cores = local_cores()
    threads = cfg.train.num_threads if cfg.train.num_threads != "auto" else cores
    # clients run one at a time with every core unless threads are capped: on few cores that is fastest
    per_client = max(1, min(cores, int(threads)))
    cfg_json = json.dumps(cfg.model_dump(mode="json", exclude_unset=True), sort_keys=True)
    done: dict[str, Any] = {}
    backend = {"client_resources": {"num_cpus": per_client, "num_gpus": 0.0},
               "init_args": {"num_cpus": cores, "include_dashboard": False, "logging_level": "ERROR",
                             "log_to_driver": True}}
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    _quiet_flower()
    logger.info("simulating %d clients on Flower's simulation engine (%d core(s) each)", k, per_client)
    run_simulation(server_app(cfg_json, str(checkpoints), done),
                   client_app([str(p) for p in dealt.paths], str(work), mods=mods,
                              log_messages=str(log_messages) if log_messages else None),
                   num_supernodes=k, backend_config=backend)
    if "error" in done:
        raise done["error"]
    if "outcome" not in done:
        raise RuntimeError("the simulation ended without a result (see Flower's log above)")
    outcome = done["outcome"]
    outcome.record["silos_made"] = {"how": dealt.how, "rows": dealt.rows, "groups": dealt.groups}
    pooled = _pooled_splits(work, k)
    files = finish(outcome, stage, pooled_paths=pooled, started=started)
    return outcome.model, files


def _quiet_flower() -> None:
    """Flower logs every message at INFO; hone prints one line per round. Its warnings and errors stay,
    except the notice that ``run_simulation`` is deprecated (hone uses it on purpose: ``flwr run`` would
    need a SuperLink for a simulation on one machine)."""
    import logging

    flwr = logging.getLogger("flwr")
    if logging.getLogger("hone").getEffectiveLevel() > logging.DEBUG:
        flwr.setLevel(logging.WARNING)
    if not any(getattr(f, "_hone", False) for f in flwr.filters):
        class _Deprecation(logging.Filter):
            _hone = True

            def filter(self, record: logging.LogRecord) -> bool:
                return "run_simulation" not in record.getMessage()

        flwr.addFilter(_Deprecation())


def _pooled_splits(work: Path, k: int) -> dict[str, Path]:
    """The union of the simulated clients' own split files (one machine holds them all in a simulation)."""
    from hone.data.sources import connect
    from hone.data.sql import parquet, ql

    out: dict[str, Path] = {}
    con = connect(work)
    try:
        for split in ("train", "validation", "test"):
            files = [work / f"client-{i}" / "splits" / f"{split}.parquet" for i in range(k)]
            files = [f for f in files if f.is_file()]
            if not files:
                continue
            path = work / f"pooled-{split}.parquet"
            union = " UNION ALL BY NAME ".join(f"SELECT * FROM {parquet(f)}" for f in files)
            con.execute(f"COPY ({union}) TO {ql(path)} (FORMAT parquet)")
            if con.sql(f"SELECT count(*) FROM {parquet(path)}").fetchall()[0][0]:
                out[split] = path
    finally:
        con.close()
    return out
