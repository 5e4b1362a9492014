"""``fit``: where a run trains (here, as one of torchrun's processes, or on Ray Train), whether it starts
or resumes, and the staged run folder it leaves, tracked and reported."""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hone._io import atomic_path
from hone._logging import get_logger
from hone.artifact import Model, load
from hone.config import RunConfig, build_config
from hone.errors import ConfigError, UserError
from hone.pipeline.budget import Planner
from hone.pipeline.data_stages import Prepared
from hone.pipeline.runs import make_config, resume_record, run_dir, seed_everything, write_run
from hone.train.callbacks import Callback

logger = get_logger("hone.fit")


@dataclass
class FitRequest:
    """One call of :func:`fit`, as the face received it (see :func:`hone.api.fit` for each field)."""

    source: Any = None
    target: str | None = None
    config: Any = None
    output: str | Path | None = None
    overwrite: bool = False
    callbacks: list[Callback] = field(default_factory=list)
    resume: str | Path | None = None
    track_parent: str | None = None
    prepared: Prepared | None = None
    command: list[str] | None = None  # the command line recorded in environment.json (None: sys.argv)
    overrides: dict[str, Any] = field(default_factory=dict)
    # the clock of a time limit: the stage order and budgets (None: hone fit's, with auto.time_limit if set)
    planner: Planner | None = None
    started: float = field(default_factory=time.monotonic)  # when the command started (time.monotonic())


@dataclass
class _Start:
    cfg: RunConfig
    source: Any
    folder: Path
    resumed: dict[str, Any] | None = None


def fit(req: FitRequest) -> Model | None:
    """Run the fit ``req`` asks for; returns the fitted model (None on a data-parallel process other
    than the main one, which writes nothing)."""
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1  # under torchrun or Ray Train
    # a Ray Train worker runs the fit itself, even with engine.kind ray in its config (the run's own)
    dispatch = not distributed and os.environ.get("HONE_RAY_WORKER") != "1"
    if distributed and int(os.environ.get("RANK", "0")) != 0:
        _other_rank(req)
        return None
    start = _resumed(req, dispatch) if req.resume is not None else _new(req)
    if start.cfg.engine.kind == "ray" and dispatch:  # Ray Train workers run this same function
        from hone.pipeline.ray_train import fit_on_ray

        model = load(fit_on_ray(start.cfg, start.source, start.folder, req.overwrite, _ray_worker,
                                resume=start.resumed is not None) / "model")
        model.run_dir = start.folder
        return model
    return _fit_here(req, start)


def _ray_worker(config: dict[str, Any]) -> None:
    """One Ray Train worker: the ordinary fit, data-parallel through the environment Ray set up."""
    os.chdir(config["cwd"])  # relative paths mean what they meant where the command ran
    os.environ["HONE_RAY_WORKER"] = "1"  # this process fits: engine.kind ray in the config is the run's record
    prep = config["prepared"]  # the driver's split: this worker reads its shard of it, not the whole table
    if config["resume"]:  # every worker continues from the run's checkpoint (rank 0 wrote it)
        fit(FitRequest(config["source"], resume=config["output"], prepared=prep))
    else:
        fit(FitRequest(config["source"], config=config["config"], output=config["output"],
                       overwrite=config["overwrite"], prepared=prep))


def _other_rank(req: FitRequest) -> None:
    """A data-parallel process other than the main one (rank 0 writes the run)."""
    from hone.pipeline.network import fit_worker
    from hone.train.checkpoint import latest_checkpoint

    state, source = None, req.source
    if req.resume is not None:  # every process continues from the main one's checkpoint
        rec = resume_record(Path(req.resume))
        cfg = build_config(rec["config"])
        source = source if source is not None else rec.get("source")
        state = latest_checkpoint(Path(req.resume) / "checkpoints")
    else:
        cfg = make_config(source, target=req.target, config=req.config, overrides=req.overrides)
    fit_worker(cfg, source if source is not None else cfg.data.source, resume_state=state, prepared=req.prepared)


def _resumed(req: FitRequest, dispatch: bool) -> _Start:
    from hone.train.checkpoint import latest_checkpoint

    if req.target is not None or req.config is not None or req.overrides or req.output is not None:
        raise ConfigError("--resume continues a run with the config it started with; pass no other settings "
                          "(start a new run to change them)")
    folder = Path(req.resume)  # type: ignore[arg-type]
    resumed = resume_record(folder)
    cfg = build_config(resumed["config"])
    src = req.source if req.source is not None else resumed.get("source")
    if src is None:
        raise ConfigError(f"the run in {str(folder)!r} read a DataFrame or Arrow table: pass the same data "
                          "again, hone.fit(data, resume=...)")
    if cfg.engine.kind != "ray" or not dispatch:  # Ray Train workers read the checkpoint themselves
        resumed["state"] = latest_checkpoint(folder / "checkpoints")
        if resumed["state"] is None:
            logger.warning("no complete checkpoint in %s: the run starts over from step 0", folder / "checkpoints")
    return _Start(cfg, src, folder, resumed)


