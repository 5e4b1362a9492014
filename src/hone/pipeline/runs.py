"""Run folders: the config a call asks for, where its run goes, what a killed run left for its resume,
and the seeds every run starts from."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import numpy as np

from hone._io import check_output, write_json, write_text
from hone.config import FLAGS, RunConfig, build_config
from hone.errors import ConfigError, did_you_mean


def make_config(source: Any = None, *, target: str | None = None, config: Any = None,
                overrides: dict[str, Any] | None = None, needs_source: bool = True) -> RunConfig:
    """Build and validate the run config from a YAML path/dict/RunConfig plus keyword overrides (the
    short names of :data:`hone.config.FLAGS` or dotted config fields). ``needs_source``: False for a
    federation's server, which holds no rows."""
    dotted: dict[str, Any] = {}
    for k, v in (overrides or {}).items():
        if "." not in k and k not in FLAGS:
            raise ConfigError(f"unknown setting {k!r}.{did_you_mean(k, FLAGS)} "
                              "Use a dotted config field (e.g. 'train.warmup_ratio') for the others")
        dotted[FLAGS.get(k, k)] = v
    if isinstance(source, (str, os.PathLike)):
        dotted["data.source"] = str(source)
    if target is not None:
        dotted["data.target"] = target
    cfg = build_config(config, dotted)
    if needs_source and source is None and cfg.data.source is None:
        raise ConfigError("no data source: pass a file, a directory, a glob or sql:SELECT ... (or set data.source)")
    if cfg.data.target is None:
        raise ConfigError("no target column: pass --target COLUMN (or set data.target)")
    return cfg


def run_name(cfg: RunConfig, source: Any) -> str:
    """``name``, or the source file's stem (``run`` for queries and in-memory tables)."""
    return cfg.name or (Path(str(source)).stem.split("*")[0].strip(".") if isinstance(source, (str, os.PathLike))
                        and not str(source).startswith("sql:") else "run") or "run"


def run_dir(cfg: RunConfig, source: Any, output: str | Path | None, overwrite: bool) -> Path:
    """The run folder a new run writes: ``output`` (checked: an interrupted run or another folder is never
    replaced by mistake) or ``runs/<name>``, made unique."""
    if output is not None:
        path = check_output(output, folder=True, inputs=(source,))
        interrupted = (path / "checkpoints" / "run.json").is_file() and not (path / "metrics.json").is_file()
        if interrupted and not overwrite:
            raise ConfigError(f"{str(path)!r} holds an interrupted run: continue it with hone fit --resume {path}, "
                              "or pass --overwrite to start it over")
        if path.exists() and any(path.iterdir()) and not overwrite:
            raise ConfigError(f"run directory {str(path)!r} already exists; pass --overwrite to replace it "
                              "or choose another --output")
        if path.exists() and overwrite and not (path / "config.resolved.yaml").exists() and not interrupted \
                and any(path.iterdir()):
            raise ConfigError(f"{str(path)!r} exists and is not a hone run directory; refusing to replace it")
        return path
    name = run_name(cfg, source)
    base = Path("runs") / name
    path, i = base, 2
    while path.exists():
        path, i = base.with_name(f"{name}-{i}"), i + 1
    return check_output(path, folder=True, inputs=(source,))


def resume_record(folder: Path) -> dict[str, Any]:
    """What a killed run wrote for its resume (``checkpoints/run.json``), with clear errors."""
    rec = folder / "checkpoints" / "run.json"
    if not folder.is_dir():
        raise ConfigError(f"run directory {str(folder)!r} does not exist")
    if not rec.is_file():
        if (folder / "metrics.json").is_file():
            raise ConfigError(f"the run in {str(folder)!r} finished: there is nothing to resume")
        raise ConfigError(f"{str(folder)!r} has no checkpoints to resume from (checkpoints/run.json is missing)")
    try:
        data = json.loads(rec.read_text(encoding="utf-8"))
        data["config"]
    except (ValueError, KeyError, TypeError) as err:
        raise ConfigError(f"{str(rec)!r} is damaged: {err}") from err
    return dict(data)


def seed_everything(seed: int) -> None:
    """Python's, NumPy's and torch's generators, from the run's seed."""
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def write_run(stage: Path, name: str, files: dict[str, Any]) -> None:
    """A run's files (text or JSON, each written atomically) and its ``report.html``, into ``stage``."""
    from hone.pages.report import write_report

    for fname, content in files.items():
        (write_text if isinstance(content, str) else write_json)(stage / fname, content)
    write_report(stage, name)
