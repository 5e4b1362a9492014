"""hone: fine-tune pretrained models on labelled tables, honestly evaluated, ready to score.

Example:
    >>> import hone
    >>> model = hone.fit("reviews.csv", target="sentiment")       # doctest: +SKIP
    >>> model.predict_proba("new_reviews.csv")                    # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hone._version import __version__
__all__ = ["Model", "RunConfig", "__version__", "audit", "evaluate", "export", "fit", "load", "predict"]

if TYPE_CHECKING:
    from hone.api import audit, evaluate, export, fit, load, predict
    from hone.artifact import Model
    from hone.config import RunConfig

_LAZY = {"fit": "hone.api", "audit": "hone.api", "predict": "hone.api", "evaluate": "hone.api", "load": "hone.api",
         "export": "hone.api",
         "Model": "hone.artifact", "RunConfig": "hone.config"}


def __getattr__(name: str) -> Any:
    # Heavy modules (torch, transformers) are imported on first use, so `import hone` stays instant.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'hone' has no attribute {name!r}")
