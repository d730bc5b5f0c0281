"""Results plumbing for bench/reverse.sh.

    reverse_report.py wrk < WRK_OUTPUT         -> report.py's wrk parse, non-2xx/3xx responses counted
    reverse_report.py ticks PID                -> CPU ticks of each process in PID's tree (JSON)
    reverse_report.py cpu PID BEFORE.json      -> "TOTAL BUSIEST": ticks the tree used since, and the
                                                  most any one process of it used (is the load spread?)
    reverse_report.py render RESULTS.jsonl OUT.md -> the tables and the issue's targets; exit status 1
                                                  when a measured target failed or saw errors

The results are report.py's JSON lines: subject (direct, nginx, haproxy, ...), metric (t1 or t2:
wrk's thread count; log-t1, log-t2: problem lines in the target's log; store: flows recorded),
round, and wrk's figures with the CPU each side used.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import parse_wrk, tree  # noqa: E402

TCK = os.sysconf("SC_CLK_TCK")
LANNER = ("lanner", "lanner-rec", "lanner-w2")
# The baseline on this machine, for reference: req/s
BASELINE = {"nginx": 18_700, "haproxy": 22_000, "mitmdump": 400}


def labels() -> dict[str, str]:
    env = os.environ
    nginx, haproxy, mitm = (
        env.get("NGINX_VERSION", ""),
        env.get("HAPROXY_VERSION", ""),
        env.get("MITM_VERSION", ""),
    )
    return {
        "direct": "direct to the origin (no proxy)",
        "nginx": f"nginx {nginx}, 1 worker, upstream keepalive 64",
        "haproxy": f"HAProxy {haproxy}, nbthread 1, http-reuse always",
        "mitmdump": f"mitmdump {mitm} --mode reverse -q",
        "lanner": "**lanner**, 1 worker, recording off",
        "lanner-rec": "lanner, 1 worker, recording on (information)",
        "nginx-w2": f"nginx {nginx}, worker_processes 2 (reference)",
        "lanner-w2": "**lanner --workers 2**, recording off",
    }


GROUPS = {
    "t1": ("direct", "nginx", "haproxy", "mitmdump", "lanner", "lanner-rec"),
    "t2": ("direct", "nginx", "nginx-w2", "lanner", "lanner-w2"),
}


def wrk(text: str) -> dict:
    """report.parse_wrk misses wrk's indented "  Non-2xx or 3xx responses: N" line; count it here."""
    result = parse_wrk(text)
    if "Non-2xx" not in result.get("notes", ""):
        match = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", text)
        if match:
            result["errors"] = (result.get("errors") or 0) + int(match.group(1))
            note = f"Non-2xx or 3xx responses: {match.group(1)}"
            result["notes"] = "; ".join(filter(None, [result.get("notes"), note]))
    match = re.search(r"(\d+) requests in [\d.]+\w+, ([\d.]+)(B|KB|MB|GB) read", text)
    if match and int(match.group(1)):
        scale = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3}[match.group(3)]
        result["bytes_per_response"] = round(float(match.group(2)) * scale / int(match.group(1)), 1)
    return result


def process_ticks(pid: int) -> dict[str, int]:
    """user + system ticks of each process in pid's tree, keyed by pid and start time."""
    found = {}
    for member in tree(pid):
        try:
            with open(f"/proc/{member}/stat") as handle:
                fields = handle.read().rpartition(")")[2].split()
            found[f"{member}:{fields[19]}"] = int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return found


def cpu_since(pid: int, before_path: str) -> tuple[int, int]:
    with open(before_path) as handle:
        before = json.load(handle)
    used = [ticks - before.get(key, 0) for key, ticks in process_ticks(pid).items()]
    return sum(used), max(used, default=0)


