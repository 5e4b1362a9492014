"""The ServerApp and ClientApp objects Flower's deployment engine loads (``hone federate server|client``;
the app bundle in ``flower_app/`` names them). The server's settings come from the run config that
``hone federate server`` submits; each client's data from its SuperNode's node config."""

from __future__ import annotations

import json
from typing import Any

from hone.federated.apps import client_app

client = client_app()


def _server() -> Any:
    from flwr.serverapp import ServerApp

    app = ServerApp()

    @app.main()
    def main(grid: Any, context: Any) -> None:
        from hone.federated.deploy import serve_run

        rc = context.run_config
        serve_run(grid, json.loads(str(rc["hone-config"])), str(rc["checkpoints"]), str(rc["output"]),
                  str(rc.get("test") or "") or None)

    return app


server = _server()
