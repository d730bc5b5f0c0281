"""Metrics: bounded labels, values from every process added up, the exposition Prometheus parses.

Single-process values are module-wide, so these tests compare before and after, or use
label values of their own. Multiprocess behaviour is tested in child processes, each with
PROMETHEUS_MULTIPROC_DIR set before it imports anything (as `lanner run` does).
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from lanner.config.model import RecordConfig
from lanner.config.pools import PoolConfig
from lanner.config.vendors import ProviderConfig
from lanner.control import metrics, metrics_dir, metrics_upstream
from lanner.control.metrics_db import (
    FINGERPRINTS,
    DbMetrics,
    FirstSeen,
    redis_command,
    sql_verb,
    sqlstate_class,
)
from lanner.record.convert import DbItem, Origin
from lanner.record.convert_db import db_flow
from lanner.record.recorder import Recorder, StoreWriter
from lanner.upstream.backends import Pool
from lanner.upstream.providers import Provider
from lanner.wire import postgres as pg
from lanner.wire.http_exchange import HttpAnalyzer
from lanner.wire.resp import RespAnalyzer

ORIGIN = Origin("t.1", "db", "127.0.0.1:1", None, "redis", "127.0.0.1", 6379)


def value(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of an exposition, by name and labels (parsed as Prometheus would)."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def listener_name() -> str:
    return f"l{uuid.uuid4().hex[:8]}"


# --- one listener's connections ----------------------------------------------------------


def test_a_connections_life_in_the_exposition() -> None:
    name = listener_name()
    listener = metrics.for_listener(name)
    assert metrics.for_listener(name) is listener  # resolved once per name, reloads included
    listener.opened()
    listener.opened()
    listener.handshake(0.003)
    listener.connected(0.02)
    listener.answered(204, 0.1)
    listener.answered(None)
    listener.closed("ok", 100, 2000)
    listener.refused()
    body, content_type = metrics.exposition()
    assert content_type.startswith("text/plain; version=0.0.4")
    found = samples(body.decode())
    assert found["lanner_connections_opened_total", frozenset({("listener", name)})] == 2
    assert found["lanner_connections_open", frozenset({("listener", name)})] == 1
    assert found["lanner_connections_closed_total", frozenset({("listener", name), ("outcome", "ok")})] == 1
    assert found["lanner_connections_refused_total", frozenset({("listener", name)})] == 1
    assert found["lanner_bytes_total", frozenset({("listener", name), ("direction", "up")})] == 100
    assert found["lanner_bytes_total", frozenset({("listener", name), ("direction", "down")})] == 2000
    assert found["lanner_handshake_seconds_count", frozenset({("listener", name)})] == 1
    assert found["lanner_handshake_seconds_bucket", frozenset({("listener", name), ("le", "0.005")})] == 1
    assert found["lanner_upstream_connect_seconds_sum", frozenset({("listener", name)})] == 0.02
    assert found["lanner_http_upstream_latency_seconds_count", frozenset({("listener", name)})] == 1
    assert found["lanner_http_responses_total", frozenset({("listener", name), ("class", "2xx")})] == 1
    assert found["lanner_http_responses_total", frozenset({("listener", name), ("class", "none")})] == 1


def test_status_classes_are_bounded() -> None:
    name = listener_name()
    listener = metrics.for_listener(name)
    for status in (101, 200, 301, 404, 503, 999, None):
        listener.answered(status)
    classes = {
        labels["class"]
        for family in text_string_to_metric_families(metrics.exposition()[0].decode())
        for sample in family.samples
        if sample.name == "lanner_http_responses_total" and (labels := sample.labels)["listener"] == name
    }
    assert classes == {"1xx", "2xx", "3xx", "4xx", "5xx", "other", "none"}


def test_reloads_are_counted_by_result() -> None:
    ok, failed = (
        value("lanner_config_reloads_total", result="ok"),
        value("lanner_config_reloads_total", result="failed"),
    )
    metrics.reload_counted(True)
    metrics.reload_counted(False)
    metrics.reload_counted(False)
    assert value("lanner_config_reloads_total", result="ok") == ok + 1
    assert value("lanner_config_reloads_total", result="failed") == failed + 2


# --- databases: bounded labels ----------------------------------------------------------------


def test_redis_commands_are_named_only_from_the_command_table() -> None:
    assert redis_command("GET") == "GET"
    assert redis_command("CONFIG SET") == "CONFIG SET"
    assert redis_command("CONFIG NOSUCH") == "CONFIG"  # a known container, an unknown subcommand
    assert redis_command("FLUSHMYCACHE") == "other"
    assert redis_command("GET\x00/é") == "other"


def test_fingerprints_past_the_cap_are_other() -> None:
    cap = FirstSeen(3)
    assert [cap.label(x) for x in "abcadb"] == ["a", "b", "c", "a", "other", "b"]
    assert FINGERPRINTS == 50


def test_sql_verbs_and_sqlstate_classes() -> None:
    assert sql_verb("SELECT") == "SELECT" and sql_verb("SELEC") == "other" and sql_verb("") == "other"
    assert sqlstate_class("23505") == "23" and sqlstate_class("57P01") == "57"
    assert (
        sqlstate_class(None) == "other"
        and sqlstate_class("2") == "other"
        and sqlstate_class("2é505") == "other"
    )


def redis_event(command: bytes, reply: bytes) -> Any:
    analyzer = RespAnalyzer()
    analyzer.client_data(command, 1.0)
    (event,) = analyzer.server_data(reply, 1.004)
    return event


def statement(
    sql: str, error: pg.PgError | None = None, tag: str | None = "SELECT 1"
) -> pg.StatementCompleted:
    return pg.StatementCompleted(
        sql=sql, part=0, kind="simple", statement="", portal="", params=(), param_types=(), columns=(),
        command_tag=tag, rows=None, data_rows=0, error=error, notices=(), tx_status="idle",
        started=1.0, ended=1.25,
    )  # fmt: skip


def test_redis_latency_and_errors_by_command() -> None:
    observer = DbMetrics()
    before = value("lanner_redis_command_seconds_count", command="GET")
    errors = value("lanner_redis_errors_total", command="INCR")
    other = value("lanner_redis_command_seconds_count", command="other")
    for event in (
        redis_event(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", b"$-1\r\n"),
        redis_event(b"*2\r\n$3\r\nget\r\n$1\r\nk\r\n", b"$1\r\nv\r\n"),
        redis_event(b"*2\r\n$4\r\nINCR\r\n$1\r\nk\r\n", b"-ERR not an integer\r\n"),
        redis_event(b"*1\r\n$9\r\nMYCOMMAND\r\n", b"+OK\r\n"),
    ):
        observer.observe(event, db_flow(DbItem(ORIGIN, event)))
    assert value("lanner_redis_command_seconds_count", command="GET") == before + 2
    assert value("lanner_redis_errors_total", command="INCR") == errors + 1
    assert value("lanner_redis_command_seconds_count", command="other") == other + 1


def test_postgres_latency_by_fingerprint_and_errors_by_sqlstate_class() -> None:
    observer = DbMetrics(fingerprints=1)
    pg_origin = ORIGIN._replace(scheme="postgres", port=5432)
    first = db_flow(DbItem(pg_origin, statement("select 1"), "test"))
    assert first.fingerprint
    counted = value("lanner_postgres_statement_seconds_count", verb="SELECT", fingerprint=first.fingerprint)
    other = value("lanner_postgres_statement_seconds_count", verb="SELECT", fingerprint="other")
    errors = value("lanner_postgres_errors_total", verb="INSERT", sqlstate_class="23")
    duplicate = pg.PgError("ERROR", "23505", "duplicate key")
    events = [
        statement("select 1"),
        statement("SELECT 2"),  # the same fingerprint: its literal differs only
        statement("select * from t"),  # past the cap of one
        statement("insert into t values (1)", duplicate, None),
    ]
    for event in events:
        observer.observe(event, db_flow(DbItem(pg_origin, event, "test")))
    assert (
        value("lanner_postgres_statement_seconds_count", verb="SELECT", fingerprint=first.fingerprint)
        == counted + 2
    )
    assert value("lanner_postgres_statement_seconds_count", verb="SELECT", fingerprint="other") == other + 1
    assert value("lanner_postgres_errors_total", verb="INSERT", sqlstate_class="23") == errors + 1


# --- the recorder and the store ---------------------------------------------------------------


class ListStore:
    def __init__(self) -> None:
        self.flows: list[Any] = []

    def write(self, connections: Any, flows: Any) -> None:
        self.flows.extend(flows)

    def close(self) -> None:
        pass


def test_recorder_drops_sampling_and_store_writes_are_published() -> None:
    store = ListStore()
    config = RecordConfig(queue=10, sample=0.5)
    recorder = Recorder(config, StoreWriter(config, lambda: store))
    dropped, sampled = value("lanner_recorder_dropped_total"), value("lanner_recorder_sampled_out_total")
    written, batches = (
        value("lanner_store_written_total", kind="flow"),
        value("lanner_store_write_seconds_count"),
    )
    random.seed(7)
    analyzer = HttpAnalyzer()

    async def submit() -> None:
        for _ in range(60):
            analyzer.client_data(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", 1.0)
            (done,) = analyzer.server_data(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 2.0)
            recorder.exchange(done, ORIGIN)

    asyncio.run(submit())  # not started yet: the queue holds 10, the rest kept are dropped
    assert len(recorder.queue) == 10
    recorder.start()
    recorder.stop()
    assert value("lanner_recorder_dropped_total") == dropped + recorder.dropped > dropped
    assert value("lanner_recorder_sampled_out_total") == sampled + recorder.sampled_out > sampled
    assert value("lanner_recorder_queue_depth") == 0
    assert value("lanner_store_written_total", kind="flow") == written + 10 == written + len(store.flows)
    assert value("lanner_store_write_seconds_count") > batches


# --- upstreams --------------------------------------------------------------------------------


def test_backend_state_is_sampled_and_a_removed_backend_goes_to_zero() -> None:
    name = f"pool{uuid.uuid4().hex[:6]}"
    backends = [{"address": f"10.0.0.{index}:80"} for index in (1, 2)]
    pool = Pool(PoolConfig.model_validate({"name": name, "backends": backends}), random.Random(1))
    first, second = pool.backends
    first.active = 3
    second.healthy = False
    ejections = value("lanner_backend_ejections_total", pool=name, backend=first.key)
    pool.eject(first, 100.0, "test")
    metrics_upstream.sample_backends(pool.backends, 100.0)
    assert value("lanner_backend_in_flight", pool=name, backend=first.key) == 3
    assert value("lanner_backend_ejected", pool=name, backend=first.key) == 1
    assert value("lanner_backend_healthy", pool=name, backend=first.key) == 1
    assert value("lanner_backend_healthy", pool=name, backend=second.key) == 0
    assert value("lanner_backend_ejections_total", pool=name, backend=first.key) == ejections + 1
    metrics_upstream.sample_backends([second], 100.0)  # a reload removed the first
    assert value("lanner_backend_in_flight", pool=name, backend=first.key) == 0
    assert value("lanner_backend_ejected", pool=name, backend=first.key) == 0


def test_a_providers_breaker_state_is_one_hot() -> None:
    name = f"vendor{uuid.uuid4().hex[:6]}"
    config = {"name": name, "endpoints": ["127.0.0.1:9"], "username": "u"}
    provider = Provider(ProviderConfig.model_validate(config))
    metrics_upstream.sample_providers([provider])
    assert value("lanner_provider_breaker_state", provider=name, state="closed") == 1
    provider.breaker.trip(0.0, "test")
    metrics_upstream.sample_providers([provider])
    states = {state: value("lanner_provider_breaker_state", provider=name, state=state) for state in
              metrics_upstream.BREAKER_STATES}  # fmt: skip
    assert states == {"closed": 0, "open": 1, "half_open": 0}
    metrics_upstream.sample_providers([])
    assert value("lanner_provider_breaker_state", provider=name, state="open") == 0


# --- several processes --------------------------------------------------------------------------

WORKER = """
import os, sys
from lanner.control import metrics
listener = metrics.for_listener("shared")
for _ in range(int(sys.argv[1])):
    listener.opened()
