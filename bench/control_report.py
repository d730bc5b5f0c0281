"""Helpers for bench/control.sh: fill a store, time the admin API and /metrics, render the report.

    control_report.py fill DB FLOWS              -> {"flows", "seconds"}: a new store of FLOWS flows
                                                    (bench/store_bench.py's flows, batches of 10,000)
    control_report.py api PORT CALLS             -> each endpoint CALLS times, one client, back to back,
                                                    endpoints in turn: {"endpoints": {name: {...}}}
    control_report.py api PORT SECONDS CLIENTS --timed
                                                 -> the same endpoints in turn for SECONDS, CLIENTS clients
                                                    at once (threads, one keep-alive connection each)
    control_report.py scrape PORT [SECONDS INTERVAL]
                                                 -> one GET /metrics (ms, bytes, sums of some counters);
                                                    with SECONDS: one every INTERVAL s for SECONDS s
    control_report.py share RAW PATTERN...       -> share of py-spy raw samples whose stack has a pattern
    control_report.py without-metrics run -c CONFIG
                                                 -> an experiment: `lanner run` with the data path's metric
                                                    calls (lanner.control.metrics.ListenerMetrics) made no-ops
    control_report.py render RESULTS.jsonl OUT.md -> the markdown report

Everything goes to 127.0.0.1. Standard library only, apart from `fill` (lanner's store, and
bench/store_bench.py's flow maker), which runs on lanner's venv.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import statistics
import sys
import threading
import time
import urllib.parse

HOST = "127.0.0.1"


# --- fill -----------------------------------------------------------------------------------------


def fill(path: str, total: int) -> dict:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from store_bench import Flows  # noqa: PLC0415 (bench/ is not a package)

    from lanner.record.sqlite import SqliteStore  # noqa: PLC0415

    if os.path.exists(path):
        raise SystemExit(f"{path} exists")
    flows = Flows(total)
    store = SqliteStore(path)
    started = time.perf_counter()
    written = 0
    while written < total:
        batch = flows.batch(min(10_000, total - written))
        store.write([], batch)
        written += len(batch)
    store.close()
    return {
        "flows": written,
        "seconds": round(time.perf_counter() - started, 1),
        "bytes": sum(os.path.getsize(path + s) for s in ("", "-wal") if os.path.exists(path + s)),
    }


# --- the admin API --------------------------------------------------------------------------------


class Client:
    """One keep-alive connection to the admin listener; reconnects after an error."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn: http.client.HTTPConnection | None = None

    def get(self, path: str) -> tuple[int, bytes, float]:
        """(status, body, seconds); status 0 on a transport error."""
        started = time.perf_counter()
        try:
            if self.conn is None:
                self.conn = http.client.HTTPConnection(HOST, self.port, timeout=60)
            self.conn.request("GET", path)
            response = self.conn.getresponse()
            body = response.read()
            return response.status, body, time.perf_counter() - started
        except (OSError, http.client.HTTPException) as exc:
            if self.conn is not None:
                self.conn.close()
            self.conn = None
            return 0, repr(exc).encode()[:200], time.perf_counter() - started


def flows_url(query: str = "", limit: int = 100, cursor: str | None = None) -> str:
    params = {"limit": str(limit)}
    if query:
        params["filter"] = query
    if cursor:
        params["cursor"] = cursor
    return "/api/v1/flows?" + urllib.parse.urlencode(params)


def endpoints(port: int) -> list[tuple[str, object]]:
    """(name, path or a function of the call number giving one). Reads the newest id first."""
    status, body, _ = Client(port).get(flows_url(limit=1))
    if status != 200:
        raise SystemExit(f"GET /api/v1/flows answered {status}: {body[:200]!r}")
    page = json.loads(body)["flows"]
    top = int(page[0]["id"]) if page else 1
    deep = str(max(2, top - 50_000))  # a cursor is the last id seen: this one is 50,000 flows back
    ids = [max(1, top - 997 * k % max(1, top - 1)) for k in range(1, 512)]  # spread over the store
    return [
        ("GET /health", "/health"),
        ("GET /api/v1/flows (first page, limit 100)", flows_url()),
        ("GET /api/v1/flows, a page 50,000 flows deep (cursor)", flows_url(cursor=deep)),
        ("GET /api/v1/flows?filter=status:>=500", flows_url("status:>=500")),
        (
            "GET /api/v1/flows?filter=status:>=500 timeout (status + full text)",
            flows_url("status:>=500 timeout"),
        ),
        ("GET /api/v1/flows?filter=zebracorn (full text, rare word)", flows_url("zebracorn")),
        ("GET /api/v1/flows/count", "/api/v1/flows/count"),
        ("GET /api/v1/flows/count?filter=status:>=500", "/api/v1/flows/count?filter=status%3A%3E%3D500"),
        ("GET /api/v1/stats", "/api/v1/stats"),
        ("GET /api/v1/flows/{id}", lambda n: f"/api/v1/flows/{ids[n % len(ids)]}"),
    ]


