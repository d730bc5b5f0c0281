"""The writer process: batches piped to a real child that stores them in SQLite; a child that dies."""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

import pytest

from lanner.config.model import RecordConfig
from lanner.record import writer as writer_module
from lanner.record.convert import Origin, pack
from lanner.record.model import ConnectionRecord
from lanner.record.sqlite import SqliteStore
from lanner.record.writer import WriterProcess
from lanner.wire.http_exchange import Exchange, HttpAnalyzer

ORIGIN = Origin("w.1", "forward", "127.0.0.1:1", "alice")


def exchange(path: bytes) -> Exchange:
    analyzer = HttpAnalyzer()
    analyzer.client_data(b"GET " + path + b" HTTP/1.1\r\nHost: h\r\nAuthorization: Basic eDp5\r\n\r\n", 1.0)
    (done,) = analyzer.server_data(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 2.0)
    return done


def stored_paths(path: Path) -> list[str]:
    store = SqliteStore(str(path), readonly=True)
    try:
        return sorted(flow.path for flow in store.flows(None, limit=100))
    finally:
        store.close()


def test_batches_reach_the_store_through_the_child(tmp_path: Path) -> None:
    db = tmp_path / "lanner.db"
    writer = WriterProcess(RecordConfig(), str(db))
    writer.send([pack(exchange(b"/a"), ORIGIN), pack(exchange(b"/b"), ORIGIN)])
    writer.send([ConnectionRecord("w.1", "forward", "127.0.0.1:1", "http", 1.0, 3.0, requests=2)])
    writer.close(timeout=20)  # end of input: the child writes what it holds, then exits
    assert stored_paths(db) == ["/a", "/b"]
    store = SqliteStore(str(db), readonly=True)
    try:
        flow = store.get(store.flows(None)[0].id)
        assert flow is not None and ("Authorization", "[redacted]") in flow.request_headers  # redacted there
        assert flow.user == "alice" and flow.response_body.data == b"ok"
        assert store.connection("w.1") is not None
    finally:
        store.close()


def test_a_dead_child_is_replaced_and_its_loss_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer_module, "RETRY_INTERVAL", 0.01)
    db = tmp_path / "lanner.db"
    writer = WriterProcess(RecordConfig(), str(db))
    writer.send([pack(exchange(b"/first"), ORIGIN)])
    assert writer.proc is not None
    os.kill(writer.proc.pid, signal.SIGKILL)
    writer.proc.wait()
    with caplog.at_level(logging.ERROR, logger="lanner.record"):
        writer.send([pack(exchange(b"/lost"), ORIGIN)])  # the pipe is broken: this batch is lost
    assert writer.lost == 1 and writer.restarts == 1
    assert any("writer process exited" in record.getMessage() for record in caplog.records)
    writer.send([pack(exchange(b"/after"), ORIGIN)])  # a new child
    writer.close(timeout=20)
    assert "/after" in stored_paths(db) and "/lost" not in stored_paths(db)
