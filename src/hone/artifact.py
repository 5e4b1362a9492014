"""The model package: ``Model`` (predict, predict_proba, evaluate, save) and ``load``.

A model directory holds ``hone.json`` (schema, classes, preprocessing per modality, network shape,
precision, resolved config, metrics, versions), ``model.safetensors`` and, per modality with a
pretrained backbone, ``backbones/<modality>/`` (the backbone's config and tokenizer files). Loading
reads JSON and safetensors only: nothing is unpickled. Folders written by earlier formats are
migrated on load (see ``_migrations``).
"""

from __future__ import annotations

import json
import platform
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from hone._io import atomic_path
from hone._logging import get_logger
from hone._types import DataSource, JSONDict, Label
from hone.artifact_migrations import migrate
from hone.data.batches import as_tables
from hone.data.schema import check_columns, scoring_query
from hone.data.sources import Table, connect, open_table, stream
from hone.errors import DataError, ModelDirError
from hone.evaluation.choice import Decision
from hone.evaluation.metrics import classification_metrics, format_metrics, regression_metrics
from hone.features.base import FEATURES
from hone.features.pipeline import Preprocessor
from hone.models.baseline import Baseline
from hone.models.build import HoneNet, NetSpec, build_model
from hone.models.ensemble import load_baseline
from hone.models.inference import iter_outputs
from hone.models.precision import cpu_has_fast_bf16, default_device, resolve_precision

FORMAT = "hone-model"
FORMAT_VERSION = 2
BATCH_ROWS = 2048  # rows read per batch: text is length-sorted within a batch, so larger pads less
_COERCED = "__hone_coerced_"
logger = get_logger(__name__)


