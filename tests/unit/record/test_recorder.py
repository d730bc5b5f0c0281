"""The recorder pipeline: sampling, the bounded queue, the writer thread, store failures.

The store here is a small in-memory double: what is under test is the pipeline's
behaviour when a store accepts, fails and comes back (integration tests do the same
against real SQLite files).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Sequence

import pytest

from lanner.config.model import RecordConfig
from lanner.record import recorder as recorder_module
from lanner.record.convert import Origin
from lanner.record.model import ConnectionRecord, FlowRecord
from lanner.record.recorder import Recorder, Sampler, StoreWriter
from lanner.record.store import StoreError
from lanner.wire.http_exchange import Exchange, HttpAnalyzer

ORIGIN = Origin("t.1", "forward", "127.0.0.1:1", None)


class MemoryStore:
    def __init__(self, shared: MemoryBackend) -> None:
        self.shared = shared

    def write(self, connections: Sequence[ConnectionRecord], flows: Sequence[FlowRecord]) -> None:
        with self.shared.lock:
            if self.shared.failing:
                raise StoreError("disk full")
            self.shared.flows.extend(flows)
            self.shared.connections.extend(connections)

    def close(self) -> None:
        pass


class MemoryBackend:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.failing = False
        self.flows: list[FlowRecord] = []
        self.connections: list[ConnectionRecord] = []
        self.opened = 0

    def open(self) -> MemoryStore:
        self.opened += 1
        return MemoryStore(self)


def exchange(path: bytes = b"/", status: int = 200) -> Exchange:
    analyzer = HttpAnalyzer()
    analyzer.client_data(b"GET " + path + b" HTTP/1.1\r\nHost: h\r\n\r\n", 1.0)
    (done,) = analyzer.server_data(b"HTTP/1.1 %d X\r\nContent-Length: 0\r\n\r\n" % status, 2.0)
    return done


def wait_for(condition: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.02)


def test_sampler_keeps_errors_and_uses_the_longest_prefix() -> None:
    sampler = Sampler(RecordConfig(sample=0.0, sample_paths={"/api": 1.0, "/api/health": 0.0}))
    assert sampler.keep(exchange(b"/api/users"))
    assert not sampler.keep(exchange(b"/api/health"))
    assert not sampler.keep(exchange(b"/other"))
    assert sampler.keep(exchange(b"/other", 503))
    assert sampler.keep(exchange(b"http://h/api/x"))  # absolute-form targets match by path


def test_flows_reach_the_store_converted() -> None:
    backend = MemoryBackend()
    recorder = Recorder(RecordConfig(), StoreWriter(RecordConfig(), backend.open))
    recorder.start()

    async def submit() -> None:
        for index in range(50):
            recorder.exchange(exchange(b"/%d" % index), ORIGIN)

    asyncio.run(submit())
    wait_for(lambda: len(backend.flows) == 50)
    recorder.stop()
    assert [flow.path for flow in backend.flows] == [f"/{index}" for index in range(50)]
    assert recorder.sink.written == 50 and recorder.dropped == 0  # type: ignore[attr-defined]


def test_full_queue_drops_and_counts(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(recorder_module, "REPORT_INTERVAL", 0.05)
    backend = MemoryBackend()
    recorder = Recorder(
        RecordConfig(queue=10), StoreWriter(RecordConfig(queue=10), backend.open)
    )  # not started: nothing drains

    async def submit() -> None:
        for _ in range(25):
            recorder.exchange(exchange(), ORIGIN)
        await asyncio.sleep(0.2)

    with caplog.at_level(logging.WARNING, logger="lanner.record"):
        asyncio.run(submit())
    assert len(recorder.queue) == 10 and recorder.dropped == 15
    (record,) = [r for r in caplog.records if "queue full" in r.getMessage()]
    assert record.fields["dropped"] == 15  # type: ignore[attr-defined]


def test_store_failure_is_logged_once_and_recording_resumes(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(recorder_module, "RETRY_INTERVAL", 0.05)
    backend = MemoryBackend()
    backend.failing = True
    recorder = Recorder(RecordConfig(), StoreWriter(RecordConfig(), backend.open))
    with caplog.at_level(logging.INFO, logger="lanner.record"):
        recorder.start()

        async def submit() -> None:
            for _ in range(3):
                recorder.exchange(exchange(), ORIGIN)

        asyncio.run(submit())
        wait_for(lambda: recorder.sink.store_failures >= 3)  # type: ignore[attr-defined]
        backend.failing = False
        wait_for(lambda: len(backend.flows) == 3)
        recorder.stop()
    messages = [r.getMessage() for r in caplog.records]
    assert messages.count("recording paused: the store failed; proxying continues") == 1
    assert "recording resumed" in messages
    assert backend.opened >= 2  # a failed store is replaced by a freshly opened one


def test_stop_writes_what_is_queued() -> None:
    backend = MemoryBackend()
    recorder = Recorder(RecordConfig(batch=7), StoreWriter(RecordConfig(batch=7), backend.open))

    async def submit() -> None:
        for _ in range(30):
            recorder.exchange(exchange(), ORIGIN)

    asyncio.run(submit())
    recorder.start()
    recorder.stop()
    assert len(backend.flows) == 30


def test_an_item_that_cannot_be_converted_costs_one_flow(caplog: pytest.LogCaptureFixture) -> None:
    from lanner.record.convert import pack

    backend = MemoryBackend()
    writer = StoreWriter(RecordConfig(), backend.open)
    broken = ("not", "a", "packed", "exchange")
    with caplog.at_level(logging.ERROR, logger="lanner.record"):
        writer.send([pack(exchange(b"/ok"), ORIGIN), broken, pack(exchange(b"/also"), ORIGIN)])  # type: ignore[list-item]
    assert [flow.path for flow in backend.flows] == ["/ok", "/also"] and writer.lost == 1
    assert any("could not convert" in record.getMessage() for record in caplog.records)
