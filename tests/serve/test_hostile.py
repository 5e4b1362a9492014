"""`hone serve` against hostile requests (issue 33, family 5): a chunked body past the limit, values
that break JSON or Unicode, dates that are not dates, non-finite numbers, and a fuzz of thousands
of generated requests. The service never answers 500, never echoes a large body, keeps its memory
bounded and keeps answering ``/health``.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hone.testing import make_table

from .server import running

TOKEN = "fuzz-token"
LIMIT = 65_536  # --max-body-mb 0.0625
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


@pytest.fixture(scope="module")
def server(model_dir: Path):
    with running(model_dir, "--max-body-mb", str(LIMIT / 2**20), "--token", TOKEN) as (url, proc):
        yield url, proc


def _record(**change: object) -> dict:
    row = make_table(1, seed=3).to_pylist()[0]
    rec = {k: (str(v) if k == "when" else v) for k, v in row.items() if k not in ("label", "id")}
    return {**rec, **change}


def _post(url: str, body: bytes | dict, path: str = "/predict", **kw: object) -> httpx.Response:
    if isinstance(body, dict):
        body = json.dumps(body).encode()
    return httpx.post(url + path, content=body, headers={**AUTH, "content-type": "application/json"}, timeout=60, **kw)


def test_a_chunked_body_past_the_limit_is_refused_as_it_streams(server) -> None:
    url, proc = server
    before = _rss_kb(proc.pid)
    sent = []

    def chunks():  # 20 MB, no Content-Length: the limit must hold on the bytes as they arrive
        head = b'{"records": [' + json.dumps(_record()).encode()
        sent.append(len(head))
        yield head
        piece = b", " + json.dumps(_record(review="x" * 4000)).encode()
        for _ in range(20 * 2**20 // len(piece)):
            sent.append(len(piece))
            yield piece
        yield b"]}"

    try:
        r = httpx.post(url + "/predict", content=chunks(), headers={**AUTH, "content-type": "application/json"},
                       timeout=60)
        assert r.status_code == 413 and len(r.content) < 300, r.text[:300]
    except httpx.TransportError:
        pass  # the server may close the connection as soon as it answered
    assert sum(sent) < 20 * 2**20 or _rss_kb(proc.pid) - before < 15_000  # it did not read 20 MB into memory
    assert httpx.get(url + "/health").status_code == 200


def test_a_chunked_body_under_the_limit_is_served(server) -> None:
    url, _ = server
    body = json.dumps({"records": [_record(), _record(price=3.5)]}).encode()
    r = httpx.post(url + "/predict", content=iter([body[:50], body[50:]]),
                   headers={**AUTH, "content-type": "application/json"}, timeout=60)
    assert r.status_code == 200 and len(r.json()["predictions"]) == 2, r.text[:500]


HOSTILE = [  # (name, raw body, expected status, text the reply must contain)
    (
        "lone surrogate in a text field",
        b'{"records": [%s]}' % json.dumps(_record(review="\ud800 great")).encode(),
        422,
        "lone surrogate",
    ),
    ("lone surrogate in a category", b'{"records": [%s]}' % json.dumps(_record(store="\udfff")).encode(), 422, "store"),
    (
        "lone surrogate in a field name",
        b'{"records": [%s]}' % json.dumps({**_record(), "\ud800": 1}).encode(),
        422,
        "unicode",
    ),
    (
        "lone surrogate in a top-level field name",
        b'{"records": [%s], "\\udfff": 1}' % json.dumps(_record()).encode(),
        422,
        "udfff",
    ),
    ("not a date", json.dumps({"records": [_record(when="not-a-date")]}).encode(), 422, "not a date"),
    ("a date out of range", json.dumps({"records": [_record(when="2024-13-45")]}).encode(), 422, "when"),
    ("a huge integer as a number", b'{"records": [%s]}' % json.dumps(_record(price=10**400)).encode(), 422, "price"),
    ("a 50 KB string in a number field", json.dumps({"records": [_record(price="x" * 50_000)]}).encode(), 422, "price"),
    ("broken JSON", b'{"records": [{"review": "good"', 422, "json"),
    ("not JSON at all", b"\xff\xfe\x00garbage", 422, ""),
    ("JSON nested 20,000 deep", b"[" * 20_000 + b"]" * 20_000, 400, ""),
    ("records not a list", b'{"records": "many"}', 422, "records"),
    (
        "a thousand bad records",
        json.dumps({"records": [{"colour": i} for i in range(1000)]}).encode(),
        422,
        "more_errors",
    ),
]


@pytest.mark.parametrize("name,body,status,text", HOSTILE, ids=[c[0] for c in HOSTILE])
def test_hostile_requests_get_a_short_4xx(name: str, body: bytes, status: int, text: str, server) -> None:
    url, _ = server
    r = _post(url, body)
    assert r.status_code == status, (r.status_code, r.text[:500])
    assert len(r.content) < 8_000, len(r.content)  # an excerpt, never the body back
    assert text.lower() in r.text.lower(), r.text[:500]
    assert httpx.get(url + "/health").status_code == 200


@pytest.mark.parametrize("value", ["Infinity", "-Infinity", "NaN", "1e400", "-1e400"])
def test_non_finite_numbers_are_scored_as_missing(value: str, server) -> None:
    url, _ = server
    body = json.dumps({"records": [_record(price=0.0), _record(price=None)]}).replace(
        '"price": 0.0', f'"price": {value}'
    )
    r = _post(url, body.encode())
    assert r.status_code == 200, r.text[:300]
    got = r.json()
    assert all(np.isfinite(list(p.values())).all() for p in got["probabilities"])
    assert got["probabilities"][0] == got["probabilities"][1]  # the same as a missing price


def test_docs_and_schema_need_the_token(server) -> None:
    url, _ = server
    for path in ("/docs", "/openapi.json", "/redoc", "/metadata"):
        assert httpx.get(url + path).status_code == 401
    assert httpx.get(url + "/openapi.json", headers=AUTH).status_code == 200


# ---- the fuzz: thousands of generated requests --------------------------------------------------------------------

FIELDS = ["review", "title", "price", "store", "member", "when", "constant"]
scalars = (st.none() | st.booleans() | st.integers(-10 ** 30, 10 ** 30) | st.integers(-10**400, 10**400)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=40)
           | st.sampled_from(["2024-02-30", "not-a-date", "\ud800", "", " ", "9" * 400, "1e400", "NaN"]))
json_values = st.recursive(scalars, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids,
                                                                                             max_size=4), max_leaves=12)
records = st.fixed_dictionaries({}, optional={f: scalars for f in FIELDS}) | st.dictionaries(
    st.sampled_from(FIELDS) | st.text(max_size=6), json_values, max_size=8)
bodies = (st.builds(lambda rs: {"records": rs}, st.lists(records, max_size=5))
          | st.builds(lambda rs, steps, tc: {"records": rs, "steps": steps, "target_class": tc},
                      st.lists(records, max_size=2), json_values, json_values)
          | json_values)
requests_ = st.tuples(st.sampled_from(["POST /predict"] * 6 + ["POST /explain", "GET /metadata", "GET /health",
                                                                 "PUT /predict", "GET /nope", "POST /docs"]),
                      bodies | st.binary(max_size=300), st.booleans())


def test_a_fuzz_of_generated_requests_never_gets_a_500(server) -> None:
    url, proc = server
    seen: dict[int, int] = {}
    client = httpx.Client(base_url=url, timeout=60)
    before = _rss_kb(proc.pid)

    @given(batch=st.lists(requests_, min_size=10, max_size=10))
    @settings(max_examples=210, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    def fuzz(batch: list) -> None:
        for route, body, with_token in batch:
            method, path = route.split()
            content = body if isinstance(body, bytes) else json.dumps(body, allow_nan=True).encode(
                "utf-8", "surrogatepass")
            if path == "/explain" and isinstance(body, dict):  # a valid /explain is slow: keep its steps small
                content = content.replace(b'"steps"', b'"_steps"')
            r = client.request(method, path, content=content, headers={**(AUTH if with_token else {}),
                                                                       "content-type": "application/json"})
            seen[r.status_code] = seen.get(r.status_code, 0) + 1
            assert r.status_code < 500, (route, content[:300], r.text[:300])
            assert len(r.content) < 60_000

    fuzz()
    client.close()
    assert sum(seen.values()) >= 2000, seen
    assert seen.get(200, 0) > 0 and seen.get(422, 0) > 0 and seen.get(401, 0) > 0, seen
    assert _rss_kb(proc.pid) - before < 200_000, (before, _rss_kb(proc.pid))  # bounded: no leak per request
    assert httpx.get(url + "/health").status_code == 200
