"""The ``hone`` command line: parse arguments, call ``hone.api``, print results, map errors to exit 2.

The ``fit`` flags are generated from the config fields listed in :data:`hone.config.FLAGS`: their
types, choices and help come from the pydantic field, so a setting is declared in one place.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hone.errors import UserError

# Flag spellings that differ from the keyword name (kept for the commands people already use).
_CLI_NAMES = {"grad_accum_steps": "--grad-accum", "show_progress": "--progress"}


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


_AUDIT_FLAGS = ("task", "text", "categorical", "numeric", "ignore", "key", "group", "split_column", "near_duplicates",
                "encoding", "label_errors", "label_error_threshold", "label_error_rows")


def _add_config_flags(p: argparse.ArgumentParser, only: tuple[str, ...] | None = None) -> None:
    from hone.config import FLAGS, field_of

    for name, dotted in FLAGS.items():
        if only is not None and name not in only:
            continue
        info = field_of(dotted)
        flag = _CLI_NAMES.get(name, "--" + name.replace("_", "-"))
        help_text = (info.description or "") + f" [{dotted}]"
        if info.annotation is bool:
            p.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        elif typing.get_origin(info.annotation) is list:
            p.add_argument(flag, dest=name, type=_csv_list, metavar="COLS", help=help_text + " (comma-separated)")
        else:
            p.add_argument(flag, dest=name, choices=_choices(info.annotation), metavar=None, help=help_text)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="hone", description="Fine-tune pretrained models on labelled tables.")
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
    f.add_argument("--no-track", action="store_true", help="do not log this run to MLflow [tracking.enabled]")
    f.add_argument("--resume", metavar="RUN_DIR", help="continue a killed or interrupted run from its last checkpoint "
                                                       "(with the config it started with)")
    _add_config_flags(f)
    f.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="any config field, e.g. --set train.weight_decay=0.05 (repeatable)")

    tu = sub.add_parser("tune", help="search the training configuration (Optuna), then refit the best one",
                        description="Search learning rate, epochs, batch size, regularisation (and LoRA rank or "
                                    "trainable layers) on the validation metric, pruning poor trials; the study in "
                                    "OUTPUT/study.db resumes with the same command; OUTPUT/best is the refitted run. "
                                    "--engine ray --workers N runs N trials at once as Ray Tune trials.")
    tu.add_argument("source", nargs="?", help="the labelled table (default: data.source of --config)")
    tu.add_argument("--target", help="column to predict")
    tu.add_argument("--config", help="run config YAML (its tune section: space, pruner...); flags override it")
    tu.add_argument("--output", help="study folder (default: runs/<source name>-tune)")
    tu.add_argument("--trials", type=_number(int, 1), help="finished trials to run (default 20) [tune.trials]")
    tu.add_argument("--timeout", help="time for the whole command, search and refit: 2h, 90m, 45s [tune.timeout]")
    tu.add_argument("--jobs", type=_number(int, 1, 256), help="processes sharing the study (default 1) [tune.jobs]")
    tu.add_argument("--pruner", choices=["median", "hyperband", "none"], help="[tune.pruner]")
    tu.add_argument("--sampler", choices=["tpe", "random"], help="[tune.sampler]")
    tu.add_argument("--searcher", choices=["optuna", "hyperopt"],
                    help="with --engine ray: Ray Tune's search algorithm (default optuna) [tune.searcher]")
    tu.add_argument("--refit", choices=["train", "train+validation"], help="rows of the final fit [tune.refit]")
    tu.add_argument("--worker", metavar="OUTPUT", help=argparse.SUPPRESS)  # a --jobs process
    tu.add_argument("--no-track", action="store_true", help="do not log the search to MLflow [tracking.enabled]")
    _add_config_flags(tu)
    tu.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                    help="any config field, e.g. --set tune.space.lr='{low: 1e-5, high: 1e-4, log: true}'")

    for cmd, what in (("predict", "score a table with a saved model"), ("evaluate", "metrics of a saved model on a labelled table")):
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
            c.add_argument("--workers", type=_number(int, 1, 1024), help="threads for reading and scoring (default: all cores); "
                                                       "with --engine ray, Ray actors (default 2)")
            c.add_argument("--engine", choices=["local", "ray"], default="local",
                           help="ray: score on a Ray Dataset with --workers actors, written as a folder of Parquet parts")
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
    xp.add_argument("--where", metavar="SQL", help="explain only the rows matching this SQL condition, e.g. \"amount > 100\"")
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
    _add_config_flags(au, _AUDIT_FLAGS)
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
    sv.add_argument("--max-body-mb", type=_number(float, 0, 1024, low_open=True), default=1.0, help="largest request body accepted (default 1 MB)")
    sv.add_argument("--runtime", choices=["torch", "onnx", "onnx-int8", "auto"], default="auto",
                    help="scoring engine (default auto: the fastest that passed the export's parity check, else torch)")
    _federate_parsers(sub)
    rp = sub.add_parser("report", help="render RUN_DIR/report.html again from the run's files")
    rp.add_argument("run_dir")
    cp = sub.add_parser("compare", help="print runs' test metrics side by side (and render them with --output)")
    cp.add_argument("run_dirs", nargs="+")
    cp.add_argument("--output", help="also write an HTML page")
    return p


_FEDERATE_FLAGS = {  # flag: (config field, type, help)
    "--rounds": ("federated.rounds", int, "federated rounds (default 10)"),
    "--local-epochs": ("federated.local_epochs", float, "passes over its training split each client makes per round"),
    "--proximal-mu": ("federated.proximal_mu", float, "FedProx's mu (default 0.01)"),
    "--min-fraction": ("federated.min_fraction", float, "share of a round's clients that must reply (default 0.5)"),
    "--min-clients": ("federated.min_clients", int, "clients the server waits for before round 1"),
    "--dp-noise": ("federated.dp_noise", float, "differential privacy: Gaussian noise multiplier (off by default)"),
    "--dp-clip": ("federated.dp_clip", float, "differential privacy: L2 clipping norm of a client's update"),
    "--dp-delta": ("federated.dp_delta", float, "differential privacy: the delta epsilon is reported at"),
}


def _federate_parsers(sub: Any) -> None:
    from hone.config import FLAGS, StrategyName

    common = [n for n in FLAGS if n not in ("strategy", "engine", "workers", "address", "model", "threshold_objective")]
    fe = sub.add_parser(
        "federate", help="train one model across data silos with Flower (rows never leave their silo)",
        description="Simulate a federation on this machine: SOURCE is dealt into --silos N silos (at random, --by a "
                    "column, or with --skew Dirichlet label skew) and Flower's simulation engine runs hone's training "
                    "on each. For a real deployment: hone federate server --config run.yaml (the SuperLink) and, on "
                    "each silo, hone federate client --server HOST:PORT DATA --target Y.")
    fe.add_argument("source", nargs="?", help="the labelled table to deal into silos (default: data.source of --config)")
    fe.add_argument("--target", help="column to predict")
    fe.add_argument("--silos", type=_number(int, 1, 1000), help="how many silos (default 3; with --by, one per value)")
    fe.add_argument("--by", metavar="COLUMN", help="one silo per value of COLUMN (non-IID: a region, a branch...)")
    fe.add_argument("--skew", type=_number(float, 0, low_open=True), metavar="ALPHA", help="Dirichlet label skew across silos (0.1 very skewed)")
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
    for p, model_flags in ((fe, True), (sv, True)):
        p.add_argument("--config", help="run config YAML; flags override it")
        p.add_argument("--output", help="run directory (default: runs/<source name>)")
        p.add_argument("--overwrite", action="store_true", help="replace an existing --output once the run succeeds")
        p.add_argument("--strategy", dest="fl_strategy", choices=["fedavg", "fedprox"],
                       help="aggregation: fedavg (default) or fedprox [federated.strategy]")
        p.add_argument("--fine-tuning", dest="strategy", choices=["auto", *typing.get_args(StrategyName)],
                       help="what each client trains: frozen, top-k, lora or full [model.strategy]")
        for flag, (_, typ, what) in _FEDERATE_FLAGS.items():
            p.add_argument(flag, dest="fl_" + flag[2:].replace("-", "_"), type=typ, help=what)
        _add_config_flags(p, tuple(common))
        p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                       help="any config field, e.g. --set federated.dp_delta=1e-6 (repeatable)")


def _federate_overrides(a: argparse.Namespace) -> dict[str, Any]:
    out = _fit_overrides(a)
    if getattr(a, "fl_strategy", None):
        out["federated.strategy"] = a.fl_strategy
    for flag, (dotted, _, _) in _FEDERATE_FLAGS.items():
        v = getattr(a, "fl_" + flag[2:].replace("-", "_"), None)
        if v is not None:
            out[dotted] = v
    return out


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


def _run(a: argparse.Namespace) -> int:
    from hone import api

    if a.command == "fit":
        how = {"resume": a.resume} if a.resume else {"overwrite": a.overwrite}
        model = api.fit(a.source, target=a.target, config=a.config, output=a.output, **how, **_fit_overrides(a))
        if model is None:  # a data-parallel process other than the main one: rank 0 reports
            return 0
        print(model.metrics_table())
        print(f"model: {model.run_dir / 'model'}")
    elif a.command == "tune" and a.worker:
        from hone.tune.study import run_worker

        run_worker(Path(a.worker))
    elif a.command == "tune":
        extra = {k: getattr(a, k) for k in ("trials", "timeout", "jobs", "pruner", "sampler", "searcher", "refit")}
        summary = api.tune(a.source, target=a.target, config=a.config, output=a.output,
                           **{k: v for k, v in extra.items() if v is not None}, **_fit_overrides(a))
        print(format_tune(summary))
    elif a.command == "predict" and a.engine == "ray":
        from hone.distributed.ray_predict import predict_on_ray

        n = predict_on_ray(a.model_dir, a.source, a.output, keep=a.keep, workers=a.workers or 2,
                           precision=a.precision, runtime=a.runtime, address=a.address)
        print(f"wrote {n} predictions to {a.output}/ (Parquet parts)")
    elif a.command == "predict":
        n = api.predict(a.model_dir, a.source, a.output, keep=a.keep, precision=a.precision, encoding=a.encoding,
                        runtime=a.runtime, workers=a.workers, progress=a.progress)
        print(f"wrote {n} predictions to {a.output}")
    elif a.command == "explain":
        done = api.explain(a.model_dir, a.source, a.output, rows=a.rows, where=a.where, target_class=a.target_class,
                           steps=a.steps, keep=a.keep, precision=a.precision, encoding=a.encoding)
        steps = f", {done['steps']} integration steps" if done.get("steps") else ""
        print(f"explained {done['rows']} rows in {done['seconds']:.1f} s ({done['rows_per_second']:.1f} rows/s{steps}); "
              f"wrote {a.output}")
    elif a.command == "audit":
        print(api.audit(a.source, target=a.target, output=a.output, config=a.config, **_fit_overrides(a)))
    elif a.command == "export":
        rec = api.export(a.model_dir, format=a.format, quantize=a.quantize, data=a.data)
        for part in ("fp32", "int8"):
            if part in rec:
                r = rec[part]
                agree = f", label agreement {r['label_agreement']:.1%}" if "label_agreement" in r else ""
                print(f"{part}: max |onnx - torch| {r['max_abs_diff']:.1e}{agree}, {r['rows_per_s']:.0f} rows/s "
                      f"(torch {r['torch_rows_per_s']:.0f}) on {rec['rows_checked']} rows")
        print(f"wrote {Path(a.model_dir) / 'model.onnx'}" + (" and model.int8.onnx" if "int8" in rec else ""))
    elif a.command == "serve":
        from hone.serve import serve

        serve(a.model_dir, host=a.host, port=a.port, token=a.token, max_body_bytes=int(a.max_body_mb * 2**20),
              runtime=a.runtime)
    elif a.command == "federate":
        from hone.federated.simulate import federate

        if a.resume:
            model = federate(a.source, resume=a.resume, log_messages=a.log_messages)
        else:
            model = federate(a.source, target=a.target, config=a.config, output=a.output, overwrite=a.overwrite,
                             silos=a.silos, by=a.by, skew=a.skew, log_messages=a.log_messages, **_federate_overrides(a))
        print(model.metrics_table())
        print(f"model: {model.run_dir / 'model'}")
    elif a.command == "federate-server":
        from hone.config import build_config
        from hone.federated.deploy import run_server

        host, _, port = a.listen.rpartition(":")
        if not host or not port.isdigit():
            raise UserError(f"--address {a.listen!r}: expected HOST:PORT, e.g. 0.0.0.0:9092")
        from hone.config import FLAGS

        dotted = {FLAGS.get(k, k): v for k, v in _federate_overrides(a).items()}
        cfg = build_config(a.config, {**dotted, "data.target": a.target})
        if cfg.data.target is None:
            raise UserError("the server needs the target column: data.target in --config, or --target")
        out = a.output or f"runs/{cfg.name or 'federated'}"
        run_dir = run_server(cfg, out, host=host, port=int(port), test=a.test, insecure=a.insecure,
                             certificates=tuple(a.certificates) if a.certificates else None, auth_keys=a.auth_keys,
                             resume=a.resume, overwrite=a.overwrite)
        from hone import load

        print(load(run_dir / "model").metrics_table())
        print(f"model: {run_dir / 'model'}")
    elif a.command == "federate-client":
        from hone.federated.deploy import run_client

        return run_client(a.server, a.source, a.target, name=a.name, work=a.work, insecure=a.insecure,
                          root_certificates=a.root_certificates, auth_key=a.auth_key)
    elif a.command == "report":
        print(f"wrote {api.report(a.run_dir)}")
    elif a.command == "compare":
        print(api.compare(a.run_dirs, a.output))
    elif a.command == "evaluate":
        from hone.evaluate.metrics import format_metrics

        metrics = api.evaluate(a.model_dir, a.source, target=a.target, output=a.output, precision=a.precision,
                               encoding=a.encoding)
        print(format_metrics({"evaluation": metrics}))
    return 0


def format_tune(summary: dict[str, Any]) -> str:
    """The console summary of a search: trials, the best parameters, importances, the refit's metrics."""
    best, refit = summary.get("best") or {}, summary.get("refit") or {}
    lines = [f"{summary['finished']} trial(s) finished ({summary['pruned']} pruned) in {summary['search_seconds']:.0f} s; "
             f"best: trial {best.get('number')} with validation {summary['metric']} {best.get('value', float('nan')):.4f}"]
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
    from hone import _provenance

    _provenance.command_line = ["hone", *(sys.argv[1:] if argv is None else argv)]
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
    try:
        return _run(a)
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
    finally:
        _provenance.command_line = None


if __name__ == "__main__":
    raise SystemExit(main())
