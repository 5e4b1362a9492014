"""The pipeline every use runs: the data stages, the network and its training, the after-training stage
(baseline, choice, calibration, decision rule, test scoring), run folders and the fit's dispatch.

The face (``hone.api``, the CLI) and the uses (tune, federated, distributed, serve) call these; none of
them reaches into another's private pieces. Names are imported on first use (torch comes with most).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hone.pipeline.after import choose_and_score, collect, verdict
    from hone.pipeline.data_stages import Prepared, adopt, fit_preprocessor, infer_run_schema, prepare, threads_for
    from hone.pipeline.dispatch import FitRequest, fit
    from hone.pipeline.network import Trained, build_network, fit_worker, score, train_network
    from hone.pipeline.runs import make_config, resume_record, run_dir, run_name, seed_everything, write_run

_WHERE = {
    "choose_and_score": "after",
    "collect": "after",
    "verdict": "after",
    "FitRequest": "dispatch",
    "fit": "dispatch",
    "Trained": "network",
    "build_network": "network",
    "fit_worker": "network",
    "score": "network",
    "train_network": "network",
    "Prepared": "data_stages",
    "adopt": "data_stages",
    "fit_preprocessor": "data_stages",
    "infer_run_schema": "data_stages",
    "prepare": "data_stages",
    "threads_for": "data_stages",
    "make_config": "runs",
    "resume_record": "runs",
    "run_dir": "runs",
    "run_name": "runs",
    "seed_everything": "runs",
    "write_run": "runs",
}
__all__ = ["FitRequest", "Prepared", "Trained", "adopt", "build_network", "choose_and_score", "collect", "fit",
           "fit_preprocessor", "fit_worker", "infer_run_schema", "make_config", "prepare", "resume_record",
           "run_dir", "run_name", "score", "seed_everything", "threads_for", "train_network", "verdict", "write_run"]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"hone.pipeline.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'hone.pipeline' has no attribute {name!r}")
