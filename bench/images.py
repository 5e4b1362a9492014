"""Image columns: hone's fine-tuned MobileNetV2 against frozen embeddings + logistic regression and
LightGBM on raw pixels, on real labelled images; then images fused with tabular columns.

Data: Fashion-MNIST (Zalando, MIT), from Debian's `dataset-fashion-mnist` (installed with apt-get
when missing and this runs as root). A stratified sample of the training images is split into
train and validation; the test rows come from the official test set. The images are written as
PNG files and the table holds their relative paths, so hone reads them the way a user's folder of
photos is read (streamed, decoded per batch).

In one run, each in its own process (peak memory is the process's):
  - hone full:    `hone fit fashion.csv --target label --split-column split` (default strategy: full)
  - hone frozen:  the same with `--strategy frozen` (embeddings cached on disk, head only)
  - frozen + LR:  MobileNetV2 pooled embeddings (the same converted weights and preprocessing) +
                  logistic regression, C chosen on validation
  - LightGBM:     raw pixels (784 features), default settings, early stopping on validation
Figures: test macro-F1 of the network (hone) or the model, training images per second (hone full:
rows per second of its training loop; hone frozen: train images over its embedding pass, train and
validation, plus the head's training; frozen + LR: train images over their embedding + fit time;
LightGBM: train images over fit time) and peak memory.

Then the fused table: each image joins a numeric `price` and a categorical `store`; the label
`returned` depends on the garment (upper-body garments are returned more), the price and the
store, so no single kind of column decides it. hone fits it three times: all columns, image only
(`--ignore price,store`), tabular only (`--ignore photo`).

Then MobileNetV2's training and inference speed by input side (what `model.image_size: auto`
trades), and the input pipeline: decode + augment throughput of Pillow (hone's choice) against
kornia on tensors, and a one-epoch `hone fit` with `train.prefetch` 0 against 2 (a background thread).

Run:  python bench/images.py [--train 2000] [--valid 500] [--test 1000] [--image-size 112] [--skip-fused]
      [--skip-pipeline | --only-pipeline]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from _machine import machine_line

ROOT = Path(__file__).resolve().parents[1]
FASHION = Path("/usr/share/datasets/fashion-mnist")
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
UPPER = {0, 2, 4, 6}  # T-shirt/top, pullover, coat, shirt


def _idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def load_fashion() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    if not (FASHION / "train-images-idx3-ubyte.gz").is_file() and os.geteuid() == 0:
        subprocess.run(["apt-get", "install", "-y", "-q", "dataset-fashion-mnist"], check=False,
                       stdout=subprocess.DEVNULL)
    if not (FASHION / "train-images-idx3-ubyte.gz").is_file():
        sys.exit("Fashion-MNIST is missing: apt-get install dataset-fashion-mnist (as root)")
    return (_idx(FASHION / "train-images-idx3-ubyte.gz"), _idx(FASHION / "train-labels-idx1-ubyte.gz"),
            _idx(FASHION / "t10k-images-idx3-ubyte.gz"), _idx(FASHION / "t10k-labels-idx1-ubyte.gz"))


def _stratified(y: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    per = n // len(np.unique(y))
    return np.concatenate([rng.choice(np.flatnonzero(y == k), per, replace=False) for k in np.unique(y)])


def build(work: Path, n_train: int, n_valid: int, n_test: int) -> dict:
    """Write the PNGs, fashion.csv (photo, label, split), fused.csv and pixels.npz; return the arrays."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    from PIL import Image

    x_tr, y_tr, x_te, y_te = load_fashion()
    rng = np.random.default_rng(0)
    pick = _stratified(y_tr, n_train + n_valid, rng)
    rng.shuffle(pick)
    tr, va = pick[:n_train], pick[n_train:]
    te = _stratified(y_te, n_test, rng)
    images = np.concatenate([x_tr[tr], x_tr[va], x_te[te]])
    labels = np.concatenate([y_tr[tr], y_tr[va], y_te[te]])
    split = ["train"] * len(tr) + ["validation"] * len(va) + ["test"] * len(te)
    (work / "images").mkdir(parents=True, exist_ok=True)
    paths = []
    for i, img in enumerate(images):
        name = f"images/{i:06d}.png"
        Image.fromarray(img).save(work / name)
        paths.append(name)
    names = [CLASSES[k] for k in labels]
    pacsv.write_csv(pa.table({"photo": paths, "label": names, "split": split}), work / "fashion.csv")
    # the fused table: returned ~ garment + price + store, none decisive alone
    price = np.round(rng.lognormal(3.5, 0.5, len(labels)), 2)
    store = rng.choice(["online", "outlet", "flagship"], len(labels))
    z = (1.6 * np.isin(labels, list(UPPER)) + 1.6 * (np.log(price) - 3.5) / 0.5 + 1.4 * (store == "online")
         - 1.4 * (store == "flagship") + rng.normal(0, 0.6, len(labels)))
    returned = np.where(z > np.median(z), "yes", "no")
    pacsv.write_csv(pa.table({"photo": paths, "price": price, "store": store, "returned": returned, "split": split}),
                    work / "fused.csv")
    np.savez(work / "pixels.npz", x=images.reshape(len(images), -1), y=labels, split=np.array(split))
    return {"split": np.array(split), "labels": labels}