class Model:
    """A fitted hone model: preprocessing plus network, ready to score any table.

    Example:
        >>> model = hone.load("runs/reviews/model")            # doctest: +SKIP
        >>> model.predict_proba("new.csv").shape                # doctest: +SKIP
        (1000, 2)
    """

    def __init__(self, net: HoneNet, pre: Preprocessor, meta: dict[str, Any], *, assets: dict[str, Path] | None = None,
                 precision: str = "auto", baseline: Baseline | None = None, decision: Decision | None = None) -> None:
        self.net = net
        self.pre = pre
        self.baseline = baseline
        self.decision = decision or Decision()  # the network alone, argmax, until a choice is made
        self.meta = meta
        self.assets = dict(assets or {})  # modality -> backbone folder (config and tokenizer files)
        self.device = next(net.parameters()).device
        self.precision = resolve_precision(precision, self.device)
        self.coerced: dict[str, int] = {}  # cells of the last scored input read as missing, per column
        self.runtime = "torch"
        self.session: Any = None  # an ONNX Runtime session when runtime is onnx or onnx-int8
        self.run_dir: Path | None = None  # the run folder it was fitted into (set by fit; None when loaded)

    def use_runtime(self, runtime: str, model_dir: Path) -> str:
        """Score with ``torch``, ``onnx``, ``onnx-int8`` or ``auto`` (the fastest that passed parity
        at export, from ``onnx.json``). Returns the runtime chosen."""
        if runtime not in ("torch", "onnx", "onnx-int8", "auto"):
            raise ModelDirError(f"runtime must be torch, onnx, onnx-int8 or auto, not {runtime!r}")
        record_path = model_dir / "onnx.json"
        record = json.loads(record_path.read_text()) if record_path.is_file() else None
        if runtime == "auto":
            runtime = "torch"
            if record is not None and "covers" in record:
                speeds = {"torch": record["fp32"]["torch_rows_per_s"], "onnx": record["fp32"]["rows_per_s"]}
                if "int8" in record:
                    speeds["onnx-int8"] = record["int8"]["rows_per_s"]
                runtime = max(speeds, key=lambda k: speeds[k])
        if runtime != "torch":
            name = "model.onnx" if runtime == "onnx" else "model.int8.onnx"
            if record is None or not (model_dir / name).is_file() or "covers" not in record:
                raise ModelDirError(
                    f"{str(model_dir)!r} has no {name} of this hone version: run hone export "
                    f"{model_dir} --format onnx" + (" --quantize int8" if runtime == "onnx-int8" else "")
                )
            from hone.onnx.sessions import session_for

            self.session = session_for(model_dir / name, threads=torch.get_num_threads())  # as --workers set
        else:
            self.session = None
        self.runtime = runtime
        return runtime

    def set_threads(self, threads: int) -> None:
        """Score with ``threads`` CPU threads (PyTorch's, or the ONNX sessions')."""
        torch.set_num_threads(threads)
        if self.session is not None:
            from hone.onnx.sessions import session_for

            self.session = session_for(self.session.path, threads=threads)

    @property
    def baseline_features(self) -> Any:
        """The baseline's feature function when the chosen model uses it (the graph's ``baseline`` input)."""
        return self.baseline.features if self.decision.uses_baseline and self.baseline is not None else None

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
        yield from self.outputs(self.iter_typed(table, batch_rows))

    def iter_typed(self, table: Table, batch_rows: int = BATCH_ROWS, *, where: str | None = None,
                   limit: int | None = None) -> Iterator[pa.RecordBatch]:
        """The table's rows as the model reads them (features cast to their training types; cells
        that do not convert are missing and counted), streaming; optionally filtered by a SQL
        ``where`` condition and cut to the first ``limit`` rows. Warns of what was read as missing."""
        check_columns(table, self.pre.schema.names(), "a feature the model was trained on")
        self.pre.bind(table.base_dir)
        query, checked = scoring_query(self.pre.schema, table, flag_prefix=_COERCED)
        if where is not None or limit is not None:
            query = (f"SELECT * FROM ({query}) AS scored" + (f" WHERE {where}" if where else "")
                     + (f" LIMIT {int(limit)}" if limit is not None else ""))
        self.coerced = dict.fromkeys(checked, 0)
        images = self.pre.images
        if images is not None:
            images.reset_counts()
        yield from self._count_coerced(stream(table, query, batch_rows), checked)
        if images is not None and images.unreadable:
            logger.warning("unreadable images scored as missing: %s (column missing_image_<name> marks the rows)",
                           ", ".join(f"{n} in {c!r}" for c, n in images.unreadable.items()))
        self.coerced = {c: n for c, n in self.coerced.items() if n}
        if self.coerced:
            logger.warning(
                "read as missing: %s",
                ", ".join(
                    f"{n} value(s) of {c!r} that are not finite {self._dtype(c)}" for c, n in self.coerced.items()
                ),
            )

    def _dtype(self, column: str) -> str:
        return next(c.dtype for c in self.pre.schema.columns if c.name == column)

    def outputs(self, batches: Iterable[pa.Table | pa.RecordBatch]) -> Iterator[tuple[pa.Table, np.ndarray]]:
        """``(batch, outputs)``: the chosen model's calibrated probabilities ``[B, K]`` (or values ``[B]``)."""
        dec = self.decision
        if self.session is not None:  # the graph holds the whole chosen model (hone.onnx.graph)
            from hone.onnx.sessions import onnx_outputs

            for t in as_tables(batches):
                yield t, onnx_outputs(self.session, self.pre, t, self.baseline_features, network=dec.uses_network)
            return
        if dec.uses_network:
            pairs: Iterable[tuple[pa.Table, np.ndarray | None]] = iter_outputs(
                self.net, self.pre, batches, precision=self.precision, device=self.device)
        else:
            pairs = ((t, None) for t in as_tables(batches))
        for t, net_out in pairs:
            base_out = self.baseline.outputs(t) if dec.uses_baseline and self.baseline is not None else None
            yield t, dec.combine(net_out, base_out)

    def _count_coerced(self, batches: Iterator[pa.RecordBatch], names: list[str]) -> Iterator[pa.RecordBatch]:
        for b in batches:
            if names:
                for c in names:
                    col = b.column(_COERCED + c)
                    self.coerced[c] += int(pc.sum(col).as_py() or 0)
                keep = [i for i, n in enumerate(b.schema.names) if not n.startswith(_COERCED)]
                b = pa.RecordBatch.from_arrays([b.column(i) for i in keep], names=[b.schema.names[i] for i in keep])
            yield b

    def _outputs(self, data: Any, with_targets: bool = False, encoding: str | None = None
                 ) -> tuple[np.ndarray, np.ndarray | None]:
        con = connect(keep_order=True)
        try:
            table = open_table(data, con, encoding=encoding)
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

    def predict_outputs(self, data: DataSource) -> np.ndarray:
        """The chosen model's outputs: calibrated probabilities ``[N, K]`` or values ``[N]``."""
        return self._outputs(data)[0]

    def predict_proba(self, data: DataSource) -> np.ndarray:
        """Class probabilities ``[N, K]``, columns ordered as :attr:`classes`."""
        if self.task == "regression":
            raise DataError("predict_proba is for classification models; this one does regression")
        return self._outputs(data)[0]

    def predict(self, data: DataSource) -> np.ndarray:
        """Predicted labels (classification) or values (regression), one per row."""
        out = self._outputs(data)[0]
        return self.labels_for(out)

    def labels_for(self, out: np.ndarray) -> np.ndarray:
        """Predicted labels from outputs, with the decision rule chosen on validation (a threshold)."""
        if self.task == "regression":
            return out
        return np.asarray(self.classes, dtype=object)[self.decision.predict(out)]

    def evaluate(self, data: DataSource, *, encoding: str | None = None) -> JSONDict:
        """Metrics on a labelled table (rows with a missing target are skipped)."""
        out, y = self._outputs(data, with_targets=True, encoding=encoding)
        assert y is not None
        return self.score(y, out)

    def score(self, y: np.ndarray, out: np.ndarray) -> JSONDict:
        """Metrics from encoded targets and network outputs."""
        if self.task == "regression":
            return regression_metrics(y * self.pre.target_std + self.pre.target_mean, out)
        return classification_metrics(y, out, self.classes, pred=self.decision.predict(out))

    def explain(self, data: DataSource, *, rows: int | None = None, where: str | None = None, steps: int | str = "auto",
                target_class: Label | None = None, encoding: str | None = None) -> list[JSONDict]:
        """Explain each prediction (see :mod:`hone.explain`): per input column, per word of the text
        columns, per region of the images, for the predicted class (or ``target_class``).

        Args:
            data: anything :meth:`predict` reads.
            rows: explain only the first ``rows`` rows.
            where: a SQL condition choosing the rows (``"amount > 100"``).
            steps: Integrated Gradients' integration steps, or ``auto``.
            target_class: explain this class instead of the predicted one.
        """
        from hone.explain import explain_rows

        return explain_rows(self, data, rows=rows, where=where, steps=steps, target_class=target_class,
                            encoding=encoding)

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
            for modality, src in self.assets.items():
                _copy_backbone_files(src, self.pre.modalities[modality], tmp / "backbones" / modality)
            if self.baseline is not None:
                self.baseline.save(tmp / "baseline")
            meta = {
                **self.meta,
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "net": asdict(self.net.spec),
                "preprocessor": self.pre.to_dict(),
                "precision": self.precision,
                "decision": self.decision.to_dict(),
                "versions": _versions(),
                "saved_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            }
            (tmp / "hone.json").write_text(json.dumps(meta, indent=2, default=str) + "\n", encoding="utf-8")
        return final


def _copy_backbone_files(src: Path, pre: Any, dst: Path) -> None:
    # The backbone's architecture config and the preprocessing assets (tokenizer) only: its
    # weights are in model.safetensors.
    dst.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src / "config.json", dst / "config.json")
    if (src / "preprocessor_config.json").is_file():  # a vision backbone's: kept with the model for reference
        shutil.copyfile(src / "preprocessor_config.json", dst / "preprocessor_config.json")
    pre.save_assets(dst)


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


