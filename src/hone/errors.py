"""The hone exception hierarchy: user-fixable errors get one clear line, bugs keep their traceback."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class HoneError(Exception):
    """Base class of every error hone raises on purpose."""


class UserError(HoneError):
    """Something the user can fix; the CLI prints ``error: <message>`` and exits with code 2."""


class ConfigError(UserError, ValueError):
    """A config field has a wrong type, a wrong value or an unknown name."""


class DataError(UserError, ValueError):
    """The input data cannot be used: unreadable, malformed, missing a column, wrong values."""


class SchemaError(DataError):
    """A column role or the task cannot be inferred or contradicts the data."""


class EmptyDataError(DataError):
    """The input has no rows (or no rows left after filtering)."""


class ModelDirError(UserError, ValueError):
    """A folder that should hold a hone model does not."""


class MissingDependencyError(UserError, ImportError):
    """An optional dependency is needed for the feature that was asked for."""


class FederationError(UserError):
    """A federation cannot go on: too few clients, silos that disagree, a client's error."""


class TrainingError(UserError):
    """Training produced nothing usable (every candidate's validation metric is non-finite)."""


class HoneWarning(UserWarning):
    """Legal but probably wrong usage."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return ``" Did you mean 'x'?"`` for the closest choice, or an empty string.

    Example:
        >>> did_you_mean("sentimnt", ["text", "sentiment"])
        " Did you mean 'sentiment'?"
    """
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r}?" if close else ""