def hone_fit(work: Path, table: str, target: str, name: str, extra: list[str]) -> dict:
    out = work / "runs" / name
    cmd = [sys.executable, "-m", "hone", "fit", str(work / table), "--target", target, "--split-column", "split",
           "--output", str(out), "--overwrite", *extra]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "HONE_TRACKING": "off"})
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        print(proc.stdout[-2000:], proc.stderr[-4000:])
        raise SystemExit(f"{name}: hone fit failed")
    m = json.loads((out / "metrics.json").read_text())
    tr = m["training"]
    chosen = [ln for ln in proc.stderr.splitlines() + proc.stdout.splitlines() if ln.startswith("training ")]
    rate = tr["train_samples_per_second"]
    if tr["embedding_seconds"]:  # frozen: the embedding pass (train and validation images) counts as training time
        rate = tr["rows"]["train"] / (tr["train_seconds"] + tr["embedding_seconds"])
    return {"name": name, "macro_f1": m["network"]["macro_f1"], "chosen_macro_f1": m["test"]["macro_f1"],
            "chosen": m["model"]["chosen"], "images_per_s": rate,
            "peak_mb": tr["peak_memory_mb"], "seconds": round(wall, 1), "epochs": tr["epochs_run"],
            "train_seconds": tr["train_seconds"], "said": chosen[0][:400] if chosen else ""}


def peer(kind: str, work: Path, size: int) -> dict:
    """Run in a child process: frozen embeddings + LR, or LightGBM on pixels."""
    from sklearn.metrics import f1_score

    d = np.load(work / "pixels.npz")
    x, y, split = d["x"], d["y"], d["split"]
    tr, va, te = (split == "train"), (split == "validation"), (split == "test")
    n_tr = int(tr.sum())
    if kind == "lightgbm":
        import lightgbm as lgb

        t0 = time.perf_counter()
        model = lgb.LGBMClassifier(verbosity=-1, random_state=0, n_estimators=1000)
        model.fit(x[tr], y[tr], eval_set=[(x[va], y[va])], callbacks=[lgb.early_stopping(50, verbose=False)])
        fit_s = time.perf_counter() - t0
        pred = model.predict(x[te])
    else:
        import torch
        from PIL import Image
        from sklearn.linear_model import LogisticRegression
        from transformers import AutoModel

        from hone.features.image import IMAGENET_MEAN, IMAGENET_STD, center_view
        from hone.models.vision_weights import default_image_backbone

        torch.set_num_threads(len(os.sched_getaffinity(0)))
        net = AutoModel.from_pretrained(default_image_backbone()).eval()
        resize = round(size * 256 / 224)
        t0 = time.perf_counter()
        embs = []
        with torch.inference_mode():
            for i in range(0, len(x), 64):
                batch = np.stack([center_view(Image.fromarray(v.reshape(28, 28)).convert("RGB"), size, resize,
                                              list(IMAGENET_MEAN), list(IMAGENET_STD)) for v in x[i:i + 64]])
                embs.append(net(pixel_values=torch.from_numpy(batch)).last_hidden_state.mean((2, 3)).numpy())
        emb = np.concatenate(embs)
        embed_s = (time.perf_counter() - t0) * n_tr / len(x)  # the training images' share
        t1 = time.perf_counter()
        best = None
        for c in (0.1, 1.0, 10.0):
            lr = LogisticRegression(C=c, max_iter=2000).fit(emb[tr], y[tr])
            score = f1_score(y[va], lr.predict(emb[va]), average="macro")
            if best is None or score > best[0]:
                best = (score, lr)
        fit_s = embed_s + time.perf_counter() - t1
        pred = best[1].predict(emb[te])
    return {"name": {"lightgbm": "LightGBM, raw pixels", "frozen-lr": "frozen MobileNetV2 + LR"}[kind],
            "macro_f1": float(f1_score(y[te], pred, average="macro")), "images_per_s": n_tr / fit_s,
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "seconds": round(fit_s, 1)}


