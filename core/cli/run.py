"""`crossdock run`: the forwarding daemon (crossdock.daemon)."""

from __future__ import annotations

import asyncio
import logging

import click

from crossdock.cli import common


@click.command()
@common.config_option
def run(config_path: str) -> None:
    """Run the forwarding daemon (collector, delivery workers, timers) until stopped."""
    from crossdock.collector import make_app
    from crossdock.daemon import run_daemon
    from crossdock.metrics import Metrics

    loaded = common.load_or_exit(config_path)
    if not logging.getLogger().isEnabledFor(logging.INFO):
        logging.getLogger("crossdock").setLevel(logging.INFO)
    # One set of request counters: the collector counts, the ops listener's /metrics shows.
    counters = Metrics()
    asyncio.run(run_daemon(loaded, collector_app_factory=lambda p: make_app(loaded, p,
                                                                             counters=counters),
                           config_path=config_path, collector_metrics=counters))
