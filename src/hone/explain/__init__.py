"""Explanations: why the model predicted what it did, row by row, and which inputs matter overall.

* :mod:`hone.explain.network`: Integrated Gradients (Captum) on the fine-tuned network, per word,
  per column and per image region, with the convergence delta.
* :mod:`hone.explain.baseline`: the baseline's exact contributions (LightGBM's SHAP values).
* :mod:`hone.explain.rows`: both combined as the chosen model combines them.
* :mod:`hone.explain.importance`: permutation importance with bootstrap intervals, mean absolute
  attributions and the most influential words per class (``explain.json``, in ``report.html``).
* :mod:`hone.explain.output`: the explanations as Parquet or as a self-contained HTML page.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from hone.explain.rows import Explainer


def iter_explained(model: Any, data: Any, *, rows: int | None = None, where: str | None = None,
                   steps: int | str = "auto", target_class: Any = None, encoding: str | None = None,
                   batch_rows: int = 256) -> Iterator[tuple[pa.Table, list[dict[str, Any]]]]:
    """``(batch, explanations)`` over the rows of ``data``, streaming."""
    from hone.data.sources import connect, open_table

    explainer = Explainer(model, steps=steps, target_class=target_class)
    con = connect(keep_order=True)
    try:
        table = open_table(data, con, encoding=encoding)
        if where is not None:
            check_where(table, where)
        for b in model.iter_typed(table, batch_rows, where=where, limit=rows):
            t = pa.Table.from_batches([b])
            yield t, explainer.explain_batch(t)
    finally:
        con.close()


def check_where(table: Any, where: str) -> None:
    """A clear error for a ``--where`` condition that does not bind to the table (nothing is scanned)."""
    import duckdb

    from hone.errors import ConfigError

    try:
        table.con.sql(f"SELECT * FROM {table.view} WHERE {where} LIMIT 0").fetchall()
    except duckdb.Error as err:
        raise ConfigError(f"--where {where!r} is not a condition on {table.name}: "
                          f"{str(err).splitlines()[0]}") from err


def explain_rows(model: Any, data: Any, **kwargs: Any) -> list[dict[str, Any]]:
    """Every row's explanation (see :meth:`hone.Model.explain`)."""
    return [r for _, rows in iter_explained(model, data, **kwargs) for r in rows]


__all__ = ["Explainer", "explain_rows", "iter_explained"]
