"""Step 1 over HTTP: the collector (docs/collector.md).

    app = make_app(loaded, pipeline)       # FastAPI; `crossdock run` serves it with uvicorn
"""

from __future__ import annotations

from crossdock.collector.app import Collector, make_app

__all__ = ["Collector", "make_app"]
