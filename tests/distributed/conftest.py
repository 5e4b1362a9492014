"""One local Ray instance for the module's in-process tests: hone joins a running Ray (and leaves
it running) as it would in a notebook, so each command does not pay Ray's start. Starting Ray
itself is covered by the tests that run hone in a subprocess."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="module", autouse=True)
def ray_instance() -> Iterator[None]:
    ray = pytest.importorskip("ray")
    from hone._ray import start_ray

    started = start_ray(None, 3)  # 2 workers or trials, and one more for Ray Data's read and write tasks
    yield
    if started:
        ray.shutdown()