def load(path: str | Path, *, device: str | None = None, precision: str | None = None,
         runtime: str = "torch") -> Model:
    """Load a model directory written by :meth:`Model.save` (or ``hone fit``).

    Args:
        path: the model folder.
        device: ``cpu``, ``cuda``...; default: a GPU if there is one.
        precision: ``fp32``, ``bf16`` or ``auto``; default: the precision the model was trained
            and evaluated with (recorded in ``hone.json``), so its metrics reproduce.
        runtime: ``torch``, ``onnx`` (fp32 graph), ``onnx-int8``, or ``auto``: the fastest that
            passed the export's parity check (``onnx.json``; torch when there is no export).

    Raises:
        ModelDirError: the folder is missing, or is not a hone model, or its files are broken.
    """
    root = Path(path)
    meta, weights = _read_folder(root)
    try:
        meta, weights, assets = migrate(meta, weights, root)
        for modality in meta["preprocessor"]["modalities"]:
            if FEATURES[modality].needs_assets and modality not in assets:
                raise ModelDirError(f"{str(root)!r} is incomplete: it has no backbones/{modality}/ folder "
                                    f"(the {modality} backbone's config and tokenizer files)")
        pre = Preprocessor.from_dict(meta["preprocessor"], assets)
        spec = NetSpec(**meta["net"])
        net = build_model(spec, assets, pretrained=False)
        net.load_state_dict(weights, strict=True)
        decision = Decision.from_dict(meta.get("decision"))
        baseline = load_baseline(root / "baseline", pre) if (root / "baseline").is_dir() else None
        if decision.uses_baseline and baseline is None:
            raise ModelDirError(
                f"{str(root)!r} is incomplete: its decision uses the baseline but it has no baseline/ folder"
            )
    except (KeyError, TypeError, RuntimeError, ValueError) as err:
        raise ModelDirError(f"{str(root)!r} is a broken hone model: {str(err).splitlines()[0][:300]}") from err
    dev = torch.device(device) if device else default_device()
    net.to(dev).eval()
    chosen = precision or meta.get("precision", "auto")
    if precision is None and chosen == "bf16" and dev.type == "cpu" and not cpu_has_fast_bf16():
        logger.warning("this model was trained and evaluated in bf16, which this CPU runs slowly (no native bf16); "
                       "pass precision='fp32' (--precision fp32) to score faster with slightly different numbers")
    model = Model(net, pre, meta, assets=assets, precision=chosen, baseline=baseline, decision=decision)
    model.use_runtime(runtime, root)
    return model


def _read_folder(root: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The description and the weights of a model folder, each checked (a clear error for each fault)."""
    from safetensors.torch import load_file

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
    weights_path = root / "model.safetensors"
    if not weights_path.is_file():
        raise ModelDirError(f"{str(root)!r} has no model.safetensors")
    try:
        weights = load_file(str(weights_path))
    except Exception as err:  # safetensors raises its own error type for truncated or corrupt files
        raise ModelDirError(f"{str(weights_path)!r} is damaged (truncated or not a safetensors file): "
                            f"{str(err).splitlines()[0][:200]}") from err
    return meta, weights