def summarise(samples: dict[str, list[tuple[int, int, float]]]) -> dict:
    out = {}
    for name, calls in samples.items():
        times = sorted(seconds * 1000 for _, _, seconds in calls)
        ok = [size for status, size, _ in calls if status == 200]
        out[name] = {
            "calls": len(calls),
            "errors": len(calls) - len(ok),
            "statuses": sorted({status for status, _, _ in calls}),
            "median_ms": round(statistics.median(times), 2) if times else None,
            "p95_ms": round(times[min(len(times) - 1, int(0.95 * len(times)))], 2) if times else None,
            "max_ms": round(times[-1], 2) if times else None,
            "bytes": round(statistics.median(ok)) if ok else None,
        }
    return out


def api(port: int, calls: int | None, seconds: float | None, clients: int) -> dict:
    plan = endpoints(port)
    samples: dict[str, list[tuple[int, int, float]]] = {name: [] for name, _ in plan}
    lock = threading.Lock()
    deadline = time.monotonic() + seconds if seconds else None
    first_error: list[str] = []

    def worker(offset: int) -> None:
        client = Client(port)
        n = offset
        while True:
            if deadline is not None and time.monotonic() >= deadline:
                return
            if deadline is None and n >= calls * len(plan):
                return
            name, path = plan[n % len(plan)]
            target = path(n // len(plan)) if callable(path) else path
            status, body, took = client.get(target)
            with lock:
                samples[name].append((status, len(body), took))
                if status != 200 and not first_error:
                    first_error.append(f"{status} {target}: {body[:160]!r}")
            n += 1

    started = time.monotonic()
    threads = [threading.Thread(target=worker, args=(k * 3,)) for k in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    total = sum(len(v) for v in samples.values())
    return {
        "endpoints": summarise(samples),
        "calls": total,
        "clients": clients,
        "seconds": round(elapsed, 2),
        "calls_per_s": round(total / elapsed, 1),
        "first_error": first_error[0] if first_error else None,
    }


# --- /metrics -------------------------------------------------------------------------------------

COUNTERS = (
    "lanner_connections_opened_total",
    "lanner_connections_closed_total",
    "lanner_http_responses_total",
    "lanner_config_reloads_total",
    "lanner_store_written_total",
)
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")


def scrape_once(port: int, client: Client | None = None) -> dict:
    status, body, took = (client or Client(port)).get("/metrics")
    sums = dict.fromkeys(COUNTERS, 0.0)
    series = 0
    for line in body.decode(errors="replace").splitlines():
        if not line or line.startswith("#"):
            continue
        series += 1
        match = _SAMPLE.match(line)
        if match and match.group(1) in sums:
            labels = match.group(2) or ""
            if match.group(1) == "lanner_http_responses_total" and 'class="2xx"' not in labels:
                continue
            if match.group(1) == "lanner_config_reloads_total" and 'result="ok"' not in labels:
                continue
            sums[match.group(1)] += float(match.group(3))
    return {
        "status": status,
        "ms": round(took * 1000, 2),
        "bytes": len(body),
        "series": series,
        **{name.removeprefix("lanner_"): int(value) for name, value in sums.items()},
    }


def scrape_loop(port: int, seconds: float, interval: float) -> dict:
    client = Client(port)
    deadline = time.monotonic() + seconds
    scrapes = []
    while time.monotonic() < deadline:
        began = time.monotonic()
        scrapes.append(scrape_once(port, client))
        time.sleep(max(0.0, interval - (time.monotonic() - began)))
    times = sorted(s["ms"] for s in scrapes)
    return {
        "scrapes": len(scrapes),
        "errors": sum(s["status"] != 200 for s in scrapes),
        "median_ms": round(statistics.median(times), 2) if times else None,
        "max_ms": times[-1] if times else None,
        "bytes": scrapes[-1]["bytes"] if scrapes else None,
        "series": scrapes[-1]["series"] if scrapes else None,
    }


# --- an experiment: lanner without the data path's metric calls ---------------------------------


def without_metrics(args: list[str]) -> None:
    """Run lanner's CLI with ListenerMetrics' methods replaced by no-ops (nothing else changes).

    prometheus_client is imported here before lanner could pick its per-run directory, so one is
    made here the same way (lanner then logs that it was imported too early); it is removed at exit.
    """
    import atexit  # noqa: PLC0415
    import runpy  # noqa: PLC0415
    import shutil  # noqa: PLC0415
    import tempfile  # noqa: PLC0415

    directory = tempfile.mkdtemp(prefix="lanner-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    owner = os.getpid()
    atexit.register(lambda: os.getpid() == owner and shutil.rmtree(directory, ignore_errors=True))
    from lanner.control import metrics  # noqa: PLC0415

    for name in ("opened", "refused", "handshake", "connected", "closed", "answered"):
        setattr(metrics.ListenerMetrics, name, lambda self, *a, **k: None)
    sys.argv = ["lanner", *args]
    runpy.run_module("lanner", run_name="__main__", alter_sys=True)


# --- py-spy ---------------------------------------------------------------------------------------


def share(raw: str, patterns: list[str]) -> dict:
    """py-spy --format raw: `frame;frame;... COUNT` per line. Share of samples per pattern."""
    total = 0
    hits = dict.fromkeys(patterns, 0)
    with open(raw) as handle:
        for line in handle:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not count.isdigit():
                continue
            total += int(count)
            for pattern in patterns:
                if pattern in stack:
                    hits[pattern] += int(count)
    return {
        "samples": total,
        "share": {p: round(100 * n / total, 1) if total else None for p, n in hits.items()},
    }


# --- the report -----------------------------------------------------------------------------------


def load(path: str) -> list[dict]:
    with open(path) as handle:
        return [json.loads(line) for line in handle if line.strip()]


def med(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def cores(item: dict) -> float | None:
    ticks, seconds = item.get("proxy_cpu_ticks"), item.get("seconds")
    if ticks is None or not seconds:
        return None
    return ticks / os.sysconf("SC_CLK_TCK") / seconds


def rate_of(item: dict) -> float | None:
    return item.get("rps") if item.get("rps") is not None else item.get("tunnels_per_s")


def failed(item: dict) -> int:
    return int(item.get("errors") or 0) + (1 if "unavailable" in item or rate_of(item) is None else 0)


def pick(items: list[dict], subject: str, metric: str) -> list[dict]:
    return [i for i in items if i.get("subject") == subject and i.get("metric") == metric]


def fmt(number: float | None, digits: int = 0) -> str:
    return "–" if number is None else f"{number:,.{digits}f}"


def rate_cell(runs: list[dict], unit: str) -> str:
    """median [range] unit, median p99 and proxy CPU, errors."""
    rates = [rate_of(i) for i in runs if rate_of(i) is not None]
    if not rates:
        return (
            "failed: "
            + "; ".join(str(i.get("unavailable") or i.get("notes") or i.get("first_error")) for i in runs)[
                :200
            ]
        )
    text = f"{fmt(med(rates))} {unit}"
    if len(rates) > 1:
        text += f" [{fmt(min(rates))}–{fmt(max(rates))}]"
    p99 = med([i["p99_ms"] for i in runs if i.get("p99_ms") is not None])
    if p99 is not None:
        text += f", p99 {p99:.1f} ms"
    cpu = med([c for c in (cores(i) for i in runs) if c is not None])
    if cpu is not None:
        text += f", CPU {cpu:.2f}"
    errors = sum(int(i.get("errors") or 0) for i in runs)
    if errors:
        text += f", **{errors:,} errors**"
    others = med(
        [
            i["others_cpu_ticks"] / os.sysconf("SC_CLK_TCK") / i["seconds"]
            for i in runs
            if i.get("others_cpu_ticks") is not None and i.get("seconds")
        ]
    )
    if others is not None and others >= 0.05:
        text += f", other processes CPU {others:.2f}"
    return text


def per_cpu(runs: list[dict]) -> float | None:
    values = [rate_of(i) / cores(i) for i in runs if rate_of(i) is not None and cores(i)]
    return med(values)


def ratio_cell(after: list[dict], before: list[dict], key=rate_of) -> str:
    """The median of the per-round ratios (each round's pair ran minutes apart), then the rounds'
    ratios, then the ratio of the two medians."""
    a = [key(i) for i in after if key(i) is not None]
    b = [key(i) for i in before if key(i) is not None]
    if not a or not b:
        return "–"
    by_round: dict = {}
    for side, items in ((0, before), (1, after)):
        for i in items:
            if key(i) is not None:
                by_round.setdefault(i.get("round"), [None, None])[side] = key(i)
    pairs = [x[1] / x[0] for _, x in sorted(by_round.items()) if x[0] and x[1]]
    if len(pairs) < 2:
        return f"**{med(a) / med(b):.3f}**"
    text = f"**{med(pairs):.3f}** (rounds " + " / ".join(f"{r:.2f}" for r in pairs)
    return text + f"; of the medians {med(a) / med(b):.3f})"


def cpu_rate(item: dict) -> float | None:
    c = cores(item)
    return rate_of(item) / c if c and rate_of(item) is not None else None


def render(path: str, out: str) -> None:
    items = load(path)
    env = os.environ.get
    lines = [
        f"# lanner control plane benchmark — {env('BENCH_DATE', '?')}",
        "",
        f"Machine: {env('BENCH_MACHINE', '?')}. All traffic on 127.0.0.1; the load generator, the origin "
        f"(nginx, 1 worker) and lanner share the cores. DUR={env('DUR', '?')}s per run, "
        f"{env('CONC', '?')} concurrent clients, {env('ROUNDS', '?')} rounds. CPU busy before the run: "
        f'{env("BENCH_BUSY", "?")}. "CPU" is lanner\'s CPU (its whole process tree: workers and the '
        "recording "
        "writer) in cores during the run; per-CPU-second figures divide the rate by it.",
        "",
    ]
    if env("BENCH_SRC_CHANGED"):
        lines += [
            "**lanner's source changed during the run** (the after rows may mix code): "
            + env("BENCH_SRC_CHANGED", ""),
            "",
        ]

    # 1. overhead
    if any(i.get("metric") in ("fwd", "new_connect") for i in items):
        lines += [
            "## 1. Data-path overhead: HEAD against the tree before issue 8",
            "",
            f"Before: `{env('BEFORE_REV', '?')}` (from `{env('BEFORE_TREE', '?')}`); "
            f"after: `{env('AFTER_REV', '?')}` "
            "(admin API on, metrics on, config file watched, all defaults apart from the listener, "
            "`admin.bind`, and `data_dir`). Median of the rounds [range]; p99 and CPU are medians too. "
            "The subjects alternate within each round, and their order rotates every round.",
            "",
            "| | HTTP forward, keep-alive (wrk) | per CPU-second | new CONNECT tunnels/s | per CPU-second |",
            "| --- | --- | --- | --- | --- |",
        ]
        labels = [("direct", "direct (no proxy)")]
        for rec in ("off", "on"):
            labels += [
                (f"before-{rec}", f"before, recording {rec}"),
                (f"after-{rec}", f"**after**, recording {rec}"),
            ]
            if rec == "off":
                labels += [
                    ("noadmin-off", "after, `admin.enabled: false`, recording off"),
                    (
                        "nometrics-off",
                        "after, data-path metric calls made no-ops (experiment), recording off",
                    ),
                ]
        for subject, label in labels:
            fwd, new = pick(items, subject, "fwd"), pick(items, subject, "new_connect")
            if not fwd and not new:
                continue
            lines.append(
                f"| {label} | {rate_cell(fwd, 'req/s') if fwd else '–'} | {fmt(per_cpu(fwd))} | "
                f"{rate_cell(new, 'tunnels/s') if new else '–'} | {fmt(per_cpu(new))} |"
            )
            if subject.startswith(("after", "noadmin", "nometrics")):
                rec = subject.rpartition("-")[2]
                bf, bn = pick(items, f"before-{rec}", "fwd"), pick(items, f"before-{rec}", "new_connect")
                lines.append(
                    f"| {subject.partition('-')[0]} / before, recording {rec} | {ratio_cell(fwd, bf)} | "
                    f"{ratio_cell(fwd, bf, cpu_rate)} | {ratio_cell(new, bn)} | "
                    f"{ratio_cell(new, bn, cpu_rate)} |"
                )
        lines.append("")

    # 2. metrics with two workers
    scrapes = [i for i in items if i.get("metric", "").startswith("scrape_")]
    if scrapes:
        lines += [
            "## 2. `/metrics` with `--workers 2` (recording on)",
            "",
            "Scrapes once a second while the load runs (one keep-alive client); the counters are read "
            "once before and once after each load. The scrape is answered on worker 0's event loop.",
            "",
            "| load | load's rate | scrapes | scrape time, median (max) | body | series | "
            "connections the load opened | `lanner_connections_opened_total` delta | "
            '2xx responses: wrk / `lanner_http_responses_total{class="2xx"}` delta |',
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        idle = pick(items, "w2", "scrape_idle")
        if idle:
            i = idle[0]
            lines.append(
                f"| none (idle, after start) | – | 1 | {i['ms']:.1f} ms | {i['bytes']:,} B | {i['series']} "
                "| – | – | – |"
            )
        for load_name, label in (("fwd", "wrk, keep-alive"), ("new_connect", "new CONNECT tunnels")):
            for i in pick(items, "w2", f"scrape_{load_name}"):
                opened = i.get("load_connections")
                responses = (
                    f"{fmt(i.get('load_requests'))} / {fmt(i.get('responses_2xx_delta'))}"
                    if load_name == "fwd"
                    else "–"
                )
                lines.append(
                    f"| {label} (round {i.get('round'):.0f}) | {fmt(i.get('load_rate'))}/s | "
                    f"{i.get('scrapes', 0):.0f} ({i.get('errors', 0):.0f} failed) | "
                    f"{fmt(i.get('median_ms'), 1)} ms ({fmt(i.get('max_ms'), 1)}) | "
                    f"{fmt(i.get('bytes'))} B | {fmt(i.get('series'))} | {fmt(opened)} | "
                    f"{fmt(i.get('opened_delta'))} | {responses} |"
                )
        lines.append("")

    # 3. admin API with a full store
    idle = pick(items, "api", "api_idle")
    modes = [m for m in ("none", "on") if any(i.get("subject", "").startswith(f"api-{m}") for i in items)]
    if idle or modes:
        fill_info = (pick(items, "api", "fill") or [{}])[0]
        hammer = env("HAMMER_CLIENTS", "N")
        mib = (fill_info.get("bytes") or 0) / 2**20
        lines += [
            "## 3. Admin API with a full store",
            "",
            f"A store of {fmt(fill_info.get('flows'))} flows ({fmt(mib)} MiB, written in "
            f"{fill_info.get('seconds', '?')} s) is copied in before each lanner (one worker) starts. "
            "Idle: one client, back to back, the endpoints in turn. Under load: while wrk runs through "
            f"the proxy, the same endpoints in turn for the whole run, from 1 client and from {hammer} "
            "clients at once. Two lanner processes per round: `analyze: none` on the listener (the "
            "store keeps its flows; connections only are recorded) and recording on (every exchange "
            "is stored too, so the store grows by wrk's requests). Times are a whole call on a "
            "kept-alive connection: median / p95 in ms, over all rounds' calls' per-round medians.",
            "",
        ]
        head = "| endpoint | body | idle |"
        rule = "| --- | --- | --- |"
        for mode in modes:
            for n in ("1", hammer):
                listener = "analyze: none" if mode == "none" else "recording on"
                head += f" wrk + {n} client{'s' if n != '1' else ''}, {listener} |"
                rule += " --- |"
        lines += [head, rule]

        def merged(runs: list[dict], name: str) -> str:
            found = [r["endpoints"][name] for r in runs if name in r.get("endpoints", {})]
            if not found:
                return "–"
            m = med([f["median_ms"] for f in found if f["median_ms"] is not None])
            p = med([f["p95_ms"] for f in found if f["p95_ms"] is not None])
            calls = sum(f["calls"] for f in found)
            errors = sum(f["errors"] for f in found)
            text = f"{fmt(m, 1)} / {fmt(p, 1)} ({calls} calls"
            return text + (f", **{errors} failed**)" if errors else ")")

        names = list(idle[0]["endpoints"]) if idle else []
        for name in names:
            body = idle[0]["endpoints"][name].get("bytes")
            row = f"| `{name}` | {fmt(body)} B | {merged(idle, name)} |"
            for mode in modes:
                for metric in ("api_load1", "api_loadn"):
                    row += f" {merged(pick(items, f'api-{mode}', metric), name)} |"
            lines.append(row)
        lines += [
            "",
            "Proxy throughput while the API is used (the same lanner process, the three runs alternating):",
            "",
            "| listener | wrk alone | wrk + 1 API client | wrk + "
            + hammer
            + " API clients | API calls/s (1 / "
            + hammer
            + " clients) | flows in the store at each round's end |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for mode in modes:
            alone = pick(items, f"api-{mode}-alone", "fwd")
            one, many = pick(items, f"api-{mode}-1", "fwd"), pick(items, f"api-{mode}-n", "fwd")
            calls1 = med(
                [s["calls_per_s"] for s in pick(items, f"api-{mode}", "api_load1") if "calls_per_s" in s]
            )
            callsn = med(
                [s["calls_per_s"] for s in pick(items, f"api-{mode}", "api_loadn") if "calls_per_s" in s]
            )
            counts = ", ".join(fmt(c.get("flows")) for c in pick(items, f"api-{mode}", "store_count"))
            label = "`analyze: none`" if mode == "none" else "recording on"
            lines.append(
                f"| {label} | {rate_cell(alone, 'req/s')} | {rate_cell(one, 'req/s')} | "
                f"{rate_cell(many, 'req/s')} | {fmt(calls1, 1)} / {fmt(callsn, 1)} | {counts} |"
            )
            lines.append(f"| ratio to alone | | {ratio_cell(one, alone)} | {ratio_cell(many, alone)} | | |")
        lines.append("")

    # 4. hot reload
    if any(i.get("subject", "").startswith("reload") for i in items):
        lines += [
            "## 4. Hot reload under load",
            "",
            f"{env('RELOADS', '?')} SIGHUPs during a run, each after rewriting one rule (`deny` of a host "
            "name that "
            "changes every time), spread over the run; the same lanner process measured without reloads "
            "too (alternating). Recording on, `config_watch_interval: 0` (only SIGHUP reloads).",
            "",
            "| load | no reloads | with reloads | ratio | reloads applied (log) |",
            "| --- | --- | --- | --- | --- |",
        ]
        for metric, label, unit in (
            ("fwd", "wrk, keep-alive", "req/s"),
            ("new_connect", "new CONNECT tunnels", "tunnels/s"),
        ):
            quiet, busy = pick(items, "reload-none", metric), pick(items, "reload-sighup", metric)
            if quiet or busy:
                applied = [int(i.get("reloads_applied") or 0) for i in busy]
                lines.append(
                    f"| {label} | {rate_cell(quiet, unit)} | {rate_cell(busy, unit)} | "
                    f"{ratio_cell(busy, quiet)} | {', '.join(map(str, applied))} |"
                )
        lines.append("")

    text = "\n".join(lines) + "\n"
    with open(out, "w") as handle:
        handle.write(text)
    sys.stdout.write(text)


def main(argv: list[str]) -> None:
    command = argv[1] if len(argv) > 1 else ""
    if command == "fill" and len(argv) == 4:
        print(json.dumps(fill(argv[2], int(argv[3]))))
    elif command == "api" and len(argv) == 4:
        print(json.dumps(api(int(argv[2]), int(argv[3]), None, 1)))
    elif command == "api" and len(argv) == 6 and argv[5] == "--timed":
        print(json.dumps(api(int(argv[2]), None, float(argv[3]), int(argv[4]))))
    elif command == "scrape" and len(argv) == 3:
        print(json.dumps(scrape_once(int(argv[2]))))
    elif command == "scrape" and len(argv) == 5:
        print(json.dumps(scrape_loop(int(argv[2]), float(argv[3]), float(argv[4]))))
    elif command == "share" and len(argv) >= 4:
        print(json.dumps(share(argv[2], argv[3:])))
    elif command == "without-metrics":
        without_metrics(argv[2:])
    elif command == "render" and len(argv) == 4:
        render(argv[2], argv[3])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
