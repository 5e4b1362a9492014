"""Save and restore the whole state of a fit: weights, optimiser, scheduler, RNGs, data position.

One pair of functions, :func:`save_loop_state` and :func:`load_loop_state`. A state folder holds
``tensors.safetensors`` (every tensor) and ``state.json`` (everything else); loading never
unpickles. Restoring a state into freshly built objects and calling ``fit_loop(..., state=, best=)``
continues the fit exactly where it stopped: the same batches, the same dropout masks, the same
weights as an uninterrupted run.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hone._io import atomic_path
from hone.train.callbacks import Callback
from hone.train.loop import Loop
from hone.train.state import TrainState

_TENSORS = "tensors.safetensors"
_STATE = "state.json"


def _split_tensors(tree: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    """Replace every tensor in a nested dict/list by a reference, collecting it in ``tensors``."""
    if isinstance(tree, torch.Tensor):
        tensors[prefix] = tree.detach().cpu().contiguous()
        return {"__tensor__": prefix}
    if isinstance(tree, dict):
        return {"__dict__": [[_key(k), _split_tensors(v, f"{prefix}.{k}", tensors)] for k, v in tree.items()]}
    if isinstance(tree, (list, tuple)):
        return [_split_tensors(v, f"{prefix}.{i}", tensors) for i, v in enumerate(tree)]
    if tree is None or isinstance(tree, (bool, int, float, str)):
        return tree
    raise TypeError(f"cannot save a {type(tree).__name__} in a loop state")


def _key(k: Any) -> Any:
    return k if isinstance(k, (int, str)) else str(k)


def _join_tensors(tree: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(tree, dict):
        if "__tensor__" in tree:
            return tensors[tree["__tensor__"]]
        return {k: _join_tensors(v, tensors) for k, v in tree["__dict__"]}
    if isinstance(tree, list):
        return [_join_tensors(v, tensors) for v in tree]
    return tree


def _scheduler_state(scheduler: Any) -> dict[str, Any]:
    # LambdaLR keeps its lambdas in the state dict as None (functions are rebuilt by the caller)
    return {k: v for k, v in scheduler.state_dict().items() if k != "lr_lambdas"}


def save_loop_state(path: str | Path, loop: Loop, state: TrainState) -> Path:
    """Write the fit's full state to the folder ``path`` (atomically)."""
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    np_state: Any = np.random.get_state()
    py_state = random.getstate()
    tree: dict[str, Any] = {
        "model": _split_tensors(loop.model.state_dict(), "model", tensors),
        "best": _split_tensors(dict(loop.best), "best", tensors),
        "optimizer": _split_tensors(loop.optimizer.state_dict(), "optimizer", tensors),
        "scheduler": _split_tensors(_scheduler_state(loop.scheduler), "scheduler", tensors),
        "rng": {
            "torch": _split_tensors(torch.get_rng_state(), "rng.torch", tensors),
            "cuda": _split_tensors(torch.cuda.get_rng_state_all(), "rng.cuda", tensors)
            if torch.cuda.is_available()
            else [],
            "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
            "python": [py_state[0], list(py_state[1]), py_state[2]],
        },
        "train_state": {k: v for k, v in vars(state).items()},
    }
    final = Path(path)
    with atomic_path(final) as tmp:
        tmp.mkdir(parents=True)
        save_file(tensors, str(tmp / _TENSORS))
        (tmp / _STATE).write_text(json.dumps(tree), encoding="utf-8")
    return final


def load_loop_state(path: str | Path, loop: Loop) -> TrainState:
    """Restore a state written by :func:`save_loop_state` into ``loop``'s objects (built the same
    way as when it was saved); returns the :class:`TrainState` to pass to ``fit_loop``. The best
    weights are restored into ``loop.best``."""
    from safetensors.torch import load_file

    root = Path(path)
    tensors = load_file(str(root / _TENSORS))
    tree = json.loads((root / _STATE).read_text(encoding="utf-8"))
    loop.model.load_state_dict(_join_tensors(tree["model"], tensors))
    loop.best.clear()
    loop.best.update(_join_tensors(tree["best"], tensors))
    loop.optimizer.load_state_dict(_join_tensors(tree["optimizer"], tensors))
    loop.scheduler.load_state_dict({**loop.scheduler.state_dict(), **_join_tensors(tree["scheduler"], tensors)})
    rng = tree["rng"]
    torch.set_rng_state(_join_tensors(rng["torch"], tensors))
    if rng["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(_join_tensors(rng["cuda"], tensors))
    n = rng["numpy"]
    np.random.set_state((n[0], np.asarray(n[1], dtype=np.uint32), *n[2:]))
    p = rng["python"]
    random.setstate((p[0], tuple(p[1]), p[2]))
    return TrainState(**tree["train_state"])


LATEST = "latest"


def latest_checkpoint(folder: str | Path) -> Path | None:
    """The newest complete state in a checkpoint folder, or None. A save killed between its two
    renames leaves the previous state as ``.latest.old``: that one is used then."""
    root = Path(folder)
    for candidate in (root / LATEST, root / f".{LATEST}.old"):
        if (candidate / _STATE).is_file() and (candidate / _TENSORS).is_file():
            return candidate
    return None


class Checkpointer(Callback):
    """Save the loop's full state to ``folder/latest`` at every evaluation, at the end of every
    epoch, every ``every_steps`` optimiser steps and at least every ``every_seconds``.

    Saves happen at consistent points only (after a step and its evaluation), so
    :func:`load_loop_state` plus ``fit_loop(state=..., best=...)`` continues exactly. ``record`` (any
    JSON) is written beside the state as ``run.json``: what a resume needs to rebuild the run.
    """

    def __init__(self, folder: str | Path, *, every_steps: int | None = None, every_seconds: float | None = 600.0,
                 record: dict[str, Any] | None = None) -> None:
        self.folder, self.every_steps, self.every_seconds = Path(folder), every_steps, every_seconds
        self.record = record or {}
        self.loop: Loop | None = None
        self.evaluated = False
        self.last_save = 0.0

    def on_fit_start(self, state: TrainState, *, loop: Any = None) -> None:
        self.loop, self.last_save = loop, time.perf_counter()

    def on_evaluate(self, state: TrainState, *, metrics: dict[str, Any], is_best: bool) -> None:
        self.evaluated = True

    def on_step_end(self, state: TrainState) -> None:
        due = self.every_steps and state.step % self.every_steps == 0
        late = self.every_seconds is not None and time.perf_counter() - self.last_save >= self.every_seconds
        if self.evaluated or due or late:
            self.save(state)

    def on_epoch_end(self, state: TrainState) -> None:
        self.save(state)

    def save(self, state: TrainState) -> None:
        from hone._io import write_json

        assert self.loop is not None, "on_fit_start was not called"
        self.folder.mkdir(parents=True, exist_ok=True)
        write_json(self.folder / "run.json", {**self.record, "step": state.step, "epoch": state.epoch})
        save_loop_state(self.folder / LATEST, self.loop, state)
        self.evaluated, self.last_save = False, time.perf_counter()
