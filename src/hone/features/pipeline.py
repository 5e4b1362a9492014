"""The fitted preprocessing of a model: Arrow batch -> model inputs, and labels <-> targets."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from hone.data.schema import Schema
from hone.errors import DataError
from hone.features.tabular import TabularPreprocessor
from hone.features.text import TextPreprocessor


@dataclass
class Preprocessor:
    """Everything fitted on the training split that a batch goes through before the network."""

    schema: Schema
    tabular: TabularPreprocessor
    text: TextPreprocessor | None = None
    target_mean: float = 0.0  # regression targets are standardised for training
    target_std: float = 1.0
    class_counts: dict[str, int] = field(default_factory=dict)

    def inputs(self, batch: pa.Table, device: torch.device | str = "cpu", *, with_text: bool = True) -> dict[str, Any]:
        """Model inputs for an Arrow batch: text token arrays (unless ``with_text`` is false), numeric and
        categorical matrices."""
        num, cat = self.tabular.transform(batch)
        out: dict[str, Any] = {"num": torch.from_numpy(num).to(device), "cat": torch.from_numpy(cat).to(device)}
        if self.text is not None and with_text:
            out["text"] = {c: (torch.from_numpy(i).to(device), torch.from_numpy(m).to(device))
                           for c, (i, m) in self.text.encode(batch).items()}
        return out

    def targets(self, batch: pa.Table) -> np.ndarray:
        """Class indices (int64) or standardised values (float32) of the batch's target column."""
        col = batch.column(self.schema.target)
        if self.schema.task == "regression":
            y = np.asarray(pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
            return ((y - self.target_mean) / self.target_std).astype(np.float32)
        classes = pa.array(self.schema.classes)
        if col.type != classes.type:  # e.g. labels read as numbers in one file and as text in another
            try:
                col = pc.cast(col, classes.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
                raise DataError(f"target {self.schema.target!r} holds {col.type} values; the model was trained on "
                                f"{classes.type} labels: {', '.join(map(repr, self.schema.classes))}") from err
        idx = pc.index_in(col, value_set=classes)
        if idx.null_count:
            unknown = pc.filter(col, pc.is_null(idx)).to_pylist()[0]
            raise DataError(f"target {self.schema.target!r} has label {unknown!r}, which the model was not trained "
                            f"on; its classes are: {', '.join(map(repr, self.schema.classes))}")
        return np.asarray(idx.to_numpy(zero_copy_only=False), dtype=np.int64)

    def to_dict(self) -> dict[str, Any]:
        return {"schema": self.schema.to_dict(), "tabular": self.tabular.to_dict(),
                "text": self.text.to_dict() if self.text else None, "target_mean": self.target_mean,
                "target_std": self.target_std, "class_counts": self.class_counts}

    @classmethod
    def from_dict(cls, d: dict[str, Any], tokenizer_dir: Path | None) -> Preprocessor:
        text = None
        if d.get("text"):
            text = TextPreprocessor.load(d["text"]["columns"], d["text"]["max_length"], tokenizer_dir or "")
        return cls(Schema.from_dict(d["schema"]), TabularPreprocessor.from_dict(d["tabular"]), text,
                   d["target_mean"], d["target_std"], d.get("class_counts", {}))
