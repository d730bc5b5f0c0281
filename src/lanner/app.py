"""The running gateway: binds the configured listeners, serves until told to stop, reloads its config.

Shutdown (SIGINT/SIGTERM): stop accepting, give open connections
`shutdown_grace` seconds to finish, then abort what is left; exit code 0.
Reload (SIGHUP, the config file changing, the admin API): `lanner.reload`.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys
import time
from collections.abc import Iterator

from lanner import logs
from lanner.config.model import Config
from lanner.config.source import ConfigSource, Stamp
from lanner.control import metrics
from lanner.control.plane import ControlPlane
from lanner.errors import Outcome
from lanner.generation import BuildError, Generation, build, describe, services_for
from lanner.net.conn import Conn
from lanner.net.listener import Acceptor, ListenerRuntime
from lanner.record.recorder import Recorder
from lanner.record.retention import Retention
from lanner.record.sqlite import SqliteStore
from lanner.record.writer import WriterProcess
from lanner.reload import ReloadResult, reload
from lanner.watch import ConfigWatcher

log = logging.getLogger("lanner")

SWEEP_INTERVAL_MAX = 5.0


class Gateway:
    def __init__(
        self,
        config: Config,
        worker: int | None = None,
        source: ConfigSource | None = None,
        stamp: Stamp | None = None,
    ) -> None:
        """`config` as `source` read it when its file looked like `stamp` (see lanner.watch)."""
        self.config = config  # the running generation's (see lanner.reload.pin)
        self.started_config = config  # what settings only a restart applies stay at
        self.source = source or ConfigSource()  # re-read on reload
        self.announce = not worker  # the only process, or the first worker
        self.generation: Generation | None = None
        self.listeners: list[ListenerRuntime] = []  # the running generation's
        self.retired: list[Acceptor] = []  # addresses a reload gave up, until their connections end
        self.stopping = asyncio.Event()
        read = stamp if stamp is not None else self.source.stamp()
        self.watcher = ConfigWatcher(
            self.source, read, lambda: self.config.config_watch_interval, self.file_changed
        )
        self.services = services_for(config, None, worker)
        self.retention: Retention | None = None
        self.control: ControlPlane | None = None  # the admin API: in the only process, or worker 0
        if config.record.enabled:
            path = config.store_path
            writer = WriterProcess(config.record, path, config.log.format, config.log.level)
            self.services.recorder = Recorder(config.record, writer, self.services.tag)
            if not worker:  # one process prunes for all: the only one, or worker 0
                self.retention = Retention(config.record.retention, lambda: SqliteStore(path))

    async def start(self) -> None:
        if self.services.recorder is not None:
            self.services.recorder.start()
        if self.retention is not None:
            self.retention.start()
        if self.services.upstreams is not None:
            self.services.upstreams.start()
        if self.services.vendors is not None:
            self.services.vendors.start()
        generation = build(self.config, self.services, None, self.config.workers > 1)
        self.activate(generation)
        await generation.serve()
        if self.announce:
            for listener_config in self.config.listeners:
                print(f"lanner: {describe(listener_config)}", flush=True)
        if self.config.admin.enabled and not self.services.worker:
            self.control = ControlPlane(self)
            self.services.events = self.control.hub
            url = self.control.start()
            print(f"lanner: admin API and web UI on {url}/ (metrics at {url}/metrics)", flush=True)
        # What start-up built (config, routes, the admin app with FastAPI and pydantic) lives as
        # long as the process: out of the cyclic collector's sight, its full passes stay cheap.
        gc.freeze()

    async def serve(self) -> None:
        """Start, serve until SIGINT/SIGTERM, shut down gracefully."""
        loop = asyncio.get_running_loop()
        # Before anything is announced: a signal sent the moment lanner says it listens is handled.
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stopping.set)
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        await self.start()
        self.watcher.start()
        sweeper = loop.call_later(self._sweep_interval(), self._sweep)
        try:
            await self.stopping.wait()
        finally:
            self.watcher.stop()
            sweeper.cancel()
            await self.shutdown()

    async def shutdown(self) -> None:
        for acceptor in self._acceptors():
            acceptor.close()
        live = self._live()
        if live:
            log.info("draining", extra={"fields": {"open": live, "grace": self.config.shutdown_grace}})
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.shutdown_grace
        # Polling at 20 Hz for at most the grace period is simpler than wiring an
        # event through every connection's end, and costs nothing while serving.
        while self._live() and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        for acceptor in self._acceptors():
            acceptor.abort_all(Outcome.SHUTDOWN, "closed at shutdown after the grace period")
        if self.services.upstreams is not None:
            self.services.upstreams.stop()
        if self.services.vendors is not None:
            await self.services.vendors.stop()
        if self.control is not None:
            await self.control.stop()
        await asyncio.sleep(0)  # let connection_lost callbacks write their log lines
        logs.flush()
        metrics.flush()  # counts since the last second reach the files before the process goes
        if self.retention is not None:
            await asyncio.to_thread(self.retention.stop)
        if self.services.recorder is not None:
            await asyncio.to_thread(self.services.recorder.stop)

    def reload(self, source: str = "signal") -> ReloadResult:
        """Re-read the config file and apply it (see `lanner.reload`); `source`: signal, file or api."""
        if self.stopping.is_set() or self.generation is None:
            why = "lanner is shutting down" if self.stopping.is_set() else "lanner is still starting"
            log.warning("config not reloaded", extra={"fields": {"source": source, "why": why}})
            return ReloadResult(False, [why], [], [])
        result = reload(self, source)
        self.watcher.start()  # the new config may have turned watching on
        return result

    def file_changed(self) -> None:
        if not self.stopping.is_set():
            self.reload("file")

    def activate(self, generation: Generation) -> None:
        """New connections get `generation` once its `serve()` runs; the running one stops accepting now."""
        given_up = generation.activate(self.generation)
        self.generation = generation
        self.config, self.services = generation.config, generation.services
        self.listeners = list(generation.runtimes)
        for acceptor in given_up:
            self._retire(acceptor)

    def connections(self) -> Iterator[Conn]:
        """Every open client connection, including those on addresses a reload gave up."""
        for acceptor in self._acceptors():
            yield from acceptor.live

    def _retire(self, acceptor: Acceptor) -> None:
        """Stop accepting on an address now; its connections get `shutdown_grace` seconds to finish."""
        acceptor.close()
        self.retired.append(acceptor)
        asyncio.get_running_loop().call_later(self.config.shutdown_grace, self._expire, acceptor)

    def _expire(self, acceptor: Acceptor) -> None:
        acceptor.abort_all(Outcome.SHUTDOWN, "listener removed by a reload; closed after the grace period")
        if acceptor in self.retired:
            self.retired.remove(acceptor)

    def _acceptors(self) -> list[Acceptor]:
        return [runtime.acceptor for runtime in self.listeners] + self.retired

    def _live(self) -> int:
        return sum(len(acceptor.live) for acceptor in self._acceptors())

    def _sweep_interval(self) -> float:
        """A quarter of the shortest timeout: timeouts fire within 125% of their value."""
        shortest = min(
            (min(r.limits.idle_timeout, r.limits.handshake_timeout) for r in self.listeners), default=60.0
        )
        return min(SWEEP_INTERVAL_MAX, shortest / 4)

    def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        now = time.monotonic()
        for acceptor in self._acceptors():
            acceptor.sweep(now)
        self.retired = [acceptor for acceptor in self.retired if acceptor.live]
        if not self.stopping.is_set():
            loop.call_later(self._sweep_interval(), self._sweep)


def run(
    config: Config, worker: int | None = None, source: ConfigSource | None = None, stamp: Stamp | None = None
) -> int:
    """Run one gateway process (`worker` numbers it among several) to completion; the exit code."""
    try:
        _runner(Gateway(config, worker, source, stamp).serve())
    except BuildError as exc:
        for problem in exc.problems:
            print(f"lanner: {problem}", file=sys.stderr, flush=True)
        return 1
    except OSError as exc:
        print(f"lanner: cannot listen: {exc.strerror or exc}", file=sys.stderr, flush=True)
        return 1
    return 0


def _runner(coro: object) -> None:
    try:
        import uvloop
    except ImportError:  # uvloop is optional where it does not build
        asyncio.run(coro)  # type: ignore[arg-type]
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(coro)  # type: ignore[arg-type]
