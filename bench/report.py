"""Results plumbing for bench/run.sh: measurements in, one JSON line each; markdown out.

    report.py wrk < WRK_OUTPUT             -> {"rps", "p50_ms", "p99_ms", "requests", "errors"}
    report.py bulk SPEED:SIZE:CODE ...     -> {"mb_s": median, "runs": [...], "errors"}
    report.py tag SUBJECT METRIC [K=V...] < JSON -> the object with subject, metric, K=V added
    report.py cputicks PID                 -> CPU clock ticks (user + system) of PID's process tree
    report.py others ROOT_PID [BEFORE.json] -> per-process ticks outside ROOT_PID's tree (JSON);
                                              with BEFORE: the ticks they used since, as a number
    report.py render RESULTS.jsonl OUT.md  -> the table, the targets and their ratios

Subjects are the rows (direct, lanner, pproxy, ...); metrics are the columns
(fwd, bulk_connect, bulk_socks5, new_connect, new_socks5, idle_connect, idle_socks5).
"""

from __future__ import annotations

import json
import os
import re
import statistics
import sys

BIG_BYTES = 100_000_000
_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}

# Rows of the main table, in order: subject key -> label. Extra rows are reported apart.
ROWS = [
    ("direct", "direct (no proxy)"),
    ("lanner", "**lanner** (1 worker, connection log on)"),
    ("pproxy", "pproxy 2.7.9 (plain install: asyncio loop)"),
    ("pproxy-uvloop", "pproxy 2.7.9 + uvloop (`pproxy[accelerated]`)"),
    ("proxy.py", "proxy.py 2.4.10 (defaults: 1 acceptor + 1 worker per core)"),
    ("squid", "squid (1 process, no cache, no access log)"),
]
EXTRA_ROWS = [
    ("lanner-nolog", "lanner, `log.connections: false` (1 worker)"),
    ("lanner-w2", "lanner `--workers 2` (connection log on)"),
]
COLUMNS = [
    ("fwd", "HTTP forward, small, keep-alive (wrk)"),
    ("bulk_connect", "100 MB via CONNECT (direct: plain GET)"),
    ("bulk_socks5", "100 MB via SOCKS5"),
    ("new_connect", "new CONNECT tunnels/s"),
    ("new_socks5", "new SOCKS5 tunnels/s"),
    ("idle_connect", "RSS per idle CONNECT tunnel"),
    ("idle_socks5", "RSS per idle SOCKS5 tunnel"),
]


def parse_wrk(text: str) -> dict:
    def ms(value: str) -> float | None:
        match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value)
        return round(float(match.group(1)) * _UNITS_MS[match.group(2)], 3) if match else None

    result: dict = {"rps": None, "p50_ms": None, "p99_ms": None, "requests": None, "errors": 0}
    notes = []
    for line in text.splitlines():
        words = line.split()
        if line.startswith("Requests/sec:"):
            result["rps"] = float(words[1])
        elif len(words) == 2 and words[0] in ("50%", "99%"):
            result["p50_ms" if words[0] == "50%" else "p99_ms"] = ms(words[1])
        elif "requests in" in line:
            result["requests"] = int(words[0])
        elif line.strip().startswith("Socket errors:"):
            counts = [int(n) for n in re.findall(r"\d+", line)]
            result["errors"] += sum(counts)
            notes.append(line.strip())
        elif line.strip().startswith("Non-2xx"):  # wrk indents this line
            result["errors"] += int(words[-1])
            notes.append(line.strip())
    if notes:
        result["notes"] = "; ".join(notes)
    if result["rps"] is None:
        result["notes"] = "wrk failed: " + " ".join(text.split())[:200]
    return result


def parse_bulk(runs: list[str]) -> dict:
    speeds, errors = [], 0
    for run in runs:
        speed, _, rest = run.partition(":")
        size, _, code = rest.partition(":")
        try:
            ok = int(float(size)) == BIG_BYTES and code == "200"
            value = float(speed) / 1e6
        except ValueError:
            ok, value = False, 0.0
        if ok:
            speeds.append(value)
        else:
            errors += 1
    return {
        "mb_s": round(statistics.median(speeds), 1) if speeds and not errors else None,
        "runs": [round(s, 1) for s in speeds],
        "errors": errors,
    }


def tree(pid: int) -> list[int]:
    """pid and all its descendants."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as handle:
                    todo += [int(child) for child in handle.read().split()]
        except OSError:
            pass
    return found


def cpu_ticks(pid: int) -> int:
    total = 0
    for member in tree(pid):
        try:
            with open(f"/proc/{member}/stat") as handle:
                fields = handle.read().rpartition(")")[2].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
        except (OSError, IndexError, ValueError):
            pass
    return total


def ticks_outside(root: int) -> dict[str, int]:
    """CPU ticks of every process not in root's tree: what else loads the machine."""
    mine = set(tree(root))
    found = {}
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) not in mine:
            try:
                with open(f"/proc/{name}/stat") as handle:
                    fields = handle.read().rpartition(")")[2].split()
                found[name + ":" + fields[19]] = int(fields[11]) + int(fields[12])  # key: pid + start time
            except (OSError, IndexError, ValueError):
                pass
    return found