def run_peer(kind: str, work: Path, size: int) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--peer", kind, "--work", str(work), "--image-size", str(size)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        print(proc.stderr[-3000:])
        raise SystemExit(f"peer {kind} failed")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def pipeline_speed(work: Path, size: int, n: int = 256) -> list[str]:
    """Decode + augment throughput: Pillow per image (hone) against kornia on tensors (decode by Pillow)."""
    import torch
    from PIL import Image

    from hone.features.image import IMAGENET_MEAN, IMAGENET_STD, augment, normalise

    files = sorted((work / "images").glob("*.png"))[:n]
    aug = {"crop_scale": 0.6, "flip": True, "rotation": 10.0, "color_jitter": 0.2, "noise": 0.02}
    lines = []
    t0 = time.perf_counter()
    for i, f in enumerate(files):
        rng = np.random.default_rng([0, i])
        with Image.open(f) as img:
            x = normalise(augment(img.convert("RGB"), size, aug, rng, Image), list(IMAGENET_MEAN), list(IMAGENET_STD))
        x + rng.normal(0, 0.02, size=x.shape).astype(np.float32)
    pil = n / (time.perf_counter() - t0)
    lines.append(f"  Pillow, one thread: decode + crop/flip/rotate/jitter/noise at {size} px: {pil:,.0f} images/s")
    try:
        import kornia.augmentation as K
    except ImportError:
        lines.append("  kornia: not installed (pip install kornia) - not measured")
        return lines
    torch.manual_seed(0)
    pipe = torch.nn.Sequential(K.RandomResizedCrop((size, size), scale=(0.6, 1.0)), K.RandomHorizontalFlip(),
                               K.RandomRotation(10.0), K.ColorJitter(0.2, 0.2, 0.2), K.RandomGaussianNoise(std=0.02))
    t0 = time.perf_counter()
    for i in range(0, n, 32):
        batch = []
        for f in files[i:i + 32]:
            with Image.open(f) as img:
                arr = np.asarray(img.convert("RGB").resize((size, size), Image.BILINEAR), dtype=np.float32) / 255.0
            batch.append(arr.transpose(2, 0, 1))
        with torch.no_grad():
            pipe(torch.from_numpy(np.stack(batch)))
    kor = n / (time.perf_counter() - t0)
    lines.append(f"  kornia on batches of 32 (decode and resize by Pillow), torch threads {torch.get_num_threads()}: "
                 f"{kor:,.0f} images/s")
    return lines


def step_speed(sizes: tuple[int, ...] = (224, 160, 112, 96, 64), batch: int = 32) -> list[str]:
    """MobileNetV2 training steps (forward, backward, AdamW) and inference per input side: what
    model.image_size: auto trades."""
    import torch
    from transformers import AutoModel

    from hone.models.vision_weights import default_image_backbone

    torch.manual_seed(0)
    net = AutoModel.from_pretrained(default_image_backbone())
    opt = torch.optim.AdamW(net.parameters(), 1e-4)
    lines = []
    for size in sizes:
        x = torch.randn(batch, 3, size, size)
        net.train()
        for i in range(4):  # the first step warms up
            if i == 1:
                t0 = time.perf_counter()
            net(pixel_values=x).last_hidden_state.mean((2, 3)).sum().backward()
            opt.step()
            opt.zero_grad()
        train = 3 * batch / (time.perf_counter() - t0)
        net.eval()
        with torch.inference_mode():
            net(pixel_values=x)
            t0 = time.perf_counter()
            net(pixel_values=x)
            infer = batch / (time.perf_counter() - t0)
        lines.append(f"  {size:>4} px: training {train:6.1f} images/s, inference {infer:6.1f} images/s "
                     f"(batch {batch}, torch threads {torch.get_num_threads()})")
    return lines


