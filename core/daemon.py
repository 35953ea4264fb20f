"""`crossdock run`: the long-running forwarding daemon.

    outbox (open + upgrade) -> delivery engine (one worker per destination)
                            -> scheduler (due-sweep, cleanup, timers added by others)
                            -> collector (HTTP, if a factory is given), whose pipeline wakes
                               the workers on every commit
                            -> ops listener (/healthz, /readyz, /metrics: crossdock.ops)
    ... until SIGTERM / SIGINT or `stop_event`, then: collector stops taking messages,
    timers stop, workers stop leasing and finish (or release) their batches, outbox closes.
    SIGHUP reloads the config file: validated first (a bad one is logged and the running
    config kept), then its destinations applied without dropping a lease (`reload`).

Rows written by other processes (`crossdock send`) are found by the workers' poll (0.5 s);
on PostgreSQL the fleet membership (crossdock.fleet) also LISTENs for them, so they are leased
at once, registers this daemon for `crossdock status`, and makes cleanup, session sweeps and
scheduled audience syncs run on one daemon of the fleet.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from crossdock.config import LoadedConfig
from crossdock.delivery import DeliveryEngine
from crossdock.errors import ConfigError
from crossdock.fleet import FleetMember
from crossdock.loader import load_config
from crossdock.metrics import (
    Metrics,
    Sample,
    ops_registry,
    outbox_samples,
    profile_store_samples,
)
from crossdock.ops import OpsApp, Readiness
from crossdock.outbox import open_outbox
from crossdock.pipeline import Pipeline, build_pipeline
from crossdock.scheduler import Scheduler

if TYPE_CHECKING:
    from crossdock.console import ConsoleState
    from crossdock.profiles.store import ProfileStore

log = logging.getLogger("crossdock.daemon")

#: seconds in-flight batches get to finish after a stop signal
STOP_GRACE = 10.0

#: how often idle sessions are ended (their session_end events routed)
SESSION_SWEEP_SECONDS = 60.0

CollectorAppFactory = Callable[["Pipeline[ProfileStore]"], Any]


async def run_daemon(
    loaded: LoadedConfig,
    *,
    collector_app_factory: CollectorAppFactory | None = None,
    stop_event: asyncio.Event | None = None,
    poll_interval: float = 0.5,
    on_ready: Callable[[DeliveryEngine, Scheduler], None] | None = None,
    config_path: str | Path | None = None,
    collector_metrics: Metrics | None = None,
) -> None:
    """Run until SIGTERM/SIGINT (or `stop_event` is set); on SIGHUP reload `config_path`.

    `collector_app_factory(pipeline)` returns an ASGI app served by uvicorn on
    collector.host:collector.port; the pipeline it gets wakes this daemon's workers.
    `on_ready(engine, scheduler)` is called once everything runs (to add timers, in tests).
    `collector_metrics`: the collector's request counters (given to its app by the factory),
    shown by the ops listener too.
    """
    stop = stop_event or asyncio.Event()
    outbox = open_outbox(loaded.outbox_url)
    state = _OpsState(collector_metrics or Metrics())
    registry, delivery_metrics = ops_registry(state.sources())
    engine = DeliveryEngine(loaded, outbox, poll_interval=poll_interval,
                            observer=delivery_metrics)
    member = FleetMember(outbox, engine.owner, [d.name for d in loaded.destinations])
    scheduler = Scheduler(loaded, outbox, engine, once=member.once)
    collector: _Served | None = None
    ops: _Served | None = None
    pipeline: Pipeline[ProfileStore] | None = None
    reloader = _Reloader(config_path, loaded, engine, scheduler, member)
    with _signals(stop, reloader.request):
        try:
            await engine.start()
            await member.start(engine.wake)
            scheduler.start()
            # Its own connection: the collector and the session sweep write from threads
            # while the workers lease on the loop; SQLite's lock orders them.
            pipeline = build_pipeline(loaded, on_commit=_waker(engine))
            reloader.pipeline = pipeline
            state.pipeline = pipeline
            if pipeline.profiles is not None:
                from crossdock.profiles import session_timer

                scheduler.add_timer("session-sweep", SESSION_SWEEP_SECONDS,
                                    session_timer(pipeline, pipeline.profiles),
                                    fleet_once=True)
                from crossdock.audiences.sync import add_sync_timers

                add_sync_timers(scheduler, pipeline)
                from crossdock.snapshots.run import add_export_timers

                add_export_timers(scheduler, pipeline, pipeline.profiles)
            if collector_app_factory is not None and loaded.config.collector.enabled:
                settings = loaded.config.collector
                collector = _Served(collector_app_factory(pipeline), settings.host,
                                    settings.port, "collector", lifespan="on")
                await collector.start()
            if loaded.config.ops.enabled:
                console = None
                if loaded.config.console.enabled:
                    from crossdock.console import ConsoleState, make_console_app

                    # An outbox of its own (read from the thread pool): counting a big one
                    # takes seconds, which must not hold the collector's connection.
                    reloader.console = ConsoleState(
                        loaded, open_outbox(loaded.outbox_url), state.collector_metrics
                        if loaded.config.collector.enabled else None)
                    console = make_console_app(reloader.console)
                ops = await _start_ops(loaded, OpsApp(registry, Readiness(
                    pipeline.outbox, engine.stopped_workers), console))
            names = ", ".join(d.name for d in loaded.destinations) or "none"
            # Where SDKs should point: the bound address (a port of 0 gets a real one).
            listening = f"collector {collector.address}" if collector else "collector off"
            listening += f", ops {ops.address}" if ops else ", ops off"
            log.info("crossdock running: outbox %s, %s, destinations: %s",
                     outbox.url, listening, names)
            if on_ready is not None:
                on_ready(engine, scheduler)
            await stop.wait()
            log.info("stopping: finishing in-flight deliveries (up to %gs)", STOP_GRACE)
        finally:
            await reloader.close()
            if collector is not None:
                await collector.stop()
            if reloader.console is not None:
                reloader.console.stop()
            if ops is not None:
                await ops.stop()
            if reloader.console is not None:
                reloader.console.outbox.close()
            scheduler.shutdown()
            await engine.stop(STOP_GRACE)
            await member.stop()
            if pipeline is not None:
                pipeline.close()
            outbox.close()
            log.info("stopped")


class _OpsState:
    """What the ops listener's /metrics reads at scrape time: the outbox's counts and the
    profile store's (through the pipeline, once it is built) and the collector's counters."""

    def __init__(self, collector_metrics: Metrics) -> None:
        self.collector_metrics = collector_metrics
        self.pipeline: Pipeline[ProfileStore] | None = None

    def sources(self) -> list[Callable[[], list[Sample]]]:
        return [self.outbox, self.profiles, self.collector_metrics.samples]

    def outbox(self) -> list[Sample]:
        if self.pipeline is None:
            return []
        # rows carry wall-clock times
        return outbox_samples(self.pipeline.outbox.counts(), time.time())

    def profiles(self) -> list[Sample]:
        return [] if self.pipeline is None else profile_store_samples(self.pipeline)


async def _start_ops(loaded: LoadedConfig, app: OpsApp) -> _Served | None:
    """The ops listener, started; None (logged) when its address cannot be bound: a daemon
    forwards without it, and its /healthz failing says so to whatever probes it."""
    settings = loaded.config.ops
    ops = _Served(app, settings.host, settings.port, "ops listener", lifespan="off",
                  **loaded.config.console.proxy_options())
    try:
        # Bound here, not by uvicorn: uvicorn ends the process (SystemExit) when it cannot.
        listening = socket.create_server(
            (settings.host, settings.port),
            family=socket.AF_INET6 if ":" in settings.host else socket.AF_INET)
    except OSError as exc:
        log.error("ops listener: cannot listen on %s:%d (%s); /healthz, /readyz and /metrics "
                  "are off (set ops.port, or ops.enabled: false)", settings.host,
                  settings.port, exc)
        return None
    await ops.start([listening])
    return ops


def _waker(engine: DeliveryEngine) -> Callable[[set[str]], None]:
    def wake(destinations: set[str]) -> None:
        for name in destinations:
            engine.wake(name)

    return wake


#: config sections a reload does not apply (the running collector, profile store and
#: audience timers were built from them): a change is logged, applied at the next restart
RESTART_SECTIONS = ("collector", "profiles", "audiences", "exports", "console")


class _Reloader:
    """SIGHUP: read and validate the config file again, then apply it. One reload at a time;
    a SIGHUP during one runs another after it (the file may have changed again)."""

    def __init__(self, config_path: str | Path | None, loaded: LoadedConfig,
                 engine: DeliveryEngine, scheduler: Scheduler, member: FleetMember) -> None:
        self.config_path = config_path
        self.loaded = loaded
        self.engine = engine
        self.scheduler = scheduler
        self.member = member
        self.pipeline: Pipeline[ProfileStore] | None = None
        #: what the console's pages read, given the reloaded config too
        self.console: ConsoleState | None = None
        self._task: asyncio.Task[None] | None = None
        self._again = False

    def request(self) -> None:
        log.info("received SIGHUP: reloading %s", self.config_path or "(no config file)")
        if self._task is not None and not self._task.done():
            self._again = True
            return
        self._task = asyncio.get_running_loop().create_task(self._run(),
                                                            name="crossdock-reload")

    async def _run(self) -> None:
        while True:
            self._again = False
            try:
                await self.reload()
            except Exception:  # a reload must never take the daemon down
                log.exception("reload failed; the running config is kept")
            if not self._again:
                return

    async def reload(self) -> None:
        if self.config_path is None:
            log.error("reload: this daemon was started without a config file; nothing to "
                      "reload")
            return
        try:
            new = await asyncio.to_thread(load_config, self.config_path)
        except ConfigError as exc:
            log.error("reload: %s is invalid; the running config is kept:\n%s",
                      self.config_path, "\n".join(f"  - {p}" for p in exc.problems))
            return
        old = self.loaded
        if new.outbox_url != old.outbox_url:
            log.error("reload: outbox.url changed; the running config is kept (a daemon "
                      "cannot move its outbox: restart it)")
            return
        for warning in new.warnings:
            log.warning("reload: %s", warning)
        later = [name for name in RESTART_SECTIONS
                 if getattr(new.config, name) != getattr(old.config, name)]
        if later:
            log.warning("reload: %s changed: applied at the next restart",
                        ", ".join(later))
        changes = await self.engine.reconfigure(new)
        self.scheduler.loaded = new
        if self.pipeline is not None:
            # Read once per accepted batch: messages routed from now on go by the new config.
            self.pipeline.loaded = new
        if self.console is not None:
            self.console.loaded = new
        self.loaded = new
        try:
            await self.member.serve([d.name for d in new.destinations])
        except Exception:  # only `crossdock status` would show the old list
            log.warning("reload: could not update this daemon's entry in the fleet",
                        exc_info=True)
        log.info("reloaded %s: destinations added: %s; changed: %s; removed: %s; "
                 "unchanged: %d", self.config_path, *(", ".join(changes[k]) or "none"
                                                      for k in ("added", "changed", "removed")),
                 len(changes["unchanged"]))

    async def close(self) -> None:
        """Let a reload in progress finish (its workers are then stopped with the rest)."""
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)


@contextlib.contextmanager
def _signals(stop: asyncio.Event, reload: Callable[[], None]) -> Iterator[None]:
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, _on_signal, sig, stop)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):
            pass  # not the main thread (tests) or no signal support: stop_event still works
    try:
        # Before, SIGHUP's default action ended the daemon without a word.
        loop.add_signal_handler(signal.SIGHUP, reload)
        installed.append(signal.SIGHUP)
    except (NotImplementedError, RuntimeError, ValueError, AttributeError):
        pass
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


def _on_signal(sig: signal.Signals, stop: asyncio.Event) -> None:
    log.info("received %s", sig.name)
    stop.set()


class _Served:
    """An ASGI app (the collector, the ops listener) under uvicorn, sharing the daemon's loop
    and signal handling."""

    def __init__(self, app: Any, host: str, port: int, name: str, *,
                 lifespan: Literal["on", "off"], **options: Any) -> None:
        import uvicorn

        # httptools' C parser (a dependency), named: uvicorn's "auto" falls back to the
        # pure-Python h11 without a word, which costs a collector request about a quarter
        # more CPU (docs/benchmarks.md, "The collector's own costs, second round").
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

        class Server(uvicorn.Server):
            # The daemon owns SIGTERM/SIGINT; uvicorn must not install its own handlers.
            @contextlib.contextmanager
            def capture_signals(self) -> Iterator[None]:
                yield

        self.name = name
        # log_config=None: uvicorn's records go to the root handler like every other, so
        # `--log-format json` holds for them too (its own config adds text handlers).
        self.server = Server(uvicorn.Config(app, host=host, port=port, log_level="warning",
                                            lifespan=lifespan, log_config=None,
                                            http=HttpToolsProtocol, **options))
        self._task: asyncio.Task[None] | None = None

    async def start(self, sockets: list[socket.socket] | None = None) -> None:
        """Serve on `sockets` (bound by the caller), or bind host and port."""
        self._task = asyncio.create_task(self.server.serve(sockets),
                                         name=f"crossdock-{self.name.replace(' ', '-')}")
        while not self.server.started:
            if self._task.done():
                self._task.result()  # raises why it could not start
                raise RuntimeError(f"{self.name} stopped during start-up")
            await asyncio.sleep(0.02)

    @property
    def address(self) -> str:
        """http://host:port the server is bound to (after start)."""
        host, port = self.server.servers[0].sockets[0].getsockname()[:2]
        return f"http://{f'[{host}]' if ':' in host else host}:{port}"

    async def stop(self) -> None:
        self.server.should_exit = True
        if self._task is not None:
            await self._task
