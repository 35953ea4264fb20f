"""Step 1 over HTTP: the collector (docs/collector.md).

    app = make_app(loaded, pipeline)
    server = make_server(app, loaded)      # uvicorn.Server; `await server.serve()` in the daemon
"""

from __future__ import annotations

from typing import Any

from crossdock.collector.app import Collector, make_app
from crossdock.config import LoadedConfig

__all__ = ["Collector", "make_app", "make_server"]


def make_server(app: Any, loaded: LoadedConfig, **options: Any) -> Any:
    """A uvicorn server for the collector on collector.host / collector.port."""
    import uvicorn

    config = uvicorn.Config(app, host=loaded.config.collector.host,
                            port=loaded.config.collector.port, log_level="warning",
                            access_log=False, **options)
    return uvicorn.Server(config)
