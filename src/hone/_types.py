"""The types of hone's public signatures: what a table, a config, a setting and a JSON record may be."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Union

if TYPE_CHECKING:
    import pandas
    import polars
    import pyarrow as pa

    from hone.config import RunConfig

# A table to read: a file, a glob, a directory or "sql:SELECT ..."; or rows in memory (Arrow, pandas, polars).
DataSource = Union[str, "os.PathLike[str]", "pa.Table", "pa.RecordBatchReader", "pandas.DataFrame", "polars.DataFrame"]
# A run config: a YAML file, a mapping of its sections, or a RunConfig.
ConfigSource = Union[str, "os.PathLike[str]", "dict[str, object]", "RunConfig"]
# A setting's value (hone.fit(epochs=3), --set train.lr=1e-4): YAML's scalars, lists and mappings.
Setting = Union[None, bool, int, float, str, list["Setting"], dict[str, "Setting"]]  # noqa: UP007
# A JSON value, as the metrics and records hone returns are (and metrics.json holds).
JSONValue = Union[None, bool, int, float, str, list["JSONValue"], dict[str, "JSONValue"]]  # noqa: UP007
JSONDict = dict[str, JSONValue]
# A class of the target: a label as it appears in the table.
Label = Union[str, int, float, bool]  # noqa: UP007

__all__ = ["ConfigSource", "DataSource", "JSONDict", "JSONValue", "Label", "Setting"]
