"""The ``hone`` command line: parse arguments, call ``hone.api``, print results, map errors to exit 2."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from hone.errors import UserError


def _csv_list(text: str) -> list[str]:
    return [c.strip() for c in text.split(",") if c.strip()]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hone", description="Fine-tune pretrained models on labelled tables.")
    p.add_argument("--version", action="store_true", help="print the version and exit")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    p.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    f = sub.add_parser("fit", help="fine-tune a model on a labelled table",
                       description="Fine-tune a model on SOURCE: a CSV/TSV/Parquet/JSONL file, a glob, a directory, "
                                   "or \"sql:SELECT ...\".")
    f.add_argument("source", nargs="?", help="the labelled table (default: data.source of --config)")
    f.add_argument("--target", help="column to predict")
    f.add_argument("--config", help="run config YAML; flags override it")
    f.add_argument("--output", help="run directory (default: runs/<source name>)")
    f.add_argument("--overwrite", action="store_true", help="replace an existing --output once the new run succeeds")
    f.add_argument("--task", choices=["auto", "binary", "multiclass", "regression"])
    for role in ("text", "categorical", "numeric", "ignore"):
        f.add_argument(f"--{role}", type=_csv_list, metavar="COLS", help=f"comma-separated columns forced to {role}")
    f.add_argument("--group", help="keep rows sharing this column's value in one split")
    f.add_argument("--split-column", help="column holding train/validation/test")
    f.add_argument("--key", help="column identifying a row (for the split hash)")
    f.add_argument("--backbone", help="local Hugging Face model folder for text (default: bundled all-MiniLM-L6-v2)")
    f.add_argument("--preset", choices=["auto", "fast", "balanced", "best"],
                   help="fast = frozen backbone (cached embeddings), balanced = top-k layers, best = full fine-tune")
    f.add_argument("--strategy", choices=["auto", "full", "lora", "top-k", "frozen"],
                   help="which backbone weights train (overrides the preset's)")
    f.add_argument("--epochs", type=int)
    f.add_argument("--batch-size", type=int)
    f.add_argument("--lr", type=float, help="learning rate of the pretrained backbone")
    f.add_argument("--max-length", type=int, help="maximum tokens per text column")
    f.add_argument("--grad-accum", type=int, help="batches per optimiser step (gradient accumulation)")
    f.add_argument("--seed", type=int)
    f.add_argument("--max-rows", type=int, help="cap on training rows (deterministic random sample)")
    f.add_argument("--max-eval-rows", type=int, help="cap on validation and test rows")
    f.add_argument("--time-budget", type=float, metavar="SECONDS", help="stop training after this many seconds")
    f.add_argument("--precision", choices=["auto", "fp32", "bf16"])
    f.add_argument("--no-progress", action="store_true", help="no progress bar")
    f.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="any config field, e.g. --set train.weight_decay=0.05 (repeatable)")

    pr = sub.add_parser("predict", help="score a table with a saved model")
    pr.add_argument("model_dir")
    pr.add_argument("source")
    pr.add_argument("--output", required=True, help="output file: .parquet, .csv or .tsv")
    pr.add_argument("--keep", type=_csv_list, metavar="COLS", help="input columns to copy (default: all)")

    ev = sub.add_parser("evaluate", help="metrics of a saved model on a labelled table")
    ev.add_argument("model_dir")
    ev.add_argument("source")
    ev.add_argument("--target", help="the target column (must be the one the model predicts)")
    ev.add_argument("--output", help="also write the metrics to this JSON file")
    return p


def _fit_overrides(a: argparse.Namespace) -> dict[str, Any]:
    import yaml

    out = {"task": a.task, "text": a.text, "categorical": a.categorical, "numeric": a.numeric, "ignore": a.ignore,
           "group": a.group, "split_column": a.split_column, "key": a.key, "backbone": a.backbone,
           "epochs": a.epochs, "batch_size": a.batch_size, "lr": a.lr, "max_length": a.max_length, "grad_accum_steps": a.grad_accum, "seed": a.seed,
           "max_rows": a.max_rows, "max_eval_rows": a.max_eval_rows, "time_budget": a.time_budget,
           "precision": a.precision, "preset": a.preset, "strategy": a.strategy, "show_progress": False if a.no_progress else None}
    for item in a.set:
        field, sep, value = item.partition("=")
        if not sep or not field:
            raise UserError(f"--set expects FIELD=VALUE, got {item!r}")
        out[field.strip()] = yaml.safe_load(value)
    return {k: v for k, v in out.items() if v is not None}


def _run(a: argparse.Namespace) -> int:
    from hone import api

    if a.command == "fit":
        model = api.fit(a.source, target=a.target, config=a.config, output=a.output, overwrite=a.overwrite,
                        **_fit_overrides(a))
        print(model.metrics_table())
        print(f"model: {model.run_dir / 'model'}")
    elif a.command == "predict":
        n = api.predict(a.model_dir, a.source, a.output, keep=a.keep)
        print(f"wrote {n} predictions to {a.output}")
    elif a.command == "evaluate":
        from hone.evaluate.metrics import format_metrics

        metrics = api.evaluate(a.model_dir, a.source, target=a.target, output=a.output)
        print(format_metrics({"evaluation": metrics}))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hone`` console script."""
    parser = _parser()
    a = parser.parse_args(argv)
    if a.version:
        from hone._version import __version__

        print(f"hone {__version__}")
        return 0
    if not a.command:
        parser.print_help()
        return 2
    from hone._logging import configure

    configure(-1 if a.quiet else a.verbose)
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
    try:
        return _run(a)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted; nothing was left half-written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
