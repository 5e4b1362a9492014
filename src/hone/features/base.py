"""The modality registry of the features layer: one preprocessor class per modality.

A modality (text, numeric, categorical, image) claims schema roles, fits its statistics on
the training split only, turns Arrow batches into arrays, and round-trips through JSON (plus an
assets folder, e.g. tokenizer files). Adding a modality is a new module that subclasses
:class:`FeaturePreprocessor` and registers itself; nothing else in this layer changes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import duckdb
import pyarrow as pa

from hone.config import ModelConfig
from hone.data.schema import Schema

FEATURES: dict[str, type[FeaturePreprocessor]] = {}


def register(cls: type[FeaturePreprocessor]) -> type[FeaturePreprocessor]:
    """Class decorator: make ``cls`` the preprocessor of ``cls.modality``."""
    FEATURES[cls.modality] = cls
    return cls


def modality_of(role: str) -> str:
    """The modality that handles a schema role (``boolean`` and ``datetime`` are ``numeric``)."""
    for name, cls in FEATURES.items():
        if role in cls.roles:
            return name
    raise KeyError(f"no modality handles the column role {role!r}")


class FeaturePreprocessor(ABC):
    """One modality's fitted preprocessing."""

    modality: ClassVar[str]
    roles: ClassVar[tuple[str, ...]]
    needs_assets: ClassVar[bool] = False  # True when from_dict needs the folder save_assets wrote

    @classmethod
    @abstractmethod
    def fit(cls, schema: Schema, columns: list[str], train_path: Path, *, con: duckdb.DuckDBPyConnection,
            cfg: ModelConfig) -> FeaturePreprocessor:
        """Fit on the training Parquet file only (``con`` carries the run's memory limit)."""

    @abstractmethod
    def transform(self, batch: pa.Table) -> Any:
        """The modality's model inputs for a batch, as numpy arrays (nested in dicts/tuples)."""

    @abstractmethod
    def encoder_spec(self) -> dict[str, Any]:
        """What the matching encoder needs to be built (JSON)."""

    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """The fitted state as JSON."""

    @classmethod
    @abstractmethod
    def from_dict(cls, d: dict[str, Any], assets: Path | None) -> FeaturePreprocessor:
        """Rebuild from :meth:`to_dict` and the assets folder written by :meth:`save_assets`."""

    def save_assets(self, folder: Path) -> None:  # noqa: B027 (a hook: most modalities need nothing)
        """Write files the preprocessing needs besides JSON (tokenizers); nothing by default."""

    def transform_train(self, batch: pa.Table, key: tuple[int, ...]) -> Any:
        """The inputs of a training batch; ``key`` (seed, epoch, batch) seeds random augmentation.
        The same as :meth:`transform` unless the modality augments."""
        return self.transform(batch)

    def bind(self, root: str) -> None:  # noqa: B027 (a hook: most modalities need nothing)
        """Learn the folder the table being read lives in (relative image paths); nothing by default."""

    def check(self, path: Path, split: str) -> None:  # noqa: B027 (a hook: most modalities need nothing)
        """Check a split file before training starts (e.g. every image opens); nothing by default."""

    # -- attribution (hone.explain) ---------------------------------------------------------------
    def reference(self, inputs: Any) -> Any:
        """The model inputs of a row the network knows nothing about, which attributions are
        measured from (``inputs``: this modality's tensors for a batch). Zeros by default: a
        standardised value at its training mean, the unknown category."""
        return inputs * 0

    def explain_row(
        self, attributions: dict[str, Any], batch: pa.Table, i: int
    ) -> tuple[dict[str, float], dict[str, Any]]:
        """Row ``i``'s attributions, given per part of the encoder's continuous inputs (``embed``),
        summed over their vector axis (per token, per value, per category; images per pixel), as
        ``({input column: attribution}, {what is shown with them, e.g. "words": {column: ...}})``."""
        raise NotImplementedError(f"the {self.modality} modality does not explain its attributions")


    # -- federated fitting (hone.federated) -------------------------------------------------------
    @classmethod
    def local_stats(cls, schema: Schema, columns: list[str], train_path: Path, *, con: duckdb.DuckDBPyConnection,
                    cfg: ModelConfig) -> dict[str, Any]:
        """What one data silo contributes to fitting this modality: counts and sums over its training
        split, never rows (numbers, and strings only for names such as a category shared by enough
        rows). Nothing by default: a modality without statistics of the data (text: a pretrained
        tokenizer) is fitted from the config alone."""
        return {}

    @classmethod
    def from_stats(cls, schema: Schema, columns: list[str], stats: list[dict[str, Any]], *,
                   cfg: ModelConfig) -> FeaturePreprocessor:
        """The preprocessor fitted from every silo's :meth:`local_stats` (the same result as
        :meth:`fit` on the pooled rows, up to what a silo keeps to itself)."""
        if any(stats):
            raise NotImplementedError(f"the {cls.modality} modality has no federated fit")
        return cls.fit(schema, columns, Path("/nonexistent"), con=None, cfg=cfg)