listener.handshake(0.01)
metrics.RECORDER_QUEUE.set(int(sys.argv[1]))
print(os.getpid())
"""

SCRAPE = """
import sys
from lanner.control import metrics
assert metrics.multiprocess()
for pid in sys.argv[1:]:
    metrics.process_gone(int(pid))
sys.stdout.write(metrics.exposition()[0].decode())
"""


def run_python(code: str, directory: Path, *args: str) -> str:
    env = {**os.environ, metrics_dir.ENV: str(directory)}
    done = subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_every_process_adds_up_and_a_gone_process_leaves_the_live_gauges(tmp_path: Path) -> None:
    first = run_python(WORKER, tmp_path, "3").strip()
    run_python(WORKER, tmp_path, "4")
    found = samples(run_python(SCRAPE, tmp_path))
    shared = frozenset({("listener", "shared")})
    assert found["lanner_connections_opened_total", shared] == 7
    assert found["lanner_connections_open", shared] == 7
    assert found["lanner_handshake_seconds_count", shared] == 2
    assert found["lanner_recorder_queue_depth", frozenset()] == 7
    found = samples(run_python(SCRAPE, tmp_path, first))
    assert found["lanner_connections_opened_total", shared] == 7  # counters outlive their process
    assert found["lanner_recorder_queue_depth", frozenset()] == 4  # live gauges do not
    assert found["lanner_connections_open", shared] == 4


PER_RUN = """
import os, sys
from lanner.control import metrics_dir
with metrics_dir.per_run() as path:
    assert os.environ[metrics_dir.ENV] == path and os.path.isdir(path)
    from lanner.control import metrics
    assert metrics.multiprocess()
    metrics.for_listener("x").opened()
    assert os.listdir(path)
print(path)
assert not os.path.exists(path) and metrics_dir.ENV not in os.environ
"""


def test_a_run_directory_is_fresh_and_removed(tmp_path: Path) -> None:
    printed = run_python(PER_RUN, tmp_path).strip()
    assert printed.startswith(os.path.join(os.path.dirname(printed), "lanner-metrics-"))


def test_too_late_for_a_run_directory_metrics_still_work() -> None:
    with metrics_dir.per_run() as path:  # this test process imported prometheus_client long ago
        assert path is None and metrics_dir.ENV not in os.environ
        assert not metrics.multiprocess()
        assert metrics.exposition()[0]


def test_the_command_line_does_not_import_prometheus_client_before_run() -> None:
    code = "import sys, lanner.cli; assert 'prometheus_client' not in sys.modules, 'imported too early'"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
