"""``hone federate server`` and ``hone federate client``: the federation on Flower's deployment engine.

The server command starts a SuperLink, submits hone's Flower App (``flower_app/``) to it with the run
config, waits for the rounds and leaves the run folder; the client command starts a SuperNode that
connects to the SuperLink and runs hone's ClientApp on its own table only. Both start Flower with
runtime dependency installation off: the app runs in the installed environment."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from hone._io import atomic_path
from hone._logging import get_logger
from hone.errors import ConfigError, FederationError

logger = get_logger("hone.federate")

APP_DIR = Path(__file__).parent / "flower_app"


def serve_run(grid: Any, cfg_tree: dict[str, Any], checkpoints: str, output: str, test: str | None) -> None:
    """The ServerApp's body under the deployment engine: the rounds, then the run folder ``output``."""
    from hone._logging import configure
    from hone.config import build_config
    from hone.federated.package import finish, write_run
    from hone.federated.server import run_rounds

    configure(0)  # this is Flower's ServerApp process: hone's round lines go to its log, which flwr run streams
    started = time.time()
    cfg = build_config(cfg_tree)
    run_dir = Path(output)
    with atomic_path(run_dir) as stage:
        stage.mkdir(parents=True)
        outcome = run_rounds(grid, cfg, Path(checkpoints))
        files = finish(outcome, stage, test=test, started=started)
        write_run(stage, files, run_dir.name, started)
    logger.info("saved run to %s (model in %s)", run_dir, run_dir / "model")


def _flower_env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    # Flower starts its own helpers (flower-superexec, flwr-serverapp, flwr-clientapp) by name
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update({"FLWR_HOME": str(home), "FLWR_TELEMETRY_ENABLED": "0", "FLWR_DISABLE_UPDATE_CHECK": "1",
                "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1", "RAY_USAGE_STATS_ENABLED": "0"})
    return env


def _bin(name: str) -> str:
    path = Path(sys.executable).parent / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if found is None:
        from hone.errors import MissingDependencyError

        raise MissingDependencyError(f"{name} not found: pip install -c constraints.txt 'hone[federated]'")
    return found


