"""Joining or starting Ray, one way for every engine (fit, predict, tune)."""

from __future__ import annotations

import os
from typing import Any

from hone.errors import MissingDependencyError


def import_ray() -> Any:
    """Ray, or one clear line saying how to install it."""
    try:
        import ray
    except ImportError as err:
        raise MissingDependencyError("--engine ray needs Ray: pip install 'hone[ray]'") from err
    return ray


def quiet_ray_train() -> None:
    """In every Ray worker process: Ray Train's placement-group monitor warns every few seconds that
    the State API (served by the dashboard, which hone does not start) is unavailable; harmless."""
    import logging

    logging.getLogger("ray.train.v2._internal.execution.controller.placement_group_cleaner").setLevel(logging.ERROR)


def start_ray(address: str | None, num_cpus: int) -> bool:
    """Join the cluster at ``address``, or start a local Ray instance with ``num_cpus`` CPUs.

    Returns True when this call started (or joined) Ray, so the caller shuts it down again; False
    when Ray was already running in this process (a notebook, a test), which is left as it was."""
    ray = import_ray()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    if ray.is_initialized():
        return False
    ray.init(address=address, include_dashboard=False, logging_level="WARNING",
             runtime_env={"worker_process_setup_hook": "hone._ray.quiet_ray_train"},
             **({} if address else {"num_cpus": num_cpus}))
    return True


def local_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def raise_user_error(err: BaseException) -> None:
    """If a Ray worker failed with one of hone's clear errors (bad settings, bad data), raise that
    one line instead of Ray's wrapping of it (a remote traceback); otherwise return."""
    from hone.errors import UserError

    pending: list[BaseException] = [err, *getattr(err, "worker_failures", {}).values()]  # Ray Train's
    seen: set[int] = set()
    while pending:
        e = pending.pop(0)
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        inner = getattr(e, "cause", None)  # a RayTaskError: the worker's own exception
        if isinstance(inner, BaseException):
            pending.insert(0, inner)
        elif isinstance(e, UserError):
            raise e from None
        else:
            pending[:0] = [x for x in (e.__cause__, e.__context__) if x is not None]