def _new(req: FitRequest) -> _Start:
    cfg = make_config(req.source, target=req.target, config=req.config, overrides=req.overrides)
    on_driver = cfg.engine.kind == "ray" and os.environ.get("HONE_RAY_WORKER") != "1"
    if req.planner is not None and on_driver:  # checked before the run folder exists: nothing is written
        raise ConfigError("engine.kind ray (--engine ray) does not combine with hone auto: its planner, portfolio and "
                          "ensemble run in one process; drop --engine ray (it is for hone fit's data-parallel network)")
    if cfg.auto.time_limit is not None and on_driver:
        logger.warning("--time-limit with --engine ray: each Ray worker counts the limit from its own start, after "
                       "Ray has started, so the command may end later than the limit")
    src = req.source if req.source is not None else cfg.data.source
    return _Start(cfg, src, run_dir(cfg, src, req.output, req.overwrite))


def _fit_here(req: FitRequest, start: _Start) -> Model:
    """The run in this process: staged in a sibling folder and moved into place only once it succeeded."""
    import sys

    from hone._provenance import environment
    from hone.pipeline.stages import fit_in
    from hone.tracking import Tracker, final_metrics, wanted
    from hone.train.checkpoint import latest_checkpoint

    started = time.time()
    cfg, src, folder, resumed = start.cfg, start.source, start.folder, start.resumed
    record = {"config": cfg.model_dump(mode="json", exclude_unset=True),
              "source": str(src) if isinstance(src, (str, os.PathLike)) else None,
              "command": sys.argv, "started": started}
    checkpoints = folder / "checkpoints"
    existed = checkpoints.exists()
    tracker = None
    if wanted(cfg):
        tracker = Tracker(cfg, name=folder.name, parent=req.track_parent,
                          run_id=resumed.get("mlflow_run_id") if resumed else None)
    seed_everything(cfg.train.seed)
    try:
        with atomic_path(folder) as stage:
            stage.mkdir(parents=True)
            try:
                model, files = fit_in(cfg, src, stage, req.callbacks, checkpoints=checkpoints, record=record,
                                      resume=resumed, tracker=tracker, prepared=req.prepared,
                                      planner=_planner(req, cfg))
            finally:
                shutil.rmtree(stage / ".work", ignore_errors=True)
            files["environment.json"] = environment(started, req.command)
            _write_run(stage, folder.name, files, checkpoints if cfg.train.keep_checkpoints else None)
    except BaseException as err:
        if isinstance(err, UserError) and resumed is None and not existed:
            # bad input or settings fail the same way again: nothing to resume, nothing left behind
            shutil.rmtree(checkpoints, ignore_errors=True)
            with contextlib.suppress(OSError):
                folder.rmdir()
        elif latest_checkpoint(checkpoints) is not None:
            logger.error("the run stopped; continue it from its last checkpoint with: hone fit --resume %s", folder)
        if tracker is not None:
            tracker.end("KILLED" if isinstance(err, KeyboardInterrupt) else "FAILED")
        raise
    if tracker is not None and tracker.run_id is not None:
        tracker.log_metrics(final_metrics(files["metrics.json"]), step=model.meta["training"]["steps"])
        tracker.log_run_folder(folder)
        tracker.end()
    model.run_dir = folder
    logger.info("saved run to %s (model in %s)", folder, folder / "model")
    return model


def _planner(req: FitRequest, cfg: RunConfig) -> Planner:
    """The request's planner; else a :class:`TimeLimit` when ``auto.time_limit`` is set."""
    from hone.pipeline.budget import Clock, TimeLimit

    if req.planner is not None:
        return req.planner
    if cfg.auto.time_limit is not None:
        return TimeLimit(cfg.auto.time_limit, started=req.started)
    return Planner(Clock(started=req.started))


def _write_run(stage: Path, name: str, files: dict[str, Any], checkpoints: Path | None) -> None:
    """The run's files, its report, and (``train.keep_checkpoints``) its checkpoints, into the stage."""
    write_run(stage, name, files)
    if checkpoints is not None and checkpoints.is_dir():
        shutil.move(str(checkpoints), str(stage / "checkpoints"))
