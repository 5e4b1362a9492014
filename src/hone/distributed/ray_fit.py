"""``hone fit --engine ray``: Ray Train's ``TorchTrainer`` runs hone's own fit on N workers.

Each worker calls :func:`hone.api.fit` with the same config: Ray Train has set ``RANK`` and
``WORLD_SIZE`` and joined the process group, so the runtime wraps the network in DDP, each worker
streams its own shard of the training split, and the main worker (rank 0) writes the run folder,
checkpoints and all, exactly as a local fit does. Without ``engine.address`` a local Ray instance is
started (and stopped again); with one, hone joins that cluster, whose workers must reach the data
and the run folder at the same paths (shared storage).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from hone._logging import get_logger
from hone.config import RunConfig, build_config
from hone.errors import ConfigError, MissingDependencyError

logger = get_logger("hone.ray")


def quiet_ray_train() -> None:
    """In every Ray worker process: Ray Train's placement-group monitor warns every few seconds that
    the State API (served by the dashboard, which hone does not start) is unavailable; harmless."""
    import logging

    logging.getLogger("ray.train.v2._internal.execution.controller.placement_group_cleaner").setLevel(logging.ERROR)


def _train_worker(config: dict[str, Any]) -> None:
    """One Ray Train worker: the ordinary fit, data-parallel through the environment Ray set up."""
    from hone import api

    os.chdir(config["cwd"])  # relative paths mean what they meant where the command ran
    api.fit(config["source"], config=config["config"], output=config["output"], overwrite=config["overwrite"])


def fit_on_ray(cfg: RunConfig, source: Any, run_dir: Path, overwrite: bool) -> Path:
    """Run the fit on Ray Train workers; returns the run folder the main worker wrote."""
    try:
        import ray
        from ray.train import RunConfig as RayRunConfig
        from ray.train import ScalingConfig
        from ray.train.torch import TorchTrainer
    except ImportError as err:
        raise MissingDependencyError("--engine ray needs Ray: pip install 'hone[ray]'") from err
    if not isinstance(source, (str, os.PathLike)):
        raise ConfigError("--engine ray reads the data in each worker: give a file, directory, glob or sql: "
                          "source, not a DataFrame")
    from hone._fit import check_settings

    check_settings(cfg, source)  # bad data or settings: one line here, before Ray starts
    e = cfg.engine
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    started = not ray.is_initialized()
    if started:
        ray.init(address=e.address, include_dashboard=False, logging_level="WARNING",
                 runtime_env={"worker_process_setup_hook": "hone.distributed.ray_fit.quiet_ray_train"},
                 **({} if e.address else {"num_cpus": max(os.cpu_count() or 1, int(e.workers * e.cpus_per_worker))}))
    storage = Path(tempfile.mkdtemp(prefix="hone-ray-"))
    local = build_config(cfg, {"engine.kind": "local"}).model_dump(mode="json", exclude_unset=True)
    if cfg.train.num_threads == "auto":  # a worker's threads are the CPUs it reserved
        local.setdefault("train", {})["num_threads"] = max(1, int(e.cpus_per_worker))
    resources = {"CPU": e.cpus_per_worker, **({"GPU": e.gpus_per_worker} if e.gpus_per_worker else {})}
    logger.info("fitting on Ray: %d worker(s), %s each%s", e.workers, resources,
                f", cluster {e.address}" if e.address else ", local Ray instance")
    try:
        trainer = TorchTrainer(
            _train_worker,
            train_loop_config={"config": local, "source": str(source), "output": str(Path(run_dir).absolute()),
                               "overwrite": overwrite, "cwd": os.getcwd()},
            scaling_config=ScalingConfig(num_workers=e.workers, use_gpu=e.gpus_per_worker > 0,
                                         resources_per_worker=resources),
            run_config=RayRunConfig(name="hone", storage_path=str(storage)),
        )
        result = trainer.fit()
        if getattr(result, "error", None) is not None:
            raise result.error
    except Exception as err:
        from hone.errors import UserError

        for failure in [*getattr(err, "worker_failures", {}).values(), err.__cause__]:
            while failure is not None and not isinstance(failure, UserError):
                failure = failure.__cause__
            if isinstance(failure, UserError):
                raise failure from None  # the worker's one clear line, not Ray's wrapping of it
        raise
    finally:
        shutil.rmtree(storage, ignore_errors=True)
        if started:
            ray.shutdown()
    return Path(run_dir)