def _wait_port(host: str, port: int, proc: subprocess.Popen[Any], timeout: float = 60.0) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise FederationError(f"the Flower SuperLink exited with code {proc.returncode} before listening on "
                                  f"{host}:{port} (is the port taken?)")
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex((host if host != "0.0.0.0" else "127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise FederationError(f"the Flower SuperLink did not listen on {host}:{port} within {timeout:.0f} s")


def _stop(proc: subprocess.Popen[Any] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def tls_flags(certificates: tuple[str, str, str] | None, insecure: bool) -> list[str]:
    """The SuperLink's TLS flags: ``certificates`` is (CA, server certificate, server key) in PEM."""
    if insecure:
        return ["--insecure"]
    if certificates is None:
        raise ConfigError("pass --certificates CA_CERT SERVER_CERT SERVER_KEY for TLS, or --insecure to run "
                          "without it (loopback tests, a trusted network)")
    ca, cert, key = certificates
    for p in (ca, cert, key):
        if not Path(p).is_file():
            raise ConfigError(f"certificate file {p!r} does not exist")
    return ["--ssl-ca-certfile", ca, "--ssl-certfile", cert, "--ssl-keyfile", key]


def run_server(cfg: Any, output: str | Path, *, host: str = "0.0.0.0", port: int = 9092, test: str | None = None,
               insecure: bool = False, certificates: tuple[str, str, str] | None = None,
               auth_keys: list[str] | None = None, resume: bool = False, overwrite: bool = False) -> Path:
    """Start a SuperLink on ``host:port``, submit the federation and wait for it; returns the run folder.

    ``auth_keys``: public key files of the SuperNodes allowed to join (Flower's SuperNode authentication:
    the SuperLink starts with ``--enable-supernode-auth`` and each key is registered; a client starts with
    its private key, ``--auth-key``). ``resume``: continue a killed server's run in ``output`` after its
    last round."""
    from hone.federated.simulate import import_flower

    import_flower()
    run_dir = Path(output).resolve()
    checkpoints = run_dir / "checkpoints"
    if run_dir.exists() and (run_dir / "metrics.json").is_file() and not overwrite:
        raise ConfigError(f"run directory {str(run_dir)!r} already holds a finished run; pass --overwrite or "
                          "another --output")
    if not resume:
        from hone.federated.server import latest_round

        if latest_round(checkpoints) is not None and not overwrite:
            raise ConfigError(f"{str(run_dir)!r} holds an interrupted federation: continue it with --resume, or "
                              "pass --overwrite to start over")
        shutil.rmtree(checkpoints, ignore_errors=True)
    checkpoints.mkdir(parents=True, exist_ok=True)
    home = checkpoints / "flower"
    home.mkdir(exist_ok=True)
    flags = tls_flags(certificates, insecure)
    address = f"{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}"
    conn = [f'address = "{address}"']
    conn.append("insecure = true" if insecure else f'root-certificates = "{Path(certificates[0]).resolve()}"')  # type: ignore[index]
    (home / "config.toml").write_text('[superlink]\ndefault = "hone"\n\n[superlink.hone]\n' + "\n".join(conn) + "\n")
    env = _flower_env(home)
    link_cmd = [_bin("flower-superlink"), *flags, "--host", host, "--port", str(port),
                "--disable-runtime-dependency-installation"]
    if auth_keys:
        link_cmd.append("--enable-supernode-auth")
    overrides = checkpoints / "run-config.toml"
    tree = cfg.model_dump(mode="json", exclude_unset=True)
    overrides.write_text("\n".join(f"{k} = {json.dumps(v)}" for k, v in {
        "hone-config": json.dumps(tree), "checkpoints": str(checkpoints), "output": str(run_dir),
        "test": str(Path(test).resolve()) if test else ""}.items()) + "\n")
    link = None
    try:
        link = subprocess.Popen(link_cmd, env=env, start_new_session=True)
        _wait_port(host, port, link)
        logger.info("Flower SuperLink listening on %s:%d (%s); clients connect with: hone federate client "
                    "--server HOST:%d DATA --target %s", host, port, "no TLS" if insecure else "TLS", port,
                    cfg.data.target)
        if auth_keys:
            _register_supernodes(auth_keys, env)
        run = subprocess.run([_bin("flwr"), "run", str(APP_DIR), "hone", "--run-config", str(overrides), "--stream"],
                             env=env, check=False)
        if not (run_dir / "metrics.json").is_file():
            raise FederationError(f"the federation did not finish (flwr run exited with {run.returncode}; see the "
                                  f"log above); continue it with: hone federate server ... --output {run_dir} --resume")
    finally:
        _stop(link)
    return run_dir


def _register_supernodes(keys: list[str], env: dict[str, str]) -> None:
    """Register each allowed SuperNode's public key file with the SuperLink (``flwr supernode register``)."""
    for key in keys:
        if not Path(key).is_file():
            raise ConfigError(f"public key file {key!r} does not exist")
        subprocess.run([_bin("flwr"), "supernode", "register", str(Path(key).resolve()), "hone"], env=env, check=True,
                       stdout=subprocess.DEVNULL)


def run_client(server: str, data: str, target: str, *, name: str | None = None, work: str | None = None,
               insecure: bool = False, root_certificates: str | None = None, auth_key: str | None = None,
               port: int | None = None) -> int:
    """Start a SuperNode that serves this silo's table to the federation at ``server`` (HOST:PORT);
    returns its exit code when the SuperLink is gone or it is stopped."""
    from hone.federated.simulate import import_flower

    import_flower()
    if not Path(data).exists() and not str(data).startswith("sql:") and "*" not in str(data):
        raise ConfigError(f"data {data!r} does not exist")
    if not insecure and not root_certificates:
        raise ConfigError("pass --root-certificates CA_CERT to verify the server's TLS certificate, or --insecure "
                          "(loopback tests, a trusted network)")
    name = name or Path(str(data)).stem
    work = work or str(Path.home() / ".cache" / "hone" / "federate" / name)
    node = " ".join(f"{k}={json.dumps(v)}" for k, v in {"data": str(Path(data).resolve()) if Path(data).exists()
                                                         else data, "target": target, "name": name,
                                                         "work": str(Path(work).resolve())}.items())
    cmd = [_bin("flower-supernode"), "--superlink", server, "--node-config", node]
    cmd += ["--insecure"] if insecure else ["--root-certificates", str(root_certificates)]
    if auth_key:
        cmd += ["--auth-supernode-private-key", auth_key]
    if port is None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
    cmd += ["--port", str(port)]
    home = Path(work) / "flower"
    home.mkdir(parents=True, exist_ok=True)
    logger.info("silo %r: serving %s to the federation at %s (rows stay here; only counts, sums and weights "
                "are sent)", name, data, server)
    proc = subprocess.Popen(cmd, env=_flower_env(home), start_new_session=True)

    def stop(signum: int, frame: Any) -> None:  # SIGTERM too stops the SuperNode (and its ClientApp processes)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        return proc.wait()
    finally:
        _stop(proc)
        signal.signal(signal.SIGTERM, previous)
