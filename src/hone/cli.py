"""The ``hone`` command line: parse arguments, call ``hone.api``, print results, map errors to exit 2.

The ``fit`` flags are generated from the config fields listed in :data:`hone.config.FLAGS`: their
types, choices and help come from the pydantic field, so a setting is declared in one place.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
import time
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hone.config import command_flags
from hone.errors import UserError


class _Fitted(typing.Protocol):
    """What the CLI prints of a fitted model (it imports only the api)."""

    run_dir: Path | None

    def metrics_table(self) -> str: ...

class _ArgumentError(UserError):
    """A flag's value that the parser refuses (a wrong type, a number out of range, an unknown choice)."""


class _Parser(argparse.ArgumentParser):
    """argparse with one ``error:`` line (exit 2, through :func:`main`) instead of a usage block."""

    def error(self, message: str) -> typing.NoReturn:
        raise _ArgumentError(f"{self.prog}: {message} (see {self.prog} --help)")


def _number(kind: type, low: float | None = None, high: float | None = None, *, low_open: bool = False) -> Any:
    """An argparse ``type`` that parses an int or a float and checks it lies in [low, high]
    (``low_open``: above ``low``), so a value out of range is refused where it is parsed."""
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        if low is not None and (value <= low if low_open else value < low) or high is not None and value > high:
            span = (f"above {low:g}" if low_open else f"at least {low:g}") if high is None else \
                f"{'above' if low_open else 'from'} {low:g} {'and at most' if low_open else 'to'} {high:g}"
            raise argparse.ArgumentTypeError(f"{text} is out of range: it must be {span}")
        return value

    parse.__name__ = kind.__name__
    return parse


def _csv_list(text: str) -> list[str]:
    return [c.strip() for c in text.split(",") if c.strip()]