def others_since(root: int, before_path: str) -> int:
    with open(before_path) as handle:
        before = json.load(handle)
    return sum(ticks - before.get(key, 0) for key, ticks in ticks_outside(root).items())


def _cores(item: dict, key: str) -> float | None:
    ticks, seconds = item.get(key), item.get("seconds")
    if ticks is None or not seconds:
        return None
    return ticks / os.sysconf("SC_CLK_TCK") / seconds


def proxy_cpu(item: dict) -> float | None:
    """The proxy's CPU use during a measurement, in cores (1.0 = one core busy)."""
    return _cores(item, "proxy_cpu_ticks")


RATE_KEYS = {"fwd": "rps", "bulk": "mb_s", "new": "tunnels_per_s", "idle": "per_tunnel_kib"}


def load(path: str) -> dict[tuple[str, str], dict]:
    """One item per (subject, metric): with several rounds, the round with the median figure,
    carrying every round's figure in "rounds"."""
    grouped: dict[tuple[str, str], list[dict]] = {}
    with open(path) as handle:
        for line in handle:
            if line.strip():
                item = json.loads(line)
                grouped.setdefault((item["subject"], item["metric"]), []).append(item)
    results = {}
    for (subject, metric), items in grouped.items():
        key = RATE_KEYS[metric.split("_")[0]]
        measured = sorted((i for i in items if i.get(key) is not None), key=lambda i: i[key])
        if not measured:
            results[(subject, metric)] = items[0]
            continue
        chosen = dict(measured[(len(measured) - 1) // 2])
        chosen["rounds"] = [i[key] for i in measured]
        chosen["failed_rounds"] = len(items) - len(measured)
        results[(subject, metric)] = chosen
    return results


def _rounds_note(item: dict) -> str:
    figures = item.get("rounds", [])
    if len(figures) < 2:
        return ""
    return f" [median of {len(figures)}: {min(figures):,.0f}–{max(figures):,.0f}]"


def cell(item: dict | None, metric: str) -> str:
    if item is None:
        return "–"
    if "unavailable" in item:
        return f"failed ({item['unavailable']})"
    if metric == "fwd":
        if item.get("rps") is None:
            return f"failed ({item.get('notes', '')})"
        text = f"{item['rps']:,.0f} req/s, p50 {item['p50_ms']:.2f} ms, p99 {item['p99_ms']:.2f} ms"
        text += _rounds_note(item) + _cpu_note(item)
        return text + (f" ({item['notes']})" if item.get("errors") else "")
    if metric.startswith("bulk"):
        if item.get("mb_s") is None:
            return f"failed ({item['errors']} of 3 downloads)"
        return f"{item['mb_s']:,.0f} MB/s" + _rounds_note(item)
    if metric.startswith("new"):
        text = f"{item['tunnels_per_s']:,.0f}/s (p50 {item['p50_ms']} ms, p99 {item['p99_ms']} ms)"
        text += _rounds_note(item) + _cpu_note(item)
        return text + (f", {item['errors']} errors: {item.get('first_error')}" if item.get("errors") else "")
    if metric.startswith("idle"):
        text = f"{item['per_tunnel_kib']:.1f} KiB ({item['opened']} open"
        text += f", {item['processes']} processes" if item.get("processes", 1) > 1 else ""
        return text + (f", {item['failed']} failed)" if item.get("failed") else ")")
    return json.dumps(item)


def _cpu_note(item: dict) -> str:
    cores, others = proxy_cpu(item), _cores(item, "others_cpu_ticks")
    note = "" if cores is None else f", proxy CPU {cores:.2f}"
    if others is not None and others >= 0.05:
        note += f", **other processes CPU {others:.2f}**"
    return note


def value(results: dict, subject: str, metric: str) -> float | None:
    item = results.get((subject, metric))
    if item is None:
        return None
    number = item.get(RATE_KEYS[metric.split("_")[0]])
    if number is None:
        return None
    # Failed requests would flatter a rate; tunnels that did not open would flatter memory.
    if metric == "fwd" and (item.get("errors") or item.get("failed_rounds")):
        return None
    if metric.startswith("idle") and (item.get("failed") or item.get("opened", 0) < 1000):
        return None
    return float(number)


def targets(results: dict) -> list[tuple[str, str, str, str]]:
    """(target, measured, required, verdict) rows."""
    rows = []

    def ratio(label: str, metric: str, base: str, base_metric: str, need: float) -> None:
        mine, theirs = value(results, "lanner", metric), value(results, base, base_metric)
        if mine is None or theirs is None or theirs == 0:
            rows.append((label, "not measured", f">= {need:g}x", "**n/a**"))
            return
        got = mine / theirs
        measured = f"{mine:,.0f} / {theirs:,.0f} = **{got:.2f}x**"
        rows.append((label, measured, f">= {need:g}x", "pass" if got >= need else "**FAIL**"))

    ratio("HTTP forward requests/s vs pproxy", "fwd", "pproxy", "fwd", 1.5)
    ratio("CONNECT download vs direct", "bulk_connect", "direct", "bulk_connect", 0.6)
    ratio("SOCKS5 download vs direct", "bulk_socks5", "direct", "bulk_connect", 0.6)
    ratio("new CONNECT tunnels/s vs pproxy", "new_connect", "pproxy", "new_connect", 2.0)
    ratio("new SOCKS5 tunnels/s vs pproxy", "new_socks5", "pproxy", "new_socks5", 2.0)
    ratio("new CONNECT tunnels/s vs squid", "new_connect", "squid", "new_connect", 1.0)
    for metric, label in (("idle_connect", "CONNECT"), ("idle_socks5", "SOCKS5")):
        kib = value(results, "lanner", metric)
        if kib is None:
            rows.append((f"RSS per idle {label} tunnel", "not measured", "<= 10 KiB", "**n/a**"))
        else:
            rows.append((f"RSS per idle {label} tunnel", f"**{kib:.1f} KiB**", "<= 10 KiB",
                         "pass" if kib <= 10 else "**FAIL**"))
    return rows


def render(results_path: str, out_path: str) -> str:
    results = load(results_path)
    lines = [
        f"# lanner benchmark — {os.environ.get('BENCH_DATE', '?')}",
        "",
        f"Machine: {os.environ.get('BENCH_MACHINE', '?')}. Everything on 127.0.0.1: load generator, "
        f"origin (nginx, 1 worker) and proxy share the cores, so compare ratios within one run, "
        f"never absolute figures across runs. DUR={os.environ.get('DUR', '?')}s, "
        f"{os.environ.get('CONC', '?')} concurrent clients for wrk and for new tunnels. "
        f"CPU busy before the run: {os.environ.get('BENCH_BUSY', '?')}. "
        "\"proxy CPU\" is the proxy's CPU use during that measurement in cores (1.00 = one core); "
        "\"other processes CPU\" (shown when >= 0.05) is CPU used meanwhile by processes this "
        "benchmark did not start: such figures are lower than the machine can do.",
        "",
    ]

    def table(rows: list[tuple[str, str]]) -> None:
        lines.append("| | " + " | ".join(label for _, label in COLUMNS) + " |")
        lines.append("| --- " * (len(COLUMNS) + 1) + "|")
        for subject, label in rows:
            if any((subject, metric) in results for metric, _ in COLUMNS):
                cells = [cell(results.get((subject, metric)), metric) for metric, _ in COLUMNS]
                lines.append(f"| {label} | " + " | ".join(cells) + " |")

    table(ROWS)
    lines += ["", "Not part of the targets (same run):", ""]
    table(EXTRA_ROWS)
    lines += ["", "Work per proxy CPU-second (the proxy's own user + system time during the run; this "
              "depends less on how the shared cores were split than the rates above):", "",
              "| | HTTP forward requests | new CONNECT tunnels | new SOCKS5 tunnels |",
              "| --- | --- | --- | --- |"]
    for subject, label in ROWS + EXTRA_ROWS:
        cells = []
        per_cpu = (("fwd", "rps"), ("new_connect", "tunnels_per_s"), ("new_socks5", "tunnels_per_s"))
        for metric, key in per_cpu:
            item = results.get((subject, metric))
            cores = proxy_cpu(item) if item else None
            cells.append(f"{item[key] / cores:,.0f}" if cores and item.get(key) else "–")
        if any(c != "–" for c in cells):
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "## Targets (one lanner worker, ratios within this run)", "",
              "| target | measured | required | verdict |", "| --- | --- | --- | --- |"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in targets(results)]
    text = "\n".join(lines) + "\n"
    with open(out_path, "w") as handle:
        handle.write(text)
    return text


def main(argv: list[str]) -> None:
    command = argv[1] if len(argv) > 1 else ""
    if command == "wrk":
        print(json.dumps(parse_wrk(sys.stdin.read())))
    elif command == "bulk":
        print(json.dumps(parse_bulk(argv[2:])))
    elif command == "tag" and len(argv) >= 4:
        text = sys.stdin.read().strip()
        try:
            item = json.loads(text.splitlines()[-1])
        except (ValueError, IndexError):
            item = {"unavailable": " ".join(text.split())[:160] or "no output"}
        for extra in argv[4:]:
            key, _, number = extra.partition("=")
            item[key] = float(number) if number else None
        print(json.dumps({"subject": argv[2], "metric": argv[3], **item}))
    elif command == "others" and len(argv) == 3:
        print(json.dumps(ticks_outside(int(argv[2]))))
    elif command == "others" and len(argv) == 4:
        print(others_since(int(argv[2]), argv[3]))
    elif command == "cputicks" and len(argv) == 3:
        print(cpu_ticks(int(argv[2])))
    elif command == "render" and len(argv) == 4:
        sys.stdout.write(render(argv[2], argv[3]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