def table(rows: list[dict]) -> str:
    out = [f"  {'run':<34} {'test macro-F1':>13} {'train img/s':>12} {'peak MB':>8} {'seconds':>8}"]
    for r in rows:
        out.append(f"  {r['name']:<34} {r['macro_f1']:>13.4f} {r['images_per_s']:>12.1f} {r['peak_mb']:>8.0f} "
                   f"{r['seconds']:>8.1f}")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", type=int, default=2000)
    ap.add_argument("--valid", type=int, default=500)
    ap.add_argument("--test", type=int, default=1000)
    ap.add_argument("--image-size", type=int, default=0, help="hone's model.image_size (0: hone's auto)")
    ap.add_argument("--skip-fused", action="store_true")
    ap.add_argument("--skip-pipeline", action="store_true")
    ap.add_argument("--only-pipeline", action="store_true", help="the input-pipeline figures alone")
    ap.add_argument("--work", default=str(ROOT / "runs" / "bench_images"))
    ap.add_argument("--peer", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    work = Path(a.work)
    if a.peer:
        print(json.dumps(peer(a.peer, work, a.image_size or 224)))
        return
    print(machine_line())
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    build(work, a.train, a.valid, a.test)
    print(f"Fashion-MNIST: {a.train} train / {a.valid} validation images (stratified sample of the training set), "
          f"{a.test} test images (official test set), 10 classes, 28 x 28 grey PNG files")
    size = ["--set", f"model.image_size={a.image_size}"] if a.image_size else []
    if a.only_pipeline:
        a.skip_fused = True
    else:
        models(work, a, size)
    if not a.skip_pipeline:
        pipeline(work, a, size)


def models(work: Path, a: argparse.Namespace, size: list[str]) -> None:
    full = hone_fit(work, "fashion.csv", "label", "hone --strategy full", size)
    side = a.image_size or int(json.loads((work / "runs" / "hone --strategy full" / "model" / "hone.json").read_text())
                               ["config"]["model"]["image_size"])
    frozen = hone_fit(work, "fashion.csv", "label", "hone --strategy frozen", [*size, "--strategy", "frozen"])
    rows = [full, frozen, run_peer("frozen-lr", work, side), run_peer("lightgbm", work, side)]
    print(f"\nimage side {side} px; hone's network (test:network), each peer's own model:")
    print(table(rows))
    for r in (full, frozen):
        print(f"  {r['name']}: {r['epochs']} epoch(s), training {r['train_seconds']:.1f} s; hone chose {r['chosen']} "
              f"(test macro-F1 {r['chosen_macro_f1']:.4f})\n    {r['said']}")
    beats = all(full["macro_f1"] > r["macro_f1"] for r in rows[1:])
    print(f"target: full fine-tune beats every baseline: {'yes' if beats else 'NO'}; "
          f"frozen beats LightGBM on pixels: {'yes' if frozen['macro_f1'] > rows[3]['macro_f1'] else 'NO'}")
    if not a.skip_fused:
        fused = [hone_fit(work, "fused.csv", "returned", "fused: image + price + store", size),
                 hone_fit(work, "fused.csv", "returned", "image only", [*size, "--ignore", "price,store"]),
                 hone_fit(work, "fused.csv", "returned", "tabular only", ["--ignore", "photo"])]
        print("\nfused table (returned ~ garment + price + store):")
        print(table(fused))
        ok = fused[0]["macro_f1"] > max(fused[1]["macro_f1"], fused[2]["macro_f1"])
        print(f"target: the fused network beats image-only and tabular-only: {'yes' if ok else 'NO'}")


def pipeline(work: Path, a: argparse.Namespace, size: list[str]) -> None:
    side = a.image_size or 112  # what auto gives 28-pixel images
    print("\nMobileNetV2 speed by input side:")
    for line in step_speed():
        print(line)
    print("\ninput pipeline:")
    for line in pipeline_speed(work, side):
        print(line)
    one = ["--epochs", "1", "--max-rows", "1000", "--no-audit", *size]
    p0 = hone_fit(work, "fashion.csv", "label", "prefetch 0", [*one, "--set", "train.prefetch=0"])
    p2 = hone_fit(work, "fashion.csv", "label", "prefetch 2", [*one, "--set", "train.prefetch=2"])
    print(f"  one epoch on 1,000 images: train.prefetch 0 {p0['images_per_s']:.1f} images/s, 2 (a background "
          f"thread) {p2['images_per_s']:.1f} images/s ({p2['images_per_s'] / p0['images_per_s']:.2f}x) on "
          f"{len(os.sched_getaffinity(0))} cores")


if __name__ == "__main__":
    main()