def _choices(annotation: Any) -> list[str] | None:
    """The string values of a ``Literal`` (possibly inside ``Optional`` or a ``Union``)."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is typing.Literal:
        return [str(a) for a in args]
    if args and all(typing.get_origin(a) is typing.Literal or a is type(None) for a in args):
        return [str(v) for a in args if a is not type(None) for v in typing.get_args(a)]
    return None


def _add_config_flags(p: argparse.ArgumentParser, names: tuple[str, ...]) -> None:
    """A flag per short name of the one flag table (:data:`hone.config.FLAGS`), typed by its config field."""
    from hone.config import FLAGS, field_of, flag_of

    for name in names:
        dotted = FLAGS[name]
        info = field_of(dotted)
        flag = flag_of(name)
        help_text = (info.description or "") + f" [{dotted}]"
        if info.annotation is bool:
            p.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        elif typing.get_origin(info.annotation) is list:
            p.add_argument(flag, dest=name, type=_csv_list, metavar="COLS", help=help_text + " (comma-separated)")
        else:
            p.add_argument(flag, dest=name, choices=_choices(info.annotation), metavar=None, help=help_text)


def _add_run_args(p: argparse.ArgumentParser) -> None:
    """The arguments of a command that leaves a run folder (hone fit, hone auto)."""
    p.add_argument("source", nargs="?", help="the labelled table (default: data.source of --config)")
    p.add_argument("--target", help="column to predict")
    p.add_argument("--config", help="run config YAML; flags override it")
    p.add_argument("--output", help="run directory (default: runs/<source name>)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --output once the new run succeeds")
    p.add_argument("--no-track", action="store_true", help="do not log this run to MLflow [tracking.enabled]")


def _add_set(p: argparse.ArgumentParser, example: str) -> None:
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help=f"any config field, e.g. --set {example} (repeatable)")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="hone", description="Fine-tune pretrained models on labelled tables.")
    p.add_argument("--version", action="store_true", help="print the version and exit")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    p.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    f = sub.add_parser("fit", help="fine-tune a model on a labelled table",
                       description="Fine-tune a model on SOURCE: a CSV/TSV/Parquet/JSONL file, a glob, a directory, "
                                   "or \"sql:SELECT ...\".")
    _add_run_args(f)
    f.add_argument("--resume", metavar="RUN_DIR", help="continue a killed or interrupted run from its last checkpoint "
                                                       "(with the config it started with)")
    _add_config_flags(f, command_flags("fit"))
    _add_set(f, "train.weight_decay=0.05")

    a = sub.add_parser("auto", help="the best model for the table in a time limit (trees, linear, the network, "
                                    "an ensemble)",
                       description="Within --time-limit (default 10m, the whole command): a portfolio of boosted "
                                   "trees (LightGBM, XGBoost, CatBoost), a random forest and extra trees and, with "
                                   "text, TF-IDF + linear, combined by greedy ensemble selection on validation, then "
                                   "the fine-tuned network in the time they leave; the same run folder, model and "
                                   "report as hone fit, with a leaderboard.")
    _add_run_args(a)
    _add_config_flags(a, command_flags("auto"))
    _add_set(a, "auto.ensemble_rounds=50")

    tu = sub.add_parser("tune", help="search the training configuration (Optuna), then refit the best one",
                        description="Search learning rate, epochs, batch size, regularisation (and LoRA rank or "
                                    "trainable layers) on the validation metric, pruning poor trials; the study in "
                                    "OUTPUT/study.db resumes with the same command; OUTPUT/best is the refitted run. "
                                    "--engine ray --workers N runs N trials at once as Ray Tune trials.")
    tu.add_argument("source", nargs="?", help="the labelled table (default: data.source of --config)")
    tu.add_argument("--target", help="column to predict")
    tu.add_argument("--config", help="run config YAML (its tune section: space, pruner...); flags override it")
    tu.add_argument("--output", help="study folder (default: runs/<source name>-tune)")
    tu.add_argument("--worker", metavar="OUTPUT", help=argparse.SUPPRESS)  # a --jobs process
    tu.add_argument("--no-track", action="store_true", help="do not log the search to MLflow [tracking.enabled]")
    _add_config_flags(tu, command_flags("tune"))
    tu.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                    help="any config field, e.g. --set tune.space.lr='{low: 1e-5, high: 1e-4, log: true}'")

    for cmd, what in (
        ("predict", "score a table with a saved model"),
        ("evaluate", "metrics of a saved model on a labelled table"),
    ):
        c = sub.add_parser(cmd, help=what)
        c.add_argument("model_dir")
        c.add_argument("source")
        c.add_argument("--precision", choices=["auto", "fp32", "bf16"],
                       help="override the precision the model was trained with (default: that one)")
        c.add_argument("--encoding", help="text encoding of CSV input: utf-8 (default), latin-1, utf-16")
        if cmd == "predict":
            c.add_argument("--output", required=True, help="output file: .parquet, .csv or .tsv")
            c.add_argument("--runtime", choices=["torch", "onnx", "onnx-int8", "auto"], default="torch",
                           help="scoring engine; onnx ones need 'hone export' first; auto: the fastest that "
                                "passed the export's parity check")
            c.add_argument("--threads", type=_number(int, 1, 1024),
                           help="threads for reading and scoring on this machine (default: all cores)")
            c.add_argument("--workers", type=_number(int, 1, 1024),
                           help="with --engine ray: Ray workers (actors) scoring at once (default 2)")
            c.add_argument(
                "--engine",
                choices=["local", "ray"],
                default="local",
                help="ray: score on a Ray Dataset with --workers actors, written as a folder of Parquet parts",
            )
            c.add_argument("--address", help="Ray cluster to join with --engine ray (default: a local Ray instance)")
            c.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                           help="a progress bar in rows/s with ETA (default: on a terminal)")
            c.add_argument("--keep", type=_csv_list, metavar="COLS", help="input columns to copy (default: all)")
        else:
            c.add_argument("--target", help="the target column (must be the one the model predicts)")
            c.add_argument("--output", help="also write the metrics to this JSON file")
    xp = sub.add_parser("explain", help="explain a saved model's predictions: per column, per word, per image region")
    xp.add_argument("model_dir")
    xp.add_argument("source")
    xp.add_argument("--output", required=True, help="output file: .parquet (every row) or .html (a page of row views)")
    xp.add_argument("--rows", type=_number(int, 1), help="explain only the first N rows (after --where)")
    xp.add_argument(
        "--where", metavar="SQL", help='explain only the rows matching this SQL condition, e.g. "amount > 100"'
    )
    xp.add_argument("--target-class", help="explain this class for every row (default: the predicted one)")
    xp.add_argument("--steps", default="auto", help="Integrated Gradients' integration steps (default auto: doubled "
                                                    "from 16 until the convergence delta is within 5%% of the gap)")
    xp.add_argument("--keep", type=_csv_list, metavar="COLS", help="input columns to copy to the output (e.g. an id)")
    xp.add_argument("--precision", choices=["auto", "fp32", "bf16"],
                    help="override the precision the model was trained with (default: that one)")
    xp.add_argument("--encoding", help="text encoding of CSV input: utf-8 (default), latin-1, utf-16")
    au = sub.add_parser("audit", help="find what is wrong with a labelled table (columns, duplicates, labels)")
    au.add_argument("source")
    au.add_argument("--target", required=True, help="column to predict")
    au.add_argument("--output", help="folder for audit.json and audit.html")
    au.add_argument("--config", help="run config YAML (its data and quality sections apply); flags override it")
    _add_config_flags(au, command_flags("audit"))
    au.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                    help="any config field, e.g. --set quality.label_error_rows=50000 (repeatable)")
    ex = sub.add_parser("export", help="export a saved model to ONNX (model.onnx in its folder), parity-checked")
    ex.add_argument("model_dir")
    ex.add_argument("--format", default="onnx", choices=["onnx"])
    ex.add_argument("--quantize", choices=["int8"], help="also write model.int8.onnx (dynamic int8 weights)")
    ex.add_argument("--data", help="rows to check parity on (default: rows made from the model's schema)")
    sv = sub.add_parser("serve", help="serve a saved model over HTTP (FastAPI: /predict, /health, /metadata, /docs)")
    sv.add_argument("model_dir")
    sv.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    sv.add_argument("--port", type=_number(int, 1, 65535), default=8000, help="TCP port (1-65535; default 8000)")
    sv.add_argument("--token", help="require 'Authorization: Bearer TOKEN' (default: $HONE_TOKEN, else none)")
    sv.add_argument(
        "--max-body-mb",
        type=_number(float, 0, 1024, low_open=True),
        default=1.0,
        help="largest request body accepted (default 1 MB)",
    )
    sv.add_argument("--runtime", choices=["torch", "onnx", "onnx-int8", "auto"], default="auto",
                    help="scoring engine (default auto: the fastest that passed the export's parity check, else torch)")
    _federate_parsers(sub)
    # hone federate server|client are reached through `hone federate`: not listed as commands of their own
    sub._choices_actions = [a for a in sub._choices_actions if a.dest not in ("federate-server", "federate-client")]
    rp = sub.add_parser("report", help="render RUN_DIR/report.html again from the run's files")
    rp.add_argument("run_dir")
    cp = sub.add_parser("compare", help="print runs' test metrics side by side (and render them with --output)")
    cp.add_argument("run_dirs", nargs="+")
    cp.add_argument("--output", help="also write an HTML page")
    return p


def _federate_parsers(sub: Any) -> None:
    fe = sub.add_parser(
        "federate", help="train one model across data silos with Flower (rows never leave their silo)",
        description="Simulate a federation on this machine: SOURCE is dealt into --silos N silos (at random, --by a "
                    "column, or with --skew Dirichlet label skew) and Flower's simulation engine runs hone's training "
                    "on each. For a real deployment: hone federate server --config run.yaml (the SuperLink) and, on "
                    "each silo, hone federate client --server HOST:PORT DATA --target Y.")
    fe.add_argument(
        "source", nargs="?", help="the labelled table to deal into silos (default: data.source of --config)"
    )
    fe.add_argument("--target", help="column to predict")
    fe.add_argument("--silos", type=_number(int, 1, 1000), help="how many silos (default 3; with --by, one per value)")
    fe.add_argument("--by", metavar="COLUMN", help="one silo per value of COLUMN (non-IID: a region, a branch...)")
    fe.add_argument(
        "--skew",
        type=_number(float, 0, low_open=True),
        metavar="ALPHA",
        help="Dirichlet label skew across silos (0.1 very skewed)",
    )
    fe.add_argument("--log-messages", metavar="DIR", help="write every message a client sends to DIR as it leaves")
    fe.add_argument("--resume", metavar="RUN_DIR", help="continue a killed federation after its last round")
    sv = sub.add_parser("federate-server", help=argparse.SUPPRESS,
                        description="hone federate server: start a Flower SuperLink and run the federation's server "
                                    "(no rows here: the silos' clients connect to it).")
    sv.add_argument("--address", dest="listen", default="0.0.0.0:9092",
                    help="HOST:PORT the SuperLink listens on (default 0.0.0.0:9092)")
    sv.add_argument("--target", help="column to predict (default: data.target of --config)")
    sv.add_argument("--test", help="a labelled table held by the server, scored once with the final model")
    sv.add_argument("--certificates", nargs=3, metavar=("CA_CERT", "SERVER_CERT", "SERVER_KEY"),
                    help="TLS: PEM files of the CA, the server's certificate and its private key")
    sv.add_argument("--insecure", action="store_true", help="no TLS (loopback or a trusted network only)")
    sv.add_argument("--auth-keys", nargs="+", metavar="PUBLIC_KEY",
                    help="SuperNode authentication: only clients holding these keys' private halves may join "
                         "(public key files, ECDSA SECP384R1 in OpenSSH format: ssh-keygen -t ecdsa -b 384)")
    sv.add_argument("--resume", action="store_true", help="continue the interrupted federation in --output")
    cl = sub.add_parser("federate-client", help=argparse.SUPPRESS,
                        description="hone federate client: serve this silo's table to a federation (a Flower "
                                    "SuperNode); only counts, sums and weights leave this machine.")
    cl.add_argument("source", help="this silo's labelled table")
    cl.add_argument("--server", required=True, metavar="HOST:PORT", help="the server's SuperLink")
    cl.add_argument("--target", required=True, help="column to predict (the server's)")
    cl.add_argument("--name", help="this silo's name in the server's log and report (default: the file's stem)")
    cl.add_argument("--work", help="folder for this silo's split and caches (default ~/.cache/hone/federate/NAME)")
    cl.add_argument("--root-certificates", metavar="CA_CERT", help="TLS: the CA certificate that signed the server's")
    cl.add_argument("--insecure", action="store_true", help="no TLS (loopback or a trusted network only)")
    cl.add_argument("--auth-key", metavar="PRIVATE_KEY", help="SuperNode authentication: this client's private key")
    for p in (fe, sv):
        p.add_argument("--config", help="run config YAML; flags override it")
        p.add_argument("--output", help="run directory (default: runs/<source name>)")
        p.add_argument("--overwrite", action="store_true", help="replace an existing --output once the run succeeds")
        _add_config_flags(p, command_flags("federate"))
        p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                       help="any config field, e.g. --set federated.dp_delta=1e-6 (repeatable)")


def _fit_overrides(a: argparse.Namespace) -> dict[str, Any]:
    import yaml

    from hone.config import FLAGS

    out = {name: getattr(a, name) for name in FLAGS if hasattr(a, name)}
    if getattr(a, "no_track", False):
        out["tracking.enabled"] = False
    for item in a.set:
        field, sep, value = item.partition("=")
        if not sep or not field:
            raise UserError(f"--set expects FIELD=VALUE, got {item!r}")
        try:
            out[field.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as err:
            raise UserError(f"--set {item!r}: the value is not valid YAML ({str(err).splitlines()[0]}); "
                            "quote it if it is text") from err
    return {k: v for k, v in out.items() if v is not None}


def _fit(a: argparse.Namespace) -> int:
    from hone import api

    how = {"resume": a.resume} if a.resume else {"overwrite": a.overwrite}
    model = api.fit(a.source, target=a.target, config=a.config, output=a.output, command=a.command_line,
                    started=a.started, **how,
                    **_fit_overrides(a))
    if model is not None:  # None: a data-parallel process other than the main one (rank 0 reports)
        _print_model(model)
    return 0


def _auto(a: argparse.Namespace) -> int:
    from hone import api

    model = api.auto(a.source, target=a.target, config=a.config, output=a.output, overwrite=a.overwrite,
                     command=a.command_line, started=a.started, **_fit_overrides(a))
    print(api.format_leaderboard(model.run_dir))
    _print_model(model)
    return 0


def _print_model(model: _Fitted) -> None:
    print(model.metrics_table())
    print(f"model: {Path(model.run_dir or '.') / 'model'}")


def _tune(a: argparse.Namespace) -> int:
    from hone import api

    if a.worker:
        api.tune_worker(a.worker)
        return 0
    summary = api.tune(a.source, target=a.target, config=a.config, output=a.output, command=a.command_line,
                       **_fit_overrides(a))
    print(format_tune(summary))
    return 0


def _predict(a: argparse.Namespace) -> int:
    from hone import api

    n = api.predict(a.model_dir, a.source, a.output, keep=a.keep, precision=a.precision, encoding=a.encoding,
                    runtime=a.runtime, threads=a.threads, progress=a.progress, engine=a.engine, workers=a.workers,
                    address=a.address)
    print(f"wrote {n} predictions to {a.output}" + ("/ (Parquet parts)" if a.engine == "ray" else ""))
    return 0


def _explain(a: argparse.Namespace) -> int:
    from hone import api

    done = api.explain(a.model_dir, a.source, a.output, rows=a.rows, where=a.where, target_class=a.target_class,
                       steps=a.steps, keep=a.keep, precision=a.precision, encoding=a.encoding)
    steps = f", {done['steps']} integration steps" if done.get("steps") else ""
    print(f"explained {done['rows']} rows in {done['seconds']:.1f} s ({done['rows_per_second']:.1f} rows/s{steps}); "
          f"wrote {a.output}")
    return 0


def _audit(a: argparse.Namespace) -> int:
    from hone import api

    print(api.audit(a.source, target=a.target, output=a.output, config=a.config, **_fit_overrides(a)))
    return 0


def _export(a: argparse.Namespace) -> int:
    from hone import api

    rec: dict[str, Any] = api.export(a.model_dir, format=a.format, quantize=a.quantize, data=a.data)
    for part in ("fp32", "int8"):
        if part in rec:
            r = rec[part]
            agree = f", label agreement {r['label_agreement']:.1%}" if "label_agreement" in r else ""
            print(f"{part}: max |onnx - torch| {r['max_abs_diff']:.1e}{agree}, {r['rows_per_s']:.0f} rows/s "
                  f"(torch {r['torch_rows_per_s']:.0f}) on {rec['rows_checked']} rows")
    print(f"wrote {Path(a.model_dir) / 'model.onnx'}" + (" and model.int8.onnx" if "int8" in rec else ""))
    return 0


def _serve(a: argparse.Namespace) -> int:
    from hone import api

    api.serve(a.model_dir, host=a.host, port=a.port, token=a.token, max_body_mb=a.max_body_mb, runtime=a.runtime)
    return 0


def _federate(a: argparse.Namespace) -> int:
    from hone import api

    if a.resume:
        model = api.federate(a.source, resume=a.resume, log_messages=a.log_messages, command=a.command_line)
    else:
        model = api.federate(a.source, target=a.target, config=a.config, output=a.output, overwrite=a.overwrite,
                             silos=a.silos, by=a.by, skew=a.skew, log_messages=a.log_messages, command=a.command_line,
                             **_fit_overrides(a))
    _print_model(model)
    return 0


def _federate_server(a: argparse.Namespace) -> int:
    from hone import api

    model = api.federate_server(a.config, listen=a.listen, target=a.target, output=a.output, test=a.test,
                                insecure=a.insecure, certificates=a.certificates, auth_keys=a.auth_keys,
                                resume=a.resume, overwrite=a.overwrite, **_fit_overrides(a))
    _print_model(model)
    return 0


def _federate_client(a: argparse.Namespace) -> int:
    from hone import api

    return api.federate_client(a.server, a.source, target=a.target, name=a.name, work=a.work, insecure=a.insecure,
                               root_certificates=a.root_certificates, auth_key=a.auth_key)


def _report(a: argparse.Namespace) -> int:
    from hone import api

    print(f"wrote {api.report(a.run_dir)}")
    return 0


def _compare(a: argparse.Namespace) -> int:
    from hone import api

    print(api.compare(a.run_dirs, a.output))
    return 0


def _evaluate(a: argparse.Namespace) -> int:
    from hone import api

    metrics = api.evaluate(a.model_dir, a.source, target=a.target, output=a.output, precision=a.precision,
                           encoding=a.encoding)
    print(api.format_metrics({"evaluation": metrics}))
    return 0


# One small function per command, each calling one hone.api function.
COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "fit": _fit, "auto": _auto, "tune": _tune, "predict": _predict, "explain": _explain, "audit": _audit,
    "export": _export, "serve": _serve, "federate": _federate, "federate-server": _federate_server,
    "federate-client": _federate_client, "report": _report, "compare": _compare, "evaluate": _evaluate,
}


def format_tune(summary: dict[str, Any]) -> str:
    """The console summary of a search: trials, the best parameters, importances, the refit's metrics."""
    best, refit = summary.get("best") or {}, summary.get("refit") or {}
    lines = [
        f"{summary['finished']} trial(s) finished ({summary['pruned']} pruned) in {summary['search_seconds']:.0f} s; "
        f"best: trial {best.get('number')} with validation {summary['metric']} {best.get('value', float('nan')):.4f}"
    ]
    lines += [f"  {k} = {v:.4g}" if isinstance(v, float) else f"  {k} = {v}" for k, v in best.get("params", {}).items()]
    default = next((t for t in summary.get("trials", []) if t.get("defaults")), None)
    if default is not None:
        shown = f"{default['value']:.4f}" if default.get("value") is not None else default["state"]
        lines.append(f"the default configuration (trial {default['number']}): validation {summary['metric']} {shown}")
    if summary.get("importances"):
        lines.append("importance: " + ", ".join(f"{k} {v:.2f}" for k, v in summary["importances"].items()))
    test = refit.get("test") or {}
    if test:
        lines.append(f"refit ({refit.get('fit_on')}): test " + ", ".join(
            f"{k} {v:.4f}" for k, v in test.items() if isinstance(v, float)))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hone`` console script."""
    started = time.monotonic()  # a --time-limit counts from here
    parser = _parser()
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) >= 2 and args[0] == "federate" and args[1] in ("server", "client"):
        args = [f"federate-{args[1]}", *args[2:]]  # hone federate server|client: Flower's deployment engine
    try:
        a = parser.parse_args(args)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if a.version:
        from hone._version import __version__

        print(f"hone {__version__}")
        return 0
    if not a.command:
        parser.print_help()
        return 2
    from hone._logging import configure

    configure(-1 if a.quiet else a.verbose)
    a.command_line = ["hone", *(sys.argv[1:] if argv is None else argv)]  # recorded in environment.json
    a.started = started
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
    try:
        return COMMANDS[a.command](a)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a file-system refusal met mid-way (disk full, permissions changed): one line
        if err.filename is None and err.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        where = f": {str(err.filename)!r}" if err.filename is not None else ""
        print(f"error: {err.strerror or err}{where}; nothing was left half-written", file=sys.stderr)
        return 2
    except Exception as err:  # noqa: BLE001  (DuckDB out of memory anywhere: a setting to raise, not a bug)
        if type(err).__name__ != "OutOfMemoryException" or not type(err).__module__.endswith("duckdb"):
            raise
        first = str(err).splitlines()[0][:200]
        print(f"error: DuckDB ran out of memory ({first}); raise its limit with --set data.memory_limit=2GB",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        then = {"fit": " (a fit that saved a checkpoint continues with hone fit --resume RUN_DIR)",
                "tune": " (the same command continues the search)"}.get(a.command, "")
        print(f"error: interrupted; nothing was left half-written{then}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