class Results:
    def __init__(self, path: str) -> None:
        with open(path) as handle:
            self.items = [json.loads(line) for line in handle if line.strip()]
        self.rounds = sorted({i["round"] for i in self.items})

    def runs(self, subject: str, metric: str) -> list[dict]:
        return [i for i in self.items if i["subject"] == subject and i["metric"] == metric]

    @staticmethod
    def good(item: dict) -> bool:
        return item.get("rps") is not None and not item.get("errors")

    def rates(self, subject: str, metric: str) -> list[float]:
        return sorted(i["rps"] for i in self.runs(subject, metric) if self.good(i))

    def rate(self, subject: str, metric: str) -> float | None:
        found = self.rates(subject, metric)
        return statistics.median(found) if found else None

    def med(self, subject: str, metric: str, fn) -> float | None:
        values = [fn(i) for i in self.runs(subject, metric) if self.good(i)]
        values = [v for v in values if v is not None]
        return statistics.median(values) if values else None

    def cores(self, subject: str, metric: str, key: str) -> float | None:
        def one(i: dict) -> float | None:
            if i.get(key) is None or not i.get("seconds"):
                return None
            seconds = i[key] if key == "wrk_cpu_s" else i[key] / TCK
            return seconds / i["seconds"]

        return self.med(subject, metric, one)

    def problems(self, subject: str, metric: str) -> list[str]:
        """Why a run of this target does not count: failed to start or check, wrk failed, errors."""
        out = []
        for i in self.runs(subject, metric):
            if "unavailable" in i:
                out.append(f"round {i['round']:.0f}: {i['unavailable']}")
            elif not self.good(i):
                out.append(f"round {i['round']:.0f}: {i.get('notes') or 'no figure'}")
        return out

    def ratio(
        self, a: str, b: str, metric: str, metric_b: str | None = None
    ) -> tuple[float | None, list[float]]:
        metric_b = metric_b or metric
        top, bottom = self.rate(a, metric), self.rate(b, metric_b)
        if not top or not bottom:
            return None, []
        per_round = []
        for rnd in self.rounds:
            x = [i for i in self.runs(a, metric) if i["round"] == rnd and self.good(i)]
            y = [i for i in self.runs(b, metric_b) if i["round"] == rnd and self.good(i)]
            if x and y:
                per_round.append(x[0]["rps"] / y[0]["rps"])
        return top / bottom, sorted(per_round)


def fmt_ratio(value: float | None, per_round: list[float]) -> str:
    if value is None:
        return "–"
    form = "{:.1f}" if value >= 10 else "{:.2f}"
    text = form.format(value)
    if len(per_round) > 1:
        text += f" ({form.format(per_round[0])}–{form.format(per_round[-1])})"
    return text


