"""Results plumbing for bench/db.sh.

    db_report.py redis < CSV            -> {"ops", "p50_ms", "p99_ms"}: one redis-benchmark -q --csv test
    db_report.py pgbench < OUTPUT       -> {"ops", "transactions", "expected", "failed", "latency_ms"}:
                                           pgbench's summary; expected: the statements it sent
    db_report.py flows DB               -> {"redis": n, "postgres": n, "connections": n, "by_proto": {...}}:
                                           flows per listener in the store right now (read-only)
    db_report.py count DB LISTENER      -> that listener's flows in the store right now (-1: unreadable)
    db_report.py brief < JSON_LINE      -> "N ops/s" or "FAILED: why", for the progress lines
    db_report.py others ROOT_PID [BEFORE.json] -> as report.py others, without the servers under test
                                           (redis-server, postgres): what else loads the machine
    db_report.py render RESULTS.jsonl OUT.md -> the tables and the issue's targets; exit status 1 when a
                                           target was missed, a measurement failed or flows went missing

The results are report.py's JSON lines: subject (the mode: direct, none, analyzed), metric (a test:
redis-set, redis-get, redis-set-p16, redis-get-p16, pg-simple, pg-extended; or `store`: what one
lanner run left in its store and its log; or `mode`: why a mode did not run) and round.
"""

from __future__ import annotations

import csv
import json
import os
import re
import sqlite3
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import ticks_outside  # noqa: E402

TCK = os.sysconf("SC_CLK_TCK")
SERVERS = ("redis-server", "postgres")  # their CPU is part of what is measured, not someone else's load
# pgbench's own statements, on its first connection: the scale, and the partitions of pgbench_accounts
PG_SETUP_QUERIES = 2
# test -> (label, the analyzed/direct target from the issue, the listener its flows go to)
TESTS = [
    ("redis-set", "redis-benchmark SET", 0.5, "redis"),
    ("redis-get", "redis-benchmark GET", 0.5, "redis"),
    ("redis-set-p16", "redis-benchmark SET -P 16", 0.3, "redis"),
    ("redis-get-p16", "redis-benchmark GET -P 16", 0.3, "redis"),
    ("pg-simple", "pgbench -S -M simple", 0.5, "postgres"),
    ("pg-extended", "pgbench -S -M extended", 0.5, "postgres"),
]


def parse_redis(text: str) -> dict:
    rows = [row for row in csv.reader(text.splitlines()) if row and row[0] != "test"]
    try:
        header = next(csv.reader(line for line in text.splitlines() if line.startswith('"test"')))
    except StopIteration:
        header = []
    if not rows or len(rows[-1]) < 2:
        return {"unavailable": "redis-benchmark: " + " ".join(text.split())[:200]}
    row = dict(zip(header, rows[-1], strict=False)) if header else {}
    result: dict = {"ops": float(rows[-1][1])}
    for key, name in (("p50_latency_ms", "p50_ms"), ("p99_latency_ms", "p99_ms")):
        if key in row:
            result[name] = float(row[key])
    return result


def parse_pgbench(text: str) -> dict:
    def find(pattern: str) -> str | None:
        match = re.search(pattern, text, re.MULTILINE)
        return match.group(1) if match else None

    tps = find(r"^tps = ([\d.]+) \(without initial connection time\)") or find(r"^tps = ([\d.]+)")
    if tps is None:
        return {"unavailable": "pgbench: " + " ".join(text.split())[-200:]}
    transactions = int(find(r"actually processed: (\d+)") or 0)
    result: dict = {
        "ops": float(tps),
        "transactions": transactions,
        "expected": transactions + PG_SETUP_QUERIES,
    }
    failed = find(r"^number of failed transactions: (\d+)")
    result["failed"] = int(failed) if failed else 0
    latency = find(r"^latency average = ([\d.]+) ms")
    if latency:
        result["latency_ms"] = float(latency)
    return result


def count_flows(path: str) -> dict:
    result: dict = {"redis": 0, "postgres": 0, "connections": 0, "by_proto": {}}
    if not os.path.exists(path):  # nothing written yet
        return result
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        for listener, n in db.execute("SELECT listener, count(*) FROM flows GROUP BY listener"):
            result[listener] = n
        result["by_proto"] = dict(db.execute("SELECT proto, count(*) FROM flows GROUP BY proto").fetchall())
        result["connections"] = db.execute("SELECT count(*) FROM connections").fetchone()[0]
    except sqlite3.Error as error:
        result["error"] = str(error)
    return result


