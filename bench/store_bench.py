"""The flow store at scale: write throughput, then filter latency on a store of a million flows.

    .venv/bin/python bench/store_bench.py [--flows N] [--db PATH] [--keep]

1. Write throughput: small realistic flows (a GET or POST with 8 request headers, a 200
   with 8 response headers and a ~300-byte JSON body, search_text set as the recorder sets
   it) written through `SqliteStore(path).write([], batch)` in batches of 1000 (the
   recorder's default `record.batch`), into a new store; then the same once the store is full.
2. Fill: the store is filled to N flows (default 1,000,000) in batches of 10,000: ~50 hosts,
   mostly 200 with some 404/500/503, paths /v1/users/N, /v2/orders/N, ..., durations with a
   slow tail, GET/POST/PUT/DELETE, a rare word in a few bodies.
3. Filters: `lanner flows --db PATH list FILTER` timed as a subprocess (wall time of the
   whole command, median of 3), and the store's `flows()` called directly (median of 3),
   with the query plan of each. Target: under 1 s each.

The store goes in a new temporary directory under /tmp (or --db PATH, which must not exist)
and is deleted at the end unless --keep. Free disk is checked first. Figures are with the
store in the page cache (it was just written): a cold cache is slower.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lanner.record import sqlite as sqlite_store
from lanner.record.filter import parse
from lanner.record.model import Body, FlowRecord
from lanner.record.sqlite import SqliteStore

ROOT = Path(__file__).resolve().parent.parent
LANNER = ROOT / ".venv" / "bin" / "lanner"
BYTES_PER_FLOW = 4000  # a generous guess at the store's size per flow (measured: ~3.4 kB), for the disk check
RARE_WORD = "zebracorn"
RARE_EVERY = 100_000  # one body in this many has the rare word
HOSTS = [f"api{n}.example.com" for n in range(40)] + [
    "auth.example.com", "cdn.example.net", "billing.example.org", "search.example.com",
    "static.example.net", "metrics.example.io", "hooks.example.io", "files.example.org",
    "admin.example.com", "ws.example.com",
]  # fmt: skip
RESOURCES = [
    ("/v1/users/{n}", 30), ("/v2/orders/{n}", 20), ("/v1/products/{n}?fields=name,price", 15),
    ("/v2/payments/{n}", 8), ("/v1/sessions/{n}", 8), ("/v3/search?q=item{n}&page=2", 7),
    ("/v2/orders/{n}/items", 6), ("/health", 4), ("/v1/users/{n}/avatar", 2),
]  # fmt: skip
METHODS = [("GET", 70), ("POST", 18), ("PUT", 7), ("DELETE", 5)]
STATUSES = [(200, 91), (404, 5), (500, 2), (503, 1), (304, 1)]
AGENTS = [
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
    "python-requests/2.32.3",
    "okhttp/4.12.0",
    "curl/8.11.0",
]
WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"]
SPAN = 6 * 86400.0  # the flows' start times cover the last six days (inside the default 7d retention)


def weighted(choices: list[tuple[object, int]], count: int, rng: random.Random) -> list:
    values, weights = zip(*choices)
    return rng.choices(values, weights=weights, k=count)


class Flows:
    """Builds realistic FlowRecords, numbered from 0; deterministic for a seed."""

    def __init__(self, total: int, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        self.total = total
        self.t0 = time.time() - SPAN
        self.made = 0

    def batch(self, count: int) -> list[FlowRecord]:
        rng = self.rng
        methods = weighted(METHODS, count, rng)
        statuses = weighted(STATUSES, count, rng)
        paths = weighted(RESOURCES, count, rng)
        records = []
        for k in range(count):
            i = self.made + k
            method, status = methods[k], statuses[k]
            if method == "POST" and status == 200:
                status = 201
            host = HOSTS[rng.randrange(len(HOSTS))]
            path = paths[k].format(n=rng.randrange(1, 200_000))
            started = self.t0 + SPAN * i / self.total
            # durations: lognormal around 30 ms, and a slow tail (0.5%) between 0.9 and 5 s
            duration = rng.uniform(0.9, 5.0) if rng.random() < 0.005 else min(rng.lognormvariate(-3.5, 0.9), 30.0)
            request_id = f"{rng.getrandbits(64):016x}"
            body = self.body(i, host, path, status, rng)
            request_body = b""
            if method in ("POST", "PUT"):
                request_body = json.dumps({"name": f"item-{i}", "quantity": rng.randrange(1, 9)}).encode()
            request_headers = [
                ("Host", host),
                ("User-Agent", AGENTS[i % len(AGENTS)]),
                ("Accept", "application/json"),
                ("Accept-Encoding", "gzip, deflate, br"),
                ("Accept-Language", "en-US,en;q=0.9"),
                ("X-Request-Id", request_id),
                ("Authorization", "[redacted]"),
                ("Content-Type" if request_body else "Connection", "application/json" if request_body else "keep-alive"),
            ]
            response_headers = [
                ("Content-Type", "application/json; charset=utf-8"),
                ("Content-Length", str(len(body))),
                ("Date", time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(started))),
                ("Server", "nginx/1.22.1"),
                ("Cache-Control", "no-store"),
                ("X-Request-Id", request_id),
                ("Vary", "Accept-Encoding"),
                ("ETag", f'W/"{rng.getrandbits(40):010x}"'),
            ]
            text = body.decode()
            if request_body:
                text = request_body.decode() + "\n" + text
            records.append(
                FlowRecord(
                    conn_uid=f"b3nch0.{i // 20}",
                    proto="http",
                    started=started,
                    method=method,
                    host=host,
                    port=80,
                    path=path,
                    request_headers=request_headers,
                    request_body=Body(request_body, len(request_body)),
                    request_ended=started + 0.0002,
                    status=status,
                    reason={200: "OK", 201: "Created", 304: "Not Modified", 404: "Not Found",
                            500: "Internal Server Error", 503: "Service Unavailable"}[status],  # fmt: skip
                    response_headers=response_headers,
                    response_body=Body(body, len(body)),
                    response_started=started + duration * 0.8,
                    response_ended=started + duration,
                    listener="forward",
                    client=f"10.0.{(i // 250) % 250}.{i % 250 + 1}:{40000 + i % 20000}",
                    search_text=text,
                )
            )
        self.made += count
        return records

    @staticmethod
    def body(i: int, host: str, path: str, status: int, rng: random.Random) -> bytes:
        if status >= 400:
            message = {404: "not found", 500: "internal error: upstream timeout", 503: "service unavailable"}[status]
            data = {"error": message, "status": status, "path": path, "request": i, "retry_after": rng.randrange(1, 30)}
        else:
            words = [WORDS[rng.randrange(len(WORDS))] for _ in range(4)]
            if i % RARE_EVERY == RARE_EVERY // 2:
                words[1] = RARE_WORD
            data = {
                "id": i,
                "name": f"user-{i}",
                "email": f"user{i}@{host}",
                "plan": "premium" if i % 3 == 0 else "basic",
                "tags": words,
                "created": "2026-11-20T10:15:00Z",
                "balance": round(rng.uniform(0, 10_000), 2),
                "address": {"city": "Springfield", "street": f"{rng.randrange(1, 999)} Main St", "zip": "49007"},
                "active": True,
                "links": {"self": f"http://{host}{path}", "orders": f"http://{host}/v2/orders?user={i}"},
            }
        return json.dumps(data).encode()


def write_phase(store: SqliteStore, flows: Flows, count: int, batch: int, label: str) -> dict:
    """Write `count` flows in batches; time only store.write."""
    spent = 0.0
    written = 0
    slowest = 0.0
    while written < count:
        records = flows.batch(min(batch, count - written))
        start = time.perf_counter()
        store.write([], records)
        took = time.perf_counter() - start
        spent += took
        slowest = max(slowest, took)
        written += len(records)
        if written % 100_000 < batch:
            print(f"  {label}: {written:,} / {count:,} flows, {written / spent:,.0f} flows/s so far", file=sys.stderr)
    return {"label": label, "flows": written, "seconds": spent, "rate": written / spent, "batch": batch,
            "slowest_batch_s": slowest}  # fmt: skip


def wall(command: list[str]) -> tuple[float, int, str]:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    took = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()}")
    rows = sum(1 for line in done.stdout.splitlines() if line.strip() and not line.lstrip().startswith("ID"))
    return took, rows, done.stderr


def median_of(times: int, function) -> tuple[float, list[float]]:
    runs = []
    for _ in range(times):
        start = time.perf_counter()
        function()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs), runs


def plan(db: sqlite3.Connection, sql: str, params: list) -> str:
    rows = db.execute("EXPLAIN QUERY PLAN " + sql, params).fetchall()
    return "; ".join(row[-1] for row in rows)


FILTERS = [
    ("status:>=500", "required"),
    ("host:api7.example.com method:POST", "required"),
    ("path:/v2/*", "required"),
    ("duration:>900ms", "required"),
    (RARE_WORD, "required: a bare word in a few bodies"),
    ("status:5xx host:api3.example.com", "required"),
    ("", "extra: no filter"),
    ("id:1", "extra: one row by id (mostly the command's start-up)"),
    ("premium", "extra: a bare word in a third of the bodies"),
    ("status:404 path:/v1/users/*", "extra"),
    ("host:*.example.io", "extra: host glob"),
    ("duration:>900ms host:api3.example.com", "extra"),
    ("method:DELETE status:503", "extra"),
    ("method:GET host:nohost.example.com", "extra: no match, two indexed columns"),
    ("error:*", "extra: no match, no usable index"),
    ("url:*token=*", "extra: no match, no usable index"),
    ("size:>1MiB", "extra: no match, no index on size"),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--flows", type=int, default=1_000_000, help="flows in the filled store (default 1,000,000)")
    parser.add_argument("--db", help="the store to create (must not exist; default: a new dir under /tmp)")
    parser.add_argument("--write-flows", type=int, default=50_000, help="flows timed in batches of 1000 (new store)")
    parser.add_argument("--late-flows", type=int, default=20_000, help="flows timed in batches of 1000 at the end")
    parser.add_argument("--runs", type=int, default=3, help="timings per filter (median)")
    parser.add_argument("--keep", action="store_true", help="keep the store")
    args = parser.parse_args()

    created_dir = None
    if args.db:
        path = Path(args.db).absolute()
        if path.exists():
            raise SystemExit(f"{path} exists: give a new path")
        path.parent.mkdir(parents=True, exist_ok=True)
    else:
        created_dir = Path(tempfile.mkdtemp(prefix="lanner-store-bench-", dir="/tmp"))
        path = created_dir / "lanner.db"
    need = args.flows * BYTES_PER_FLOW
    free = shutil.disk_usage(path.parent).free
    print(f"store: {path}; free disk {free / 2**30:.1f} GiB, need up to ~{need / 2**30:.1f} GiB", file=sys.stderr)
    if free < need * 1.5:
        raise SystemExit("not enough free disk")
    try:
        return run(args, path)
    finally:
        if not args.keep:
            for suffix in ("", "-wal", "-shm"):
                Path(str(path) + suffix).unlink(missing_ok=True)
            if created_dir is not None:
                shutil.rmtree(created_dir, ignore_errors=True)
            print(f"removed {path}", file=sys.stderr)


def run(args: argparse.Namespace, path: Path) -> int:
    late = min(args.late_flows, max(0, args.flows - args.write_flows))
    early = min(args.write_flows, args.flows)
    fill = args.flows - early - late
    flows = Flows(args.flows)
    store = SqliteStore(str(path))
    phases = [write_phase(store, flows, early, 1000, "new store, batches of 1000")]
    fill_start = time.perf_counter()
    if fill > 0:
        phases.append(write_phase(store, flows, fill, 10_000, "fill, batches of 10,000"))
    if late > 0:
        phases.append(write_phase(store, flows, late, 1000, f"store at {early + fill:,} flows, batches of 1000"))
    fill_wall = time.perf_counter() - fill_start
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    size = sum(os.path.getsize(str(path) + s) for s in ("", "-wal") if os.path.exists(str(path) + s))

    out = [
        "# Flow store benchmark",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {os.cpu_count()} cores; "
        f"Python {sys.version.split()[0]}, SQLite {sqlite3.sqlite_version}; {args.flows:,} flows, "
        f"store {size / 2**20:,.0f} MiB ({size / args.flows:,.0f} B/flow); fill wall time {fill_wall:,.0f} s "
        "(building records included).",
        "",
        "## Writes (`SqliteStore.write([], batch)`, time in write only)",
        "",
        "| phase | flows | batch | flows/s | slowest batch (s) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for phase in phases:
        out.append(
            f"| {phase['label']} | {phase['flows']:,} | {phase['batch']:,} | {phase['rate']:,.0f} "
            f"| {phase['slowest_batch_s']:.3f} |"
        )
    out.append("")
    out.append(f"Target: ≥ 5,000 flows/s in batches of 1000: new store "
               f"{'met' if phases[0]['rate'] >= 5000 else '**not met**'} ({phases[0]['rate']:,.0f}/s)"
               + (f"; full store {'met' if phases[-1]['rate'] >= 5000 else '**not met**'} "
                  f"({phases[-1]['rate']:,.0f}/s)" if late > 0 else "") + ".")  # fmt: skip

    reader = SqliteStore(str(path), readonly=True)
    raw = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    base = [str(LANNER), "flows", "--db", str(path), "list"]
    version_s, _ = median_of(args.runs, lambda: subprocess.run([str(LANNER), "--version"], capture_output=True))
    rows_out = []
    plans = []
    for text, why in FILTERS:
        query = parse(text) if text else None
        where, params = sqlite_store._where(query)
        sql = f"SELECT {sqlite_store._FLOW_COLUMNS} FROM flows WHERE {where} ORDER BY id DESC LIMIT ?"
        matching = reader.count(query)
        direct_s, direct_runs = median_of(args.runs, lambda: reader.flows(query, limit=50))
        cli_runs = []
        shown = 0
        for _ in range(args.runs):
            took, shown, _err = wall(base + (text.split() if text else []))
            cli_runs.append(took)
        cli_s = statistics.median(cli_runs)
        rows_out.append((text or "(none)", why, matching, shown, cli_s, max(cli_runs), direct_s, max(direct_runs)))
        plans.append((text or "(none)", plan(raw, sql, [*params, 50])))
        print(f"  {text or '(none)'}: cli {cli_s:.3f}s, flows() {direct_s:.3f}s, {matching:,} match", file=sys.stderr)

    out += [
        "",
        "## Filters (`lanner flows --db PATH list FILTER`, 50 newest shown)",
        "",
        f"Wall time of the whole command, median of {args.runs} (max); `flows()` is `SqliteStore.flows(query, limit=50)` "
        f"on an open reader. `lanner --version` alone takes {version_s:.3f} s (interpreter and import start-up).",
        "",
        "| filter | why | flows matching | rows shown | `lanner flows list` s | `flows()` s | < 1 s |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for text, why, matching, shown, cli_s, cli_max, direct_s, direct_max in rows_out:
        ok = "yes" if cli_s < 1.0 else "**no**"
        out.append(
            f"| `{text}` | {why} | {matching:,} | {shown} | {cli_s:.3f} ({cli_max:.3f}) "
            f"| {direct_s:.3f} ({direct_max:.3f}) | {ok} |"
        )
    out += ["", "## Query plans (`EXPLAIN QUERY PLAN` of the `flows()` query)", ""]
    for text, steps in plans:
        out.append(f"- `{text}`: {steps}")
    reader.close()
    raw.close()

    # The store never runs ANALYZE, so the planner picks among indexes without statistics.
    # What statistics would change: ANALYZE this (throwaway) store, then plan and time again.
    writer = sqlite3.connect(str(path))
    start = time.perf_counter()
    writer.execute("ANALYZE")
    writer.commit()
    analyze_s = time.perf_counter() - start
    writer.close()
    reader = SqliteStore(str(path), readonly=True)
    raw = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    out += [
        "",
        f"## With statistics (`ANALYZE` on this store: {analyze_s:.1f} s; lanner's store never runs it)",
        "",
        "| filter | `flows()` s before | `flows()` s after ANALYZE | plan after (when it changed) |",
        "| --- | ---: | ---: | --- |",
    ]
    for (text, _why, _m, _shown, _cli, _cmax, direct_s, _dmax), (_t, before_plan) in zip(rows_out, plans):
        query = parse(text) if text != "(none)" else None
        where, params = sqlite_store._where(query)
        sql = f"SELECT {sqlite_store._FLOW_COLUMNS} FROM flows WHERE {where} ORDER BY id DESC LIMIT ?"
        after_s, _ = median_of(args.runs, lambda: reader.flows(query, limit=50))
        after_plan = plan(raw, sql, [*params, 50])
        changed = after_plan if after_plan != before_plan else ""
        out.append(f"| `{text}` | {direct_s:.3f} | {after_s:.3f} | {changed} |")
    reader.close()
    raw.close()
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