def render(results_path: str, out_path: str) -> int:
    res = Results(results_path)
    env = os.environ
    names = labels()
    skipped = env.get("BENCH_LANNER_SKIPPED", "")
    dur, conc, mdur, mconc = (
        env.get("DUR", "?"),
        env.get("CONC", "?"),
        env.get("MITM_DUR", "?"),
        env.get("MITM_CONC", "?"),
    )
    pinned = env.get("LOAD_CPUS", "")
    lines = ["# Reverse proxy: small keep-alive GETs through lanner and its peers", ""]
    if skipped:
        lines += [f"**LANNER WAS NOT MEASURED IN THIS RUN** ({skipped}). Only the peers ran.", ""]
    changed = env.get("BENCH_SRC_CHANGED", "")
    if changed:
        lines += [
            f"**lanner's code changed while this run went on** ({changed}): its rounds may have measured "
            "different code.",
            "",
        ]
    when = f"{env.get('BENCH_DATE', '')}; {env.get('BENCH_MACHINE', '')}"
    how = [
        "wrk keep-alive GETs of `/small` (a 100-byte file) from an nginx origin (1 worker), everything on",
        f"127.0.0.1: `wrk -t1 -c{conc} -d{dur}s` for the one-worker targets",
        f"(mitmdump: `-t1 -c{mconc} -d{mdur}s`),",
        f"`wrk -t2 -c{conc} -d{dur}s` for the `--workers 2` comparison;",
        f"{env.get('WARMUP', '?')} s of uncounted wrk before each counted run;",
        f"{env.get('ROUNDS', '?')} round(s),",
        "the targets interleaved in each, medians (range).",
        f"wrk pinned to CPUs {pinned} (taskset); nothing else pinned."
        if pinned
        else "Nothing is pinned: wrk, the origin and the proxy share the cores as the scheduler decides;",
        "the CPU columns show the split, in cores (1.00 = one core busy).",
        "nginx and HAProxy set on each request what lanner sets for an untrusted client:",
        "X-Forwarded-For, X-Forwarded-Proto, X-Forwarded-Host, Forwarded, X-Real-IP and a new X-Request-Id;",
        "mitmdump adds none.",
        "A run with socket errors or non-2xx/3xx responses does not count.",
    ]
    lines += [f"{when}; machine {env.get('BENCH_BUSY', '?')} busy before the run.", "", " ".join(how), ""]
    failures = 0
    for metric, title in (
        ("t1", "One worker each, one wrk thread"),
        ("t2", "Two wrk threads: `--workers 2` against one worker"),
    ):
        lines += [
            f"## {title}",
            "",
            "| target | req/s | × direct | p50 / p99 ms | proxy CPU (busiest process) | origin CPU | wrk CPU "
            "| other CPU "
            "| req per proxy CPU-s | bytes per response | problems |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
        ]
        for subject in GROUPS[metric]:
            if subject in LANNER and skipped:
                lines.append(
                    f"| {names[subject]} | **SKIPPED** |" + " |" * 8 + " lanner refused the config |"
                )
                continue
            runs = res.runs(subject, metric)
            if not runs:
                continue
            found = res.rates(subject, metric)
            problems = res.problems(subject, metric)
            failures += bool(problems)
            if found:
                rate = f"{statistics.median(found):,.0f}"
                rate += f" ({found[0]:,.0f}–{found[-1]:,.0f})" if len(found) > 1 else ""
            else:
                rate = "**failed**"
            p50 = res.med(subject, metric, lambda i: i.get("p50_ms"))
            p99 = res.med(subject, metric, lambda i: i.get("p99_ms"))

            def c(v: float | None) -> str:
                return "–" if v is None else f"{v:.2f}"

            keys = ("proxy_cpu_ticks", "origin_cpu_ticks", "wrk_cpu_s", "others_cpu_ticks")
            cells = [c(res.cores(subject, metric, key)) for key in keys]
            busiest = res.cores(subject, metric, "busiest_cpu_ticks")
            if busiest is not None and cells[0] != "–":
                cells[0] += f" ({busiest:.2f})"
            per_cpu = res.med(
                subject,
                metric,
                lambda i: (
                    i["rps"] * i["seconds"] * TCK / i["proxy_cpu_ticks"] if i.get("proxy_cpu_ticks") else None
                ),
            )
            size = res.med(subject, metric, lambda i: i.get("bytes_per_response"))
            vs_direct = "" if subject == "direct" else fmt_ratio(*res.ratio(subject, "direct", metric))

            cpu = " | ".join(cells)
            lat = f"{p50:.2f} / {p99:.2f}" if p50 is not None and p99 is not None else "–"
            work = "–" if per_cpu is None else f"{per_cpu:,.0f}"
            size_cell = "–" if size is None else f"{size:.0f}"
            note = "**" + "; ".join(problems) + "**" if problems else ""
            lines.append(
                f"| {names[subject]} | {rate} | {vs_direct} | {lat} | {cpu} | {work} | {size_cell} | {note} |"
            )
        lines.append("")

    lines += ["## Targets (issue), ratios of medians within this run (per-round range)", ""]

    def verdict(label: str, a: str, b: str, metric: str, need: float | None) -> None:
        if skipped and a in LANNER:
            lines.append(f"- {label}: **not measured (lanner skipped)**")
            return
        value, per_round = res.ratio(a, b, metric)
        if value is None:
            lines.append(f"- {label}: **not measured** (a side failed or did not run)")
            return
        top, bottom = res.rate(a, metric), res.rate(b, metric)
        text = f"- {label}: {top:,.0f} / {bottom:,.0f} = **{fmt_ratio(value, per_round)}**"
        if need is not None:
            text += ": met" if value >= need else ": **not met**"
        lines.append(text)

    verdict("one lanner worker ≥ 0.5 × one nginx worker (wrk -t1)", "lanner", "nginx", "t1", 0.5)
    if not skipped and res.ratio("lanner", "nginx", "t2")[0] is not None:
        value, per_round = res.ratio("lanner", "nginx", "t2")
        lines.append(f"  - the same with wrk -t2 (not the target's setting): {fmt_ratio(value, per_round)}")
    verdict("one lanner worker ≥ 20 × mitmdump (wrk -t1)", "lanner", "mitmdump", "t1", 20)
    verdict("one lanner worker / HAProxy nbthread 1 (reported, no target)", "lanner", "haproxy", "t1", None)
    verdict("lanner --workers 2 ≥ 1.6 × one lanner worker (both wrk -t2)", "lanner-w2", "lanner", "t2", 1.6)
    if not skipped:
        w1, w2 = res.cores("lanner", "t2", "wrk_cpu_s"), res.cores("lanner-w2", "t2", "wrk_cpu_s")
        p1, p2 = res.cores("lanner", "t2", "proxy_cpu_ticks"), res.cores("lanner-w2", "t2", "proxy_cpu_ticks")
        if None not in (w1, w2, p1, p2):
            lines.append(
                f"  - the load generator's share: wrk used {w1:.2f} cores against one worker and {w2:.2f} "
                f"against two; lanner used {p1:.2f} and {p2:.2f} cores"
            )
    value, per_round = res.ratio("nginx-w2", "nginx", "t2")
    if value is not None:
        lines.append(
            f"  - for reference, what two workers gain on this machine with this load generator: nginx "
            f"worker_processes 2 / 1 = {fmt_ratio(value, per_round)}"
        )
    verdict("lanner recording on / off (information)", "lanner-rec", "lanner", "t1", None)
    stores = [
        (i["round"], i.get("flows_stored"))
        for i in res.items
        if i["subject"] == "lanner-rec" and i["metric"] == "store"
    ]
    if stores and res.rates("lanner-rec", "t1"):
        parts = []
        for rnd, count in stores:
            runs = [i for i in res.runs("lanner-rec", "t1") if i["round"] == rnd]
            made = sum((i.get("requests") or 0) + (i.get("warmup_requests") or 0) for i in runs)
            parts.append(
                f"round {rnd:.0f}: {'?' if count is None else f'{count:,.0f}'} flows stored for "
                f"{made:,.0f} requests (warm-up included)"
            )
        lines.append("  - recording on: " + "; ".join(parts))
    baseline = []
    for subject, figure in BASELINE.items():
        rate = res.rate(subject, "t1")
        if rate:
            baseline.append(f"{subject} {rate:,.0f} (issue: {figure:,})")
    if baseline:
        lines.append("- the peers against the issue's baseline run, req/s: " + ", ".join(baseline))
    logs = [
        (i["subject"], int(i.get("log_problems") or 0)) for i in res.items if i["metric"].startswith("log-")
    ]
    totals: dict[str, int] = {}
    for subject, count in logs:
        totals[subject] = totals.get(subject, 0) + count
    if totals:
        lines += [
            "",
            "Error, warning and alert lines in each target's log (all rounds; kept in "
            "`*.problems` next to the logs): " + ", ".join(f"{s} {n}" for s, n in totals.items()) + ".",
        ]
    if failures:
        lines += [
            "",
            f"**{failures} target(s) failed or returned errors in some round; those runs are left out "
            "of the medians.**",
        ]
    text = "\n".join(lines) + "\n"
    with open(out_path, "w") as handle:
        handle.write(text)
    sys.stdout.write(text)
    return 1 if failures else 0


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else ""
    if command == "wrk":
        print(json.dumps(wrk(sys.stdin.read())))
        return 0
    if command == "ticks" and len(argv) == 3:
        print(json.dumps(process_ticks(int(argv[2]))))
        return 0
    if command == "cpu" and len(argv) == 4:
        print(*cpu_since(int(argv[2]), argv[3]))
        return 0
    if command == "render" and len(argv) == 4:
        return render(argv[2], argv[3])
    sys.exit(__doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
