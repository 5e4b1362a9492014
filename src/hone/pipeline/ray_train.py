"""``hone fit --engine ray``: Ray Train's ``TorchTrainer`` runs hone's own fit on N workers.

The driver runs the data stages once (read, audit, split into files beside the run folder). Each
worker then calls :func:`hone.pipeline.dispatch` with the same config and those splits: Ray Train has set
``RANK`` and ``WORLD_SIZE`` and joined the process group, so the placement wraps the network in DDP,
each worker streams only its own shard of the training split (no worker reads the whole table),
and the main worker (rank 0) writes the run folder, checkpoints and all, exactly as a local fit
does. Without ``engine.address`` a local Ray instance is started (and stopped again); with one,
hone joins that cluster, whose workers must reach the data and the run folder at the same paths
(shared storage).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hone._logging import get_logger
from hone._ray import import_ray, local_cores, raise_user_error, start_ray
from hone.config import RunConfig
from hone.errors import ConfigError

logger = get_logger("hone.ray")


def fit_on_ray(cfg: RunConfig, source: Any, run_dir: Path, overwrite: bool, worker: Callable[[dict[str, Any]], None],
               resume: bool = False) -> Path:
    """Run the fit on Ray Train workers, each calling ``worker`` (the pipeline's fit, data-parallel); returns
    the run folder the main worker wrote. With ``resume``, ``run_dir`` is a killed run: the workers continue
    it from its last checkpoint."""
    ray = import_ray()
    from ray.train import RunConfig as RayRunConfig
    from ray.train import ScalingConfig
    from ray.train.torch import TorchTrainer

    if not isinstance(source, (str, os.PathLike)):
        raise ConfigError("--engine ray reads the data in each worker: give a file, directory, glob or sql: "
                          "source, not a DataFrame")
    from hone.pipeline.data_stages import prepare

    # The data stages run once, here: read, audit, split into files beside the run folder (on the
    # storage every node reaches); bad data or settings are one line before Ray starts.
    out = Path(run_dir).absolute()
    made = [p for p in out.parents if not p.exists()]  # child first
    out.parent.mkdir(parents=True, exist_ok=True)
    shared = Path(tempfile.mkdtemp(prefix=f".{out.name}.split-", dir=out.parent))
    storage = Path(tempfile.mkdtemp(prefix="hone-ray-"))
    try:
        prep = prepare(cfg, source, shared)
    except BaseException:
        for p in (shared, storage):
            shutil.rmtree(p, ignore_errors=True)
        for p in made:  # nothing left behind by a run that never started
            with contextlib.suppress(OSError):
                p.rmdir()
        raise
    e = cfg.engine
    started = start_ray(e.address, max(local_cores(), int(e.workers * e.cpus_per_worker)))
    tree = cfg.model_dump(mode="json", exclude_unset=True)
    if cfg.train.num_threads == "auto":  # a worker's threads are the CPUs it reserved
        tree.setdefault("train", {})["num_threads"] = max(1, int(e.cpus_per_worker))
    resources = {"CPU": e.cpus_per_worker, **({"GPU": e.gpus_per_worker} if e.gpus_per_worker else {})}
    logger.info("fitting on Ray: %d worker(s), %s each%s", e.workers, resources,
                f", cluster {e.address}" if e.address else ", local Ray instance")
    try:
        trainer = TorchTrainer(
            worker,
            train_loop_config={"config": tree, "source": str(source), "output": str(Path(run_dir).absolute()),
                               "overwrite": overwrite, "cwd": os.getcwd(), "resume": resume, "prepared": prep},
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
        shutil.rmtree(shared, ignore_errors=True)
        if started:
            ray.shutdown()
    return Path(run_dir)
