"""hone federate server|client on Flower's deployment engine: a SuperLink and 2 SuperNodes on
127.0.0.1, each client reading only its own table; with differential privacy on. A tabular table:
Flower starts a process per message, and a text backbone's import would dominate the test's time."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytest.importorskip("flwr")

import hone  # noqa: E402
from hone.cli import main  # noqa: E402


def _supernodes(tmp_path: Path) -> list[str]:
    """Running flower-supernode processes serving this test's tables."""
    import os

    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "flower-supernode" in cmd and str(tmp_path) in cmd and int(proc.name) != os.getpid():
            found.append(cmd)
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_server_and_two_clients_over_loopback(tmp_path: Path, tab_table: pa.Table) -> None:
    import dp_accounting

    table = tab_table
    halves = [table.slice(0, 300), table.slice(300)]
    files = []
    for i, part in enumerate(halves):
        files.append(tmp_path / f"branch{i}.parquet")
        pq.write_table(part, files[-1])
    config = tmp_path / "run.yaml"
    config.write_text("""
data: {target: label}
train: {batch_size: 32, show_progress: false}
quality: {audit: false}
tracking: {enabled: false}
federated: {rounds: 1, min_clients: 2, dp_noise: 0.5, dp_clip: 5.0, dp_delta: 0.001}
""")
    port = _free_port()
    clients = [subprocess.Popen([sys.executable, "-m", "hone", "federate", "client", "--server", f"127.0.0.1:{port}",
                                 str(f), "--target", "label", "--insecure", "--name", f"branch-{i}",
                                 "--work", str(tmp_path / f"work{i}")], start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
               for i, f in enumerate(files)]
    out = tmp_path / "run"
    try:
        assert main(["federate", "server", "--config", str(config), "--address", f"127.0.0.1:{port}", "--insecure",
                     "--output", str(out), "--test", str(files[0])]) == 0
    finally:
        for c in clients:
            c.terminate()  # hone federate client stops its SuperNode on SIGTERM
        for c in clients:
            c.wait(timeout=30)
    assert not _supernodes(tmp_path), "a SuperNode outlived its hone federate client"
    fed = json.loads((out / "federated.json").read_text())
    assert sorted(s["name"] for s in fed["silos"]) == ["branch-0", "branch-1"]
    assert fed["rows"]["train"] + fed["rows"]["validation"] + fed["rows"]["test"] == table.num_rows
    # the epsilon is Flower's RDP accounting of 1 Gaussian release (a round) at noise multiplier 0.5
    acc = dp_accounting.rdp.RdpAccountant()
    acc.compose(dp_accounting.GaussianDpEvent(0.5), 1)
    assert fed["privacy"]["epsilon"] == pytest.approx(acc.get_epsilon(0.001), rel=1e-9)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_source"] and metrics["test"]["n"] == 300  # the server's own held-out table
    model = hone.load(out / "model")
    assert len(model.predict(str(files[1]))) == 300


def test_client_refuses_to_start_without_tls_or_insecure(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                         table: pa.Table) -> None:
    data = tmp_path / "d.parquet"
    pq.write_table(table, data)
    assert main(["federate", "client", "--server", "127.0.0.1:1", str(data), "--target", "label"]) == 2
    assert "--root-certificates" in capsys.readouterr().err
