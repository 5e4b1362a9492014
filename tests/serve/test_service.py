"""`hone serve` started on a free loopback port, called with good and bad requests, and stopped."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest

import hone
from hone.testing import make_table

from .server import running

TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def server(model_dir: Path):
    with running(model_dir, "--max-body-mb", "0.05", env={"HONE_TOKEN": TOKEN}) as (url, _):
        yield url


def _records(n: int, seed: int = 0) -> list[dict]:
    rows = make_table(n, seed=seed).to_pylist()
    return [{k: (str(v) if k == "when" else v) for k, v in r.items() if k not in ("label", "id")} for r in rows]


def _auth() -> dict:
    return {"Authorization": f"Bearer {TOKEN}"}


def test_predict_answers_what_the_model_answers(server: str, model_dir: Path) -> None:
    recs = _records(20, seed=9)
    r = httpx.post(server + "/predict", json={"records": recs}, headers=_auth(), timeout=30)
    assert r.status_code == 200, r.text
    body = r.json()
    model = hone.load(model_dir)
    table = make_table(20, seed=9)
    expected = model.predict_proba(table)
    got = np.array([[p[str(c)] for c in model.classes] for p in body["probabilities"]])
    assert np.allclose(got, expected, atol=1e-5)
    assert body["predictions"] == [str(v) for v in model.predict(table)]


def test_bad_requests_name_the_field(server: str) -> None:
    recs = _records(3)
    recs[1]["colour"] = "red"
    r = httpx.post(server + "/predict", json={"records": recs}, headers=_auth())
    assert r.status_code == 422 and "colour" in r.text and "1" in str(r.json()["detail"][0]["loc"])
    recs = _records(3)
    recs[2]["price"] = "cheap"
    r = httpx.post(server + "/predict", json={"records": recs}, headers=_auth())
    assert r.status_code == 422 and "price" in r.text
    recs = _records(2)
    del recs[0]["review"]
    r = httpx.post(server + "/predict", json={"records": recs}, headers=_auth())
    assert r.status_code == 422 and "review" in r.text
    assert httpx.post(server + "/predict", json={"records": []}, headers=_auth()).status_code == 422


def test_token_size_limit_metadata_and_docs(server: str) -> None:
    assert httpx.post(server + "/predict", json={"records": _records(1)}).status_code == 401
    assert httpx.post(server + "/predict", json={"records": _records(1)},
                      headers={"Authorization": "Bearer wrong"}).status_code == 401
    big = httpx.post(server + "/predict", json={"records": _records(400)}, headers=_auth())
    assert big.status_code == 413 and "limit" in big.text
    meta = httpx.get(server + "/metadata", headers=_auth()).json()
    assert meta["target"] == "label" and set(meta["classes"]) == {"pos", "neg"}
    assert {f["name"] for f in meta["features"]} >= {"review", "price", "store"} and "hone_version" in meta
    assert meta["runtime"] == "torch"  # auto, and the model has no ONNX export
    for page in ("/openapi.json", "/docs"):  # with a token, the schema and its page need it too
        assert httpx.get(server + page).status_code == 401
        assert httpx.get(server + page, headers=_auth()).status_code == 200
    assert httpx.get(server + "/health").json() == {"status": "ok"}


def test_concurrent_requests_are_answered_each_with_its_own_rows(server: str) -> None:
    def one(i: int) -> tuple[int, list]:
        recs = _records(3, seed=100 + i)
        r = httpx.post(server + "/predict", json={"records": recs}, headers=_auth(), timeout=60)
        assert r.status_code == 200, r.text
        return i, r.json()

    with ThreadPoolExecutor(16) as pool:
        bodies = dict(pool.map(one, range(32)))
    results = {i: b["probabilities"] for i, b in bodies.items()}
    assert all(len(p) == 3 for p in results.values())
    assert max(b["batch_rows"] for b in bodies.values()) > 3  # requests shared a model call
    for i in (0, 17, 31):  # the same rows alone give the same answer: no mix-up across requests
        alone = httpx.post(server + "/predict", json={"records": _records(3, seed=100 + i)}, headers=_auth()).json()
        assert np.allclose([list(p.values()) for p in alone["probabilities"]],
                           [list(p.values()) for p in results[i]], atol=1e-6)