def others(root: int) -> dict[str, int]:
    found = {}
    for key, ticks in ticks_outside(root).items():
        try:
            with open(f"/proc/{key.partition(':')[0]}/comm") as handle:
                if handle.read().strip() in SERVERS:
                    continue
        except OSError:
            pass
        found[key] = ticks
    return found


# --- the report ---


def med(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def render(results_path: str, out_path: str) -> int:
    items = [json.loads(line) for line in open(results_path) if line.strip()]
    env = os.environ
    by: dict[tuple[str, str], list[dict]] = {}
    for item in items:
        by.setdefault((item["subject"], item["metric"]), []).append(item)
    skipped = {item["subject"]: item.get("unavailable", "") for item in items if item["metric"] == "mode"}
    failed = False

    def ops(mode: str, test: str) -> float | None:
        return med([i.get("ops") for i in by.get((mode, test), [])])

    def ops_cell(mode: str, test: str) -> str:
        rows = by.get((mode, test), [])
        figures = sorted(i["ops"] for i in rows if i.get("ops") is not None)
        if not figures:
            if mode in skipped:
                return "not run"
            notes = "; ".join(str(i.get("unavailable", "?")) for i in rows)
            return f"failed ({notes[:120]})" if rows else "–"
        text = f"{statistics.median(figures):,.0f}"
        if len(figures) > 1:
            text += f" ({figures[0]:,.0f}–{figures[-1]:,.0f})"
        return text

    def ratio(mode: str, test: str) -> float | None:
        top, bottom = ops(mode, test), ops("direct", test)
        return top / bottom if top and bottom else None

    def ratio_text(mode: str, test: str) -> str:
        value = ratio(mode, test)
        if value is None:
            return ""
        text = f" ({value:.2f}"
        rounds = sorted(
            i["ops"] / d["ops"]
            for i in by.get((mode, test), [])
            for d in by.get(("direct", test), [])
            if i["round"] == d["round"] and i.get("ops") and d.get("ops")
        )
        if len(rounds) > 1:
            text += f"; rounds {rounds[0]:.2f}–{rounds[-1]:.2f}"
        return text + ")"

    def cpu(mode: str, test: str) -> str:
        per = [
            100 * i["lanner_cpu_ticks"] / TCK / i["seconds"]
            for i in by.get((mode, test), [])
            if i.get("lanner_cpu_ticks") is not None and i.get("seconds")
        ]
        value = med(per)
        return "–" if value is None else f"{value:.0f}%"

    def flows_cell(test: str) -> tuple[str, bool]:
        rows = [i for i in by.get(("analyzed", test), []) if i.get("flows") is not None]
        if not rows:
            return "–", False
        flows = sum(i["flows"] for i in rows)
        expected = sum(i.get("expected") or 0 for i in rows)
        missing = max(0, expected - flows)
        drain = med([i.get("drain_s") for i in rows])
        text = f"{flows:,.0f} / {expected:,.0f}"
        if missing:
            text += f" (**{missing:,.0f} missing**)"
        if drain is not None:
            text += f"; writer +{drain:.1f} s"
        return text, missing > 0

    lines = [
        "# Redis and PostgreSQL through lanner's tcp listeners: direct, `analyze: none`, analyzed + recorded",
        "",
        f"{env.get('BENCH_DATE', '')}; {env.get('BENCH_MACHINE', '')}; machine "
        f"{env.get('BENCH_BUSY', '?')} busy before the run.",
        f"{env.get('BENCH_SETTINGS', '')}; {env.get('ROUNDS', '1')} round(s) interleaving the modes; "
        "medians (range over rounds). All traffic on 127.0.0.1.",
        "",
        "| test | direct ops/s | none ops/s (ratio) | analyzed ops/s (ratio) | target analyzed/direct "
        "| lanner CPU none / analyzed (% of a core) | analyzed: flows recorded / expected |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    verdicts = []
    for test, label, target, _listener in TESTS:
        flows, missing = flows_cell(test)
        failed |= missing
        value = ratio("analyzed", test)
        if value is not None:
            met = value >= target
            failed |= not met
            verdicts.append(
                f"- {label}: analyzed/direct {value:.2f} ≥ {target}: {'met' if met else '**not met**'}"
            )
        else:
            verdicts.append(f"- {label}: analyzed/direct ≥ {target}: not measured")
        lines.append(
            f"| {label} | {ops_cell('direct', test)} | {ops_cell('none', test)}{ratio_text('none', test)} "
            f"| {ops_cell('analyzed', test)}{ratio_text('analyzed', test)} | {target} "
            f"| {cpu('none', test)} / {cpu('analyzed', test)} | {flows} |"
        )
    failed |= any(i.get("unavailable") for i in items if i["metric"] != "mode")
    lines += [
        "",
        "Targets (issue): with analysis and recording, ≥ 0.5 × direct for non-pipelined "
        "redis-benchmark and pgbench, ≥ 0.3 × direct pipelined, and no dropped flows with the default store.",
    ]
    lines += verdicts
    for mode, reason in skipped.items():
        lines.append(f"- mode `{mode}` not run: {reason}")
        failed = True

    stores = sorted(by.get(("analyzed", "store"), []), key=lambda i: i["round"])
    if stores:
        lines += [
            "",
            "Analyzed mode, per round: the store after lanner stopped (SIGINT) and its log.",
            "",
            "| round | redis flows / expected | postgres flows / expected | connection rows "
            "| records dropped (log) | lost at stop | deleted by retention | store MB | lanner stop (s) "
            "| warning/error lines |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for store in stores:

            def n(key: str, digits: int = 0, store: dict = store) -> str:
                value = store.get(key)
                return "–" if value is None else f"{value:,.{digits}f}"

            dropped = (store.get("dropped") or 0) + (store.get("lost") or 0)
            short = any(
                store.get(listener) is not None
                and store.get(f"expected_{listener}") is not None
                and store[listener] < store[f"expected_{listener}"]
                for listener in ("redis", "postgres")
            )
            failed |= bool(dropped) or short
            lines.append(
                f"| {store['round']:.0f} | {n('redis')} / {n('expected_redis')} | {n('postgres')} / "
                f"{n('expected_postgres')} | {n('connections')} | {n('dropped')} | {n('lost')} "
                f"| {n('retention_deleted')} | {(store.get('store_bytes') or 0) / 1e6:,.0f} "
                f"| {n('stop_s', 1)} | {n('warnings')} |"
            )
    others = [  # 0.05 cores or more, and not a tick or two over a short test
        i
        for i in items
        if (i.get("others_cpu_ticks") or 0) >= 5
        and i["others_cpu_ticks"] / TCK / (i.get("seconds") or 1) >= 0.05
    ]
    lines += [
        "",
        "Expected: for Redis, the commands the server counted during the test (`total_commands_processed`: "
        "the -n requests, pipelining's overshoot and redis-benchmark's two CONFIG GETs); for PostgreSQL, "
        "pgbench's transactions (one SELECT each) plus its 2 setup queries (scale and partitions). "
        "A flow is one command or statement as the analyzer records it, counted per listener in the store "
        "after the writer caught up (`writer +s`: how long after the load ended). The CPU figure is lanner's "
        "process tree (the proxy and its store writer) over the test's wall time.",
    ]
    if others:
        lines.append(
            f"- {len(others)} measurement(s) ran while other processes used ≥ 0.05 cores: "
            + ", ".join(f"{i['subject']}/{i['metric']} round {i['round']:.0f}" for i in others[:8])
        )
    text = "\n".join(lines) + "\n"
    with open(out_path, "w") as out:
        out.write(text)
    sys.stdout.write(text)
    return 1 if failed else 0


def main(argv: list[str]) -> None:
    command = argv[1] if len(argv) > 1 else ""
    if command == "redis":
        print(json.dumps(parse_redis(sys.stdin.read())))
    elif command == "pgbench":
        print(json.dumps(parse_pgbench(sys.stdin.read())))
    elif command == "flows" and len(argv) == 3:
        print(json.dumps(count_flows(argv[2])))
    elif command == "brief":
        item = json.loads(sys.stdin.read())
        print(f"{item['ops']:,.0f} ops/s" if item.get("ops") else f"FAILED: {item.get('unavailable')}")
    elif command == "others" and len(argv) == 3:
        print(json.dumps(others(int(argv[2]))))
    elif command == "others" and len(argv) == 4:
        with open(argv[3]) as handle:
            before = json.load(handle)
        print(sum(ticks - before.get(key, 0) for key, ticks in others(int(argv[2])).items()))
    elif command == "count" and len(argv) == 4:
        counts = count_flows(argv[2])
        print(-1 if "error" in counts else counts.get(argv[3], 0))
    elif command == "render" and len(argv) == 4:
        sys.exit(render(argv[2], argv[3]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
