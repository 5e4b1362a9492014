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
from hone.config import RunConfig
from hone.distributed.cluster import import_ray, local_cores, raise_user_error, start_ray
from hone.errors import ConfigError

logger = get_logger("hone.ray")


def _train_worker(config: dict[str, Any]) -> None:
    """One Ray Train worker: the ordinary fit, data-parallel through the environment Ray set up."""
    from hone import api

    os.chdir(config["cwd"])  # relative paths mean what they meant where the command ran
    os.environ["HONE_RAY_WORKER"] = "1"  # this process fits: engine.kind ray in the config is the run's record
    if config["resume"]:  # every worker continues from the run's checkpoint (rank 0 wrote it)
        api.fit(config["source"], resume=config["output"])
    else:
        api.fit(config["source"], config=config["config"], output=config["output"], overwrite=config["overwrite"])


def fit_on_ray(cfg: RunConfig, source: Any, run_dir: Path, overwrite: bool, resume: bool = False) -> Path:
    """Run the fit on Ray Train workers; returns the run folder the main worker wrote. With
    ``resume``, ``run_dir`` is a killed run: the workers continue it from its last checkpoint."""
    ray = import_ray()
    from ray.train import RunConfig as RayRunConfig
    from ray.train import ScalingConfig
    from ray.train.torch import TorchTrainer

    if not isinstance(source, (str, os.PathLike)):
        raise ConfigError("--engine ray reads the data in each worker: give a file, directory, glob or sql: "
                          "source, not a DataFrame")
    from hone._fit import check_settings

    check_settings(cfg, source)  # bad data or settings: one line here, before Ray starts
    e = cfg.engine
    started = start_ray(e.address, max(local_cores(), int(e.workers * e.cpus_per_worker)))
    storage = Path(tempfile.mkdtemp(prefix="hone-ray-"))
    tree = cfg.model_dump(mode="json", exclude_unset=True)
    if cfg.train.num_threads == "auto":  # a worker's threads are the CPUs it reserved
        tree.setdefault("train", {})["num_threads"] = max(1, int(e.cpus_per_worker))
    resources = {"CPU": e.cpus_per_worker, **({"GPU": e.gpus_per_worker} if e.gpus_per_worker else {})}
    logger.info("fitting on Ray: %d worker(s), %s each%s", e.workers, resources,
                f", cluster {e.address}" if e.address else ", local Ray instance")
    try:
        trainer = TorchTrainer(
            _train_worker,
            train_loop_config={"config": tree, "source": str(source), "output": str(Path(run_dir).absolute()),
                               "overwrite": overwrite, "cwd": os.getcwd(), "resume": resume},
            scaling_config=ScalingConfig(num_workers=e.workers, use_gpu=e.gpus_per_worker > 0,
                                         resources_per_worker=resources),
            run_config=RayRunConfig(name="hone", storage_path=str(storage)),
        )
        result = trainer.fit()
        if getattr(result, "error", None) is not None:
            raise result.error
    except Exception as err:
        raise_user_error(err)
        raise
    finally:
        shutil.rmtree(storage, ignore_errors=True)
        if started:
            ray.shutdown()
    return Path(run_dir)
