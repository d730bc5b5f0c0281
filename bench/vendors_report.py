"""Results plumbing for bench/vendors.sh.

    vendors_report.py rss PID SECONDS INTERVAL   -> {"rss_kb": [[seconds, kB], ...]}: VmRSS of PID's
                                                    process tree, sampled every INTERVAL seconds
    vendors_report.py stats LOG                  -> the fake vendor's JSON stats line from its log
    vendors_report.py render RESULTS.jsonl OUT.md -> the tables and the issue's target; exit status 1
                                                    when a target failed or any run saw errors

The results are report.py's JSON lines: subject (direct, vendor, vendor-relay, vendor-redis),
metric (load: vendor_load.py's figures with the CPU each process used; backend: the fake
vendor's or destination's own counts; log, log-sustain: problem lines in lanner's log;
sustain: the long run's load figures; rss: lanner's RSS samples during it), and round
(0 for the sustain run).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import tree  # noqa: E402

TCK = os.sysconf("SC_CLK_TCK")
TARGET_RATIO = 0.8
SUBJECTS = ("direct", "vendor", "vendor-relay", "vendor-redis")
LABELS = {
    "direct": "direct: lanner, no `upstream_pool`, → plain server",
    "vendor": "**vendor**: lanner `upstream_pool` → fake vendor (`--terminate`)",
    "vendor-relay": "vendor-relay: lanner → fake vendor (`--relay`) → plain server (information)",
    "vendor-redis": "vendor-redis: as vendor, `state: redis://…/14` (information)",
}


def rss_kb(pid: int) -> int:
    total = 0
    for member in tree(pid):
        try:
            with open(f"/proc/{member}/status") as handle:
                for line in handle:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except (OSError, ValueError):
            pass
    return total


def sample_rss(pid: int, seconds: float, interval: float) -> dict:
    begin = time.monotonic()
    samples = []
    while True:
        at = time.monotonic() - begin
        samples.append([round(at), rss_kb(pid)])
        if at + interval > seconds + 0.5:
            break
        time.sleep(max(0.0, begin + len(samples) * interval - time.monotonic()))
    return {"rss_kb": samples}


def stats_line(path: str) -> dict:
    found: dict = {"stats": "missing (the process did not print its stats line)"}
    try:
        with open(path) as handle:
            for line in handle:
                if line.startswith("{") and '"mode"' in line:
                    found = json.loads(line)
    except OSError:
        pass
    return found


# --- render ---


def rnd(item: dict) -> str:
    return str(int(item.get("round") or 0))


def which(item: dict) -> str:
    """ "round N", or "sustain" for the long run (round 0)."""
    return f"round {rnd(item)}" if item.get("round") else "sustain"


def fmt(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def median_range(values: list[float], digits: int = 0) -> str:
    if not values:
        return "–"
    if len(values) == 1:
        return fmt(values[0], digits)
    return f"{fmt(statistics.median(values), digits)} ({fmt(min(values), digits)}–{fmt(max(values), digits)})"


def per_thousand(item: dict, key: str) -> float | None:
    ticks, done = item.get(key), item.get("done")
    if ticks is None or not done:
        return None
    return ticks / TCK / done * 1000


def load_runs(items: list[dict], subject: str) -> list[dict]:
    return [i for i in items if i.get("subject") == subject and i.get("metric") == "load"]


def main_table(items: list[dict]) -> list[str]:
    lines = [
        "| target | tunnels/s | p50 ms | p99 ms | lanner CPU (cores) | lanner CPU s per 1,000 tunnels "
        "| vendor + destination CPU s per 1,000 | load CPU s per 1,000 | errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for subject in SUBJECTS:
        runs = [r for r in load_runs(items, subject) if "unavailable" not in r]
        failed = [r for r in load_runs(items, subject) if "unavailable" in r]
        if not runs and not failed:
            continue
        if not runs:
            lines.append(f"| {LABELS[subject]} | failed: {failed[0]['unavailable']} | | | | | | | |")
            continue

        def column(key: str, runs: list[dict] = runs) -> list[float]:
            return [r[key] for r in runs if r.get(key) is not None]

        cores = [r["lanner_cpu_ticks"] / TCK / r["seconds"] for r in runs if r.get("seconds")]
        lanner = [v for v in (per_thousand(r, "lanner_cpu_ticks") for r in runs) if v is not None]
        backend = [v for v in (per_thousand(r, "backend_cpu_ticks") for r in runs) if v is not None]
        load = [r["load_cpu_s"] / r["done"] * 1000 for r in runs if r.get("done") and "load_cpu_s" in r]
        errors = sum(r.get("errors") or 0 for r in runs)
        label = LABELS[subject] + (f" ({len(failed)} round(s) failed)" if failed else "")
        lines.append(
            f"| {label} | {median_range(column('tunnels_per_s'))} | {median_range(column('p50_ms'), 1)} "
            f"| {median_range(column('p99_ms'), 1)} | {median_range(cores, 2)} | {median_range(lanner, 3)} "
            f"| {median_range(backend, 3)} | {median_range(load, 3)} | {errors} |"
        )
    return lines


def ratio_lines(items: list[dict]) -> tuple[list[str], bool | None]:
    def by_round(subject: str) -> dict[str, float]:
        return {
            rnd(r): r["tunnels_per_s"]
            for r in load_runs(items, subject)
            if r.get("tunnels_per_s") and not r.get("errors")
        }

    direct = by_round("direct")
    lines = ["| ratio of tunnels/s | median of the medians | per round | |", "| --- | ---: | --- | --- |"]
    verdict = None
    for subject in ("vendor", "vendor-relay", "vendor-redis"):
        other = by_round(subject)
        rounds = sorted(set(direct) & set(other), key=int)
        if not rounds:
            continue
        per_round = [other[r] / direct[r] for r in rounds]
        overall = statistics.median(other.values()) / statistics.median(direct.values())
        note = "information"
        if subject == "vendor":
            verdict = overall >= TARGET_RATIO
            note = f"target ≥ {TARGET_RATIO}: **{'met' if verdict else 'not met'}**"
        lines.append(
            f"| {subject} / direct | {overall:.2f} | {', '.join(f'{v:.2f}' for v in per_round)} | {note} |"
        )
    return lines, verdict


def backend_lines(items: list[dict]) -> list[str]:
    lines = []
    for item in items:
        if item.get("metric") != "backend" or "mode" not in item:
            continue
        if item["mode"] == "--plain":
            continue
        lines.append(
            f"- {item['subject']} {which(item)}: the fake vendor ({item['mode']}) saw "
            f"{item['tunnels']:,} tunnels, {item['distinct_sessions']:,} distinct vendor session ids, "
            f"{item['refused']} refused, {item['bad_requests']} bad requests, "
            f"{item.get('relay_failures', 0)} relay failures"
        )
    missing = [
        f"- {i['subject']} {which(i)}: {i['stats']}"
        for i in items
        if i.get("metric") == "backend" and "stats" in i
    ]
    return lines + missing


def sustain_lines(items: list[dict]) -> list[str]:
    runs = [i for i in items if i.get("metric") == "sustain"]
    if not runs:
        return []
    run = runs[-1]
    if "unavailable" in run:
        return ["", f"Sustain run: failed: {run['unavailable']}"]
    lines = [
        "",
        f"Sustain: `vendor` for {run.get('seconds', 0):.0f} s, {run.get('concurrency')} in flight, "
        f"{run.get('sessions', 0):,} sessions: {fmt(run.get('tunnels_per_s'))} tunnels/s, "
        f"p50 {fmt(run.get('p50_ms'), 1)} ms, p99 {fmt(run.get('p99_ms'), 1)} ms, "
        f"{run.get('errors', 0)} errors; lanner used "
        f"{fmt(per_thousand(run, 'lanner_cpu_ticks'), 3)} CPU s per 1,000 tunnels.",
        "",
        "| window (s) | tunnels/s | p50 ms | p99 ms |",
        "| --- | ---: | ---: | ---: |",
    ]
    windows = run.get("windows", [])
    step = windows[1]["from_s"] - windows[0]["from_s"] if len(windows) > 1 else run.get("seconds", 0)
    for window in windows:
        end = min(window["from_s"] + step, round(run.get("seconds", 0)))
        lines.append(
            f"| {window['from_s']:.0f}–{end:.0f} | {fmt(window['tunnels_per_s'])} "
            f"| {fmt(window['p50_ms'], 1)} | {fmt(window['p99_ms'], 1)} |"
        )
    samples = [i for i in items if i.get("metric") == "rss"]
    sampled = samples[-1] if samples else {}
    rss = sampled.get("rss_kb", [])
    if rss:
        series = ", ".join(f"{at} s: {kb / 1024:.1f}" for at, kb in rss)
        lines += ["", f"lanner RSS (MiB) during the sustain run: {series}."]
        if sampled.get("rss_before_kb"):
            lines.append(
                f"lanner's RSS before the warm-up: {sampled['rss_before_kb'] / 1024:.1f} MiB; "
                f"after it: {(sampled.get('rss_after_warmup_kb') or 0) / 1024:.1f} MiB."
            )
        if len(rss) > 2:
            lines.append(
                f"Change from {rss[0][0]} s to {rss[-1][0]} s: {(rss[-1][1] - rss[0][1]) / 1024:+.1f} MiB; "
                f"from {rss[1][0]} s: {(rss[-1][1] - rss[1][1]) / 1024:+.1f} MiB."
            )
    return lines


def render(results: str, out: str) -> int:
    with open(results) as handle:
        items = [json.loads(line) for line in handle if line.strip()]
    env = os.environ
    lines = [
        f"### {env.get('BENCH_DATE', '?')}",
        "",
        f"Machine: {env.get('BENCH_MACHINE', '?')}. Busy before the run: {env.get('BENCH_BUSY', '?')}.",
        f"Settings: {env.get('BENCH_SETTINGS', '?')}.",
        "Medians (range) over the rounds:",
        "",
        *main_table(items),
        "",
    ]
    ratios, verdict = ratio_lines(items)
    lines += ratios
    lines += ["", *backend_lines(items)]
    lines += sustain_lines(items)
    problems = [
        f"{i['subject']} {which(i)}: {i['log_problems']:.0f}"
        for i in items
        if i.get("metric") in ("log", "log-sustain") and i.get("log_problems")
    ]
    lines += ["", "Problem lines in lanner's logs: " + ("; ".join(problems) if problems else "none") + "."]
    others = [i.get("others_cpu_ticks") or 0 for i in items if i.get("metric") in ("load", "sustain")]
    if others:
        lines.append(
            f"CPU used by processes outside the benchmark during the counted runs: at most "
            f"{max(others) / TCK:.1f} s in one run."
        )
    with open(out, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    runs = [i for i in items if i.get("metric") in ("load", "sustain")]
    bad = [i for i in runs if "unavailable" in i or i.get("errors")]
    trouble = ("refused", "bad_requests", "relay_failures")
    backend_bad = [i for i in items if i.get("metric") == "backend" and any(i.get(key) for key in trouble)]
    for item in bad + backend_bad:
        print(
            f"vendors_report: {item['subject']} {item['metric']} {which(item)}: "
            f"{item.get('unavailable') or item.get('first_error') or item}",
            file=sys.stderr,
        )
    no_ratio = verdict is None and any(i.get("metric") == "load" for i in items)  # ROUNDS=0: sustain only
    if no_ratio:
        print("vendors_report: no vendor/direct ratio (a target failed)", file=sys.stderr)
    return 1 if bad or backend_bad or no_ratio else 0


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "rss" and len(sys.argv) == 5:
        print(json.dumps(sample_rss(int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]))))
    elif command == "stats" and len(sys.argv) == 3:
        print(json.dumps(stats_line(sys.argv[2])))
    elif command == "render" and len(sys.argv) == 4:
        sys.exit(render(sys.argv[2], sys.argv[3]))
    else:
        sys.exit(__doc__)
