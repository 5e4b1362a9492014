"""hone: fine-tune pretrained models on labelled tables, honestly evaluated, ready to score.

Example:
    >>> import hone
    >>> model = hone.fit("reviews.csv", target="sentiment")       # doctest: +SKIP
    >>> model.predict_proba("new_reviews.csv")                    # doctest: +SKIP

No submodule bears the name of a function exported here (``hone.predict`` and ``hone.evaluate`` are
always the functions: the modules are ``hone.scoring`` and ``hone.evaluation``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hone._version import __version__

__all__ = ["Model", "RunConfig", "__version__", "audit", "auto", "compare", "evaluate", "export", "federate", "fit",
           "load", "predict", "report", "tune"]

if TYPE_CHECKING:
    from hone.api import audit, auto, compare, evaluate, export, federate, fit, load, predict, report, tune
    from hone.artifact import Model
    from hone.config import RunConfig

_LAZY = {**{name: "hone.api" for name in ("fit", "auto", "audit", "predict", "evaluate", "load", "export", "tune",
                                          "federate", "compare", "report")},
         "Model": "hone.artifact", "RunConfig": "hone.config"}


def __getattr__(name: str) -> Any:
    # Heavy modules (torch, transformers) are imported on first use, so `import hone` stays instant.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'hone' has no attribute {name!r}")
