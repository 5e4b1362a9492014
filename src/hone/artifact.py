"""The model package: ``Model`` (predict, predict_proba, evaluate, save) and ``load``.

A model directory holds ``hone.json`` (schema, classes, preprocessing statistics, network shape,
resolved config, metrics, versions), ``model.safetensors`` and, with text, ``backbone/`` (the
backbone's config and tokenizer files). Loading reads JSON and safetensors only: nothing is unpickled.
"""

from __future__ import annotations

import json
import platform
import shutil
from collections.abc import Iterator
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from hone._io import atomic_path
from hone.data.schema import check_columns
from hone.data.sources import Table, connect, open_table, stream
from hone.data.split import qi
from hone.errors import DataError, ModelDirError
from hone.evaluate.metrics import classification_metrics, format_metrics, regression_metrics
from hone.features.pipeline import Preprocessor
from hone.models.build import HoneNet, NetSpec, build_model
from hone.models.inference import iter_outputs
from hone.models.precision import default_device, resolve_precision

FORMAT = "hone-model"
FORMAT_VERSION = 1
BATCH_ROWS = 256


class Model:
    """A fitted hone model: preprocessing plus network, ready to score any table.

    Example:
        >>> model = hone.load("runs/reviews/model")            # doctest: +SKIP
        >>> model.predict_proba("new.csv").shape                # doctest: +SKIP
        (1000, 2)
    """

    def __init__(self, net: HoneNet, pre: Preprocessor, meta: dict[str, Any], *, backbone_dir: Path | None = None,
                 precision: str = "auto") -> None:
        self.net = net
        self.pre = pre
        self.meta = meta
        self.backbone_dir = backbone_dir
        self.device = next(net.parameters()).device
        self.precision = resolve_precision(precision, self.device)

    @property
    def task(self) -> str:
        return self.pre.schema.task

    @property
    def target(self) -> str:
        return self.pre.schema.target

    @property
    def classes(self) -> list[Any]:
        """Class labels in the order of ``predict_proba``'s columns (empty for regression)."""
        return list(self.pre.schema.classes)

    @property
    def metrics(self) -> dict[str, Any]:
        return self.meta.get("metrics", {})

    # -- scoring -------------------------------------------------------------------------------
    def iter_scored(self, table: Table, batch_rows: int = BATCH_ROWS) -> Iterator[tuple[pa.Table, np.ndarray]]:
        """Yield ``(input batch, outputs)`` over an opened table, streaming."""
        check_columns(table, self.pre.schema.names(), "a feature the model was trained on")
        yield from iter_outputs(self.net, self.pre, stream(table, self._select(table), batch_rows),
                                precision=self.precision, device=self.device)

    def _select(self, table: Table) -> str:
        # Coerce numeric/boolean/datetime features to their training types: a stray "n/a" becomes
        # missing (handled like any missing value) instead of an error.
        types = dict(zip(table.columns, table.types))
        casts = [f"TRY_CAST({qi(c.name)} AS {c.dtype}) AS {qi(c.name)}" for c in self.pre.schema.columns
                 if c.role in ("numeric", "boolean", "datetime") and types[c.name] != c.dtype]
        return f"SELECT * {'REPLACE (' + ', '.join(casts) + ')' if casts else ''} FROM {table.view}"

    def _outputs(self, data: Any, with_targets: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        con = connect(keep_order=True)
        try:
            table = open_table(data, con)
            if with_targets:
                check_columns(table, [self.target], "the target")
            outs, ys = [], []
            for batch, out in self.iter_scored(table):
                if with_targets:
                    keep = batch.column(self.target).is_valid()
                    batch, out = batch.filter(keep), out[np.asarray(keep)]
                    ys.append(self.pre.targets(batch))
                outs.append(out)
        finally:
            con.close()
        if not outs:
            raise DataError("no rows to score" + (" with a target value" if with_targets else ""))
        y = np.concatenate(ys) if with_targets else None
        return np.concatenate(outs), y

    def predict_proba(self, data: Any) -> np.ndarray:
        """Class probabilities ``[N, K]``, columns ordered as :attr:`classes`."""
        if self.task == "regression":
            raise DataError("predict_proba is for classification models; this one does regression")
        return self._outputs(data)[0]

    def predict(self, data: Any) -> np.ndarray:
        """Predicted labels (classification) or values (regression), one per row."""
        out = self._outputs(data)[0]
        return self.labels_for(out)

    def labels_for(self, out: np.ndarray) -> np.ndarray:
        if self.task == "regression":
            return out
        return np.asarray(self.classes, dtype=object)[out.argmax(axis=1)]

    def evaluate(self, data: Any) -> dict[str, Any]:
        """Metrics on a labelled table (rows with a missing target are skipped)."""
        out, y = self._outputs(data, with_targets=True)
        assert y is not None
        return self.score(y, out)

    def score(self, y: np.ndarray, out: np.ndarray) -> dict[str, Any]:
        """Metrics from encoded targets and network outputs."""
        if self.task == "regression":
            return regression_metrics(y * self.pre.target_std + self.pre.target_mean, out)
        return classification_metrics(y, out, self.classes)

    def metrics_table(self) -> str:
        return format_metrics(self.metrics)

    # -- persistence ---------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the model directory atomically (an existing one is replaced only on success)."""
        from safetensors.torch import save_file

        final = Path(path)
        with atomic_path(final) as tmp:
            tmp.mkdir(parents=True)
            state = {k: v.detach().cpu().contiguous() for k, v in self.net.state_dict().items()}
            save_file(state, str(tmp / "model.safetensors"))
            if self.backbone_dir is not None:
                _copy_backbone_files(self.backbone_dir, self.pre, tmp / "backbone")
            meta = {**self.meta, "format": FORMAT, "format_version": FORMAT_VERSION, "net": asdict(self.net.spec),
                    "preprocessor": self.pre.to_dict(), "versions": _versions(),
                    "saved_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
            (tmp / "hone.json").write_text(json.dumps(meta, indent=2, default=str) + "\n", encoding="utf-8")
        return final


def _copy_backbone_files(src: Path, pre: Preprocessor, dst: Path) -> None:
    # The backbone's architecture config and tokenizer only: its weights are in model.safetensors.
    dst.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src / "config.json", dst / "config.json")
    if pre.text is not None:
        pre.text.tokenizer.save_pretrained(str(dst))


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    from hone._version import __version__

    out = {"hone": __version__, "python": platform.python_version()}
    for pkg in ("torch", "transformers", "duckdb", "pyarrow"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def load(path: str | Path, *, device: str | None = None, precision: str = "auto") -> Model:
    """Load a model directory written by :meth:`Model.save` (or ``hone fit``).

    Raises:
        ModelDirError: the folder is missing, or is not a hone model, or its files are broken.
    """
    from safetensors.torch import load_file

    root = Path(path)
    meta_path = root / "hone.json"
    if not root.is_dir():
        raise ModelDirError(f"model folder {str(root)!r} not found")
    if not meta_path.is_file():
        raise ModelDirError(f"{str(root)!r} is not a hone model folder: it has no hone.json")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ModelDirError(f"{str(meta_path)!r} is not valid JSON: {err}") from err
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelDirError(f"{str(meta_path)!r} is not a hone model description (no \"format\": \"{FORMAT}\")")
    if int(meta.get("format_version", 0)) > FORMAT_VERSION:
        raise ModelDirError(f"{str(root)!r} was saved by a newer hone (format {meta['format_version']}); upgrade hone")
    weights = root / "model.safetensors"
    if not weights.is_file():
        raise ModelDirError(f"{str(root)!r} has no model.safetensors")
    backbone = root / "backbone" if (root / "backbone").is_dir() else None
    try:
        pre = Preprocessor.from_dict(meta["preprocessor"], backbone)
        spec = NetSpec(**meta["net"])
        net = build_model(spec, backbone, pretrained=False)
        net.load_state_dict(load_file(str(weights)), strict=True)
    except (KeyError, TypeError, RuntimeError, ValueError) as err:
        raise ModelDirError(f"{str(root)!r} is a broken hone model: {str(err).splitlines()[0][:300]}") from err
    dev = torch.device(device) if device else default_device()
    net.to(dev).eval()
    return Model(net, pre, meta, backbone_dir=backbone, precision=precision)
