"""Library logging: loggers only; the CLI is the one place that installs a handler."""

from __future__ import annotations

import logging
import sys
from typing import Any

logging.getLogger("hone").addHandler(logging.NullHandler())


def get_logger(name: str) -> logging.Logger:
    """The module logger (``hone.*``)."""
    return logging.getLogger(name)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of the record (it may have been replaced)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def configure(verbosity: int = 0) -> None:
    """Send hone's log records to stderr as plain lines; called by the CLI only."""
    level = logging.WARNING if verbosity < 0 else logging.DEBUG if verbosity > 0 else logging.INFO
    root = logging.getLogger("hone")
    root.setLevel(level)
    if not any(getattr(h, "_hone_cli", False) for h in root.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler._hone_cli = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    import os

    # transformers draws a "Loading weights" bar on every model load; the CLI has its own output.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
