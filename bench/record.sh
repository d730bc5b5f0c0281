#!/usr/bin/env bash
# What recording costs: small plain-HTTP GETs through lanner's forward proxy (absolute-form,
# keep-alive, wrk + absolute.lua) against a local nginx origin, in one run, for
#   direct      wrk straight to nginx (no proxy)
#   lanner-off  lanner, `record: {enabled: false}`
#   lanner-on   lanner, recording on (the defaults: analysis + SQLite store), a fresh data_dir
#   mitmdump    mitmproxy's mitmdump as a regular proxy (-q), from a throwaway venv
# After each recording-on run: flows in the store vs the requests wrk made, how long the
# writer took to catch up, and the recorder's warnings (records dropped, store failures).
#
#   bench/record.sh [OUT.md]      default OUT: $BENCH_WORK/record.md
#
# env: DUR=8 (seconds per wrk run), CONC=50, ROUNDS=1 (passes over every target in turn; the
# report gives each rate's median and range: use 3 on a noisy machine), BASE_PORT=18300
# (origin; proxies on the next three ports), LANNER=.venv/bin/lanner,
# BENCH_WORK=/tmp/lanner-record-run, BENCH_ENVS=/tmp/lanner-bench-envs (throwaway venvs),
# MITMPROXY=mitmproxy (the pip requirement for the mitmproxy venv, made once and reused),
# QUIET_WAIT=SECONDS (before each measurement, wait up to that long for the machine to be
# under 10% busy), KEEP_DATA=1 (keep each recording-on run's data_dir; default: deleted once
# counted).
set -u
BENCH=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/common.sh
. "$BENCH/common.sh"
ROOT=$(dirname "$BENCH")
export DUR=${DUR:-8} CONC=${CONC:-50} ROUNDS=${ROUNDS:-1}
ROUND=0
BASE=${BASE_PORT:-18300}
WORK=${BENCH_WORK:-/tmp/lanner-record-run}
ENVS=${BENCH_ENVS:-/tmp/lanner-bench-envs}
LANNER=${LANNER:-$ROOT/.venv/bin/lanner}
PY=$ROOT/.venv/bin/python  # report.py and the table need only the standard library
OUT=${1:-$WORK/record.md}

ORIGIN_PORT=$BASE
OFF_PORT=$((BASE + 1))
ON_PORT=$((BASE + 2))
MITM_PORT=$((BASE + 3))


[ -x "$LANNER" ] || die "no lanner at $LANNER (run 'make install' or set LANNER)"
[ -x "$PY" ] || die "no python at $PY"
case "$OUT" in /*) ;; *) OUT=$PWD/$OUT ;; esac
mkdir -p "$WORK/www" "$(dirname "$OUT")"
RESULTS=$WORK/record.jsonl
: >"$RESULTS"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# --- tools: Debian packages for the origin and the load; a throwaway venv for mitmproxy ---
need_debs "wrk nginx curl" "wrk nginx-light curl"
venv "$ENVS/mitmproxy" "${MITMPROXY:-mitmproxy}"
MITMDUMP=$ENVS/mitmproxy/bin/mitmdump
MITM_VERSION=$("$MITMDUMP" --version 2>/dev/null | sed -n 's/^Mitmproxy: //p')

ports_free "$BASE" $((BASE + 3))

# --- the origin: nginx, one worker, /small (18 bytes) ---
echo "hello-from-origin" >"$WORK/www/small"
start_origin "$ORIGIN_PORT"

# --- lanner configs (checked before anything is measured) ---
cat >"$WORK/lanner-off.yaml" <<EOF
listeners:
  - name: forward
    bind: 127.0.0.1:$OFF_PORT
record: {enabled: false}
EOF
on_config() { # data_dir -> the recording-on config, written to $WORK/lanner-on.yaml
  cat >"$WORK/lanner-on.yaml" <<EOF
listeners:
  - name: forward
    bind: 127.0.0.1:$ON_PORT
data_dir: $1
record:
  enabled: true
EOF
}
on_config "$WORK/data-check"
for config in lanner-off lanner-on; do
  "$LANNER" config check "$WORK/$config.yaml" >"$WORK/$config.check" 2>&1 ||
    die "lanner config check refused $WORK/$config.yaml: $(cat "$WORK/$config.check")"
done

# --- measurements: each appends one JSON line to $RESULTS ---
REPORT_PY=$PY
# wrk through a proxy (port > 0) or straight to the origin (port 0); the parsed result on stdout
# with the proxy's CPU ticks and everyone else's added
run_wrk() { # subject port pid
  wait_quiet
  say "round $ROUND: $1: wrk ${DUR}s, $CONC connections"
  local before=0 after=0
  others_start
  [ "$2" = 0 ] || before=$(cpu_ticks "$3")
  WRK_BEFORE_TICKS=$before
  if [ "$2" = 0 ]; then
    timeout $((DUR + 20)) wrk -t2 -c"$CONC" -d"${DUR}s" --latency "http://127.0.0.1:$ORIGIN_PORT/small" >"$WORK/wrk-$1.out" 2>&1
  else
    ORIGIN=http://127.0.0.1:$ORIGIN_PORT/small timeout $((DUR + 20)) \
      wrk -t2 -c"$CONC" -d"${DUR}s" --latency -s "$BENCH/absolute.lua" "http://127.0.0.1:$2/" >"$WORK/wrk-$1.out" 2>&1
    after=$(cpu_ticks "$3")
  fi
  local others
  others=$(others_since)
  cp "$WORK/wrk-$1.out" "$WORK/wrk-$1-round$ROUND.out"
  WRK_EXTRA="seconds=$DUR others_cpu_ticks=$others"
  [ "$2" = 0 ] || WRK_EXTRA+=" proxy_cpu_ticks=$((after - before))"
}
measure() { # subject port pid
  run_wrk "$@"
  "$PY" "$BENCH/report.py" wrk <"$WORK/wrk-$1.out" | record "$1" fwd $WRK_EXTRA
}
flow_count() { # db: rows in flows right now (a plain read; the writer may be mid-batch)
  "$PY" - "$1" <<'EOF' 2>/dev/null || echo -1
import sqlite3, sys
try:
    db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True, timeout=5)
    print(db.execute("SELECT count(*) FROM flows").fetchone()[0])
except sqlite3.Error:
    print(0)
EOF
}
measure_on() { # recording on: wrk, then the store and the log
  local data log pid db
  data=$(mktemp -d "$WORK/data-on-round$ROUND.XXXX")
  db=$data/lanner.db
  log=$WORK/lanner-on-round$ROUND.log
  on_config "$data"
  start "$log" "$LANNER" run -c "$WORK/lanner-on.yaml"
  pid=$PID
  if ! wait_port "$ON_PORT" "$pid" 150; then
    echo '{"unavailable": "did not start"}' | record lanner-on fwd
    stop "$pid"; return
  fi
  run_wrk lanner-on "$ON_PORT" "$pid"
  # the writer catches up: poll until the count holds still for 1 s (at most 60 s)
  local t0 at_end last=-2 now count i
  t0=$(date +%s.%N)
  at_end=$(flow_count "$db")
  now=$at_end
  for i in $(seq 60); do
    [ "$now" = "$last" ] && break
    last=$now; sleep 1; now=$(flow_count "$db")
  done
  local drain catchup_ticks
  catchup_ticks=$(($(cpu_ticks "$pid") - WRK_BEFORE_TICKS))  # lanner's CPU for wrk's requests and their recording
  drain=$("$PY" -c "import sys; print(max(0.0, float(sys.argv[2]) - float(sys.argv[1]) - 1))" "$t0" "$(date +%s.%N)")
  # the recorder reports drops 10 s after the first one, and not at all if it stops before:
  # wait for that line (the first drop was during wrk, so at most 10 s after wrk ended)
  local left
  left=$("$PY" -c "import sys; print(max(0.0, 10.5 - (float(sys.argv[2]) - float(sys.argv[1]))))" "$t0" "$(date +%s.%N)")
  sleep "$left"
  stop "$pid" 30  # the recorder writes what is queued before lanner exits
  "$LANNER" flows --db "$db" stats >"$WORK/lanner-on-round$ROUND.stats" 2>&1
  count=$(awk '$1 == "flows" {print $2; exit}' "$WORK/lanner-on-round$ROUND.stats")
  local conns dropped lost paused
  conns=$(flow_conns "$db")
  dropped=$(grep -o 'dropped_total=[0-9]*' "$log" | tail -1 | cut -d= -f2)
  lost=$(grep -o 'lost=[0-9]*' "$log" | tail -1 | cut -d= -f2)
  paused=$(grep -c 'recording paused' "$log")
  grep -iE 'records dropped|recording paused|unwritten|error|traceback' "$log" >"$WORK/lanner-on-round$ROUND.warnings"
  "$PY" "$BENCH/report.py" wrk <"$WORK/wrk-lanner-on.out" | record lanner-on fwd $WRK_EXTRA \
    flows_at_wrk_end="$at_end" flows_stored="${count:-}" connection_rows="$conns" drain_s="$drain" \
    dropped="${dropped:-0}" lost="${lost:-0}" store_failures="$paused" cpu_ticks_with_catchup="$catchup_ticks"
  say "round $ROUND: lanner-on: $(wc -l <"$WORK/lanner-on-round$ROUND.warnings") warning/error lines in $log"
  [ "${KEEP_DATA:-0}" = 1 ] || rm -rf "$data"
}
flow_conns() {
  "$PY" - "$1" <<'EOF' 2>/dev/null || echo 0
import sqlite3, sys
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True, timeout=5)
print(db.execute("SELECT count(*) FROM connections").fetchone()[0])
EOF
}
suite() { # subject port command...
  local subject=$1 port=$2; shift 2
  start "$WORK/$subject-round$ROUND.log" "$@"
  local pid=$PID
  if wait_port "$port" "$pid" 150; then
    measure "$subject" "$port" "$pid"
  else
    echo '{"unavailable": "did not start"}' | record "$subject" fwd
  fi
  stop "$pid"
}

# --- the run ---
begin_run
for ROUND in $(seq "$ROUNDS"); do
  measure direct 0 0
  suite lanner-off "$OFF_PORT" "$LANNER" run -c "$WORK/lanner-off.yaml"
  measure_on
  suite mitmdump "$MITM_PORT" "$MITMDUMP" --listen-host 127.0.0.1 -p "$MITM_PORT" -q \
    --set confdir="$WORK/mitmproxy-conf"
done

# --- the report ---
export BENCH_DATE BENCH_MACHINE
BENCH_DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
BENCH_MACHINE="$(nproc) cores ($cpu), Linux $(uname -r), $("$PY" --version) for lanner"
BENCH_MACHINE+=", lanner $("$LANNER" --version 2>&1 | awk '{print $NF}') at $LANNER_REV"
BENCH_MACHINE+=", mitmproxy $MITM_VERSION ($("$ENVS/mitmproxy/bin/python" --version))"
BENCH_MACHINE+=", $(nginx -v 2>&1 | sed 's/.*: //'), $(wrk -v 2>&1 | head -1 | awk '{print $1, $2}')"
"$PY" - "$RESULTS" "$OUT" <<'EOF'
"""The table: median req/s per target over the rounds, the ratios the issue sets targets for,
and what recording did with the requests (flows stored, drops)."""
import json, os, statistics, sys

results_path, out_path = sys.argv[1], sys.argv[2]
items = [json.loads(line) for line in open(results_path) if line.strip()]
TARGETS = [
    ("direct", "direct to nginx (no proxy)"),
    ("lanner-off", "lanner, recording off"),
    ("lanner-on", "**lanner, recording on** (analysis + SQLite)"),
    ("mitmdump", "mitmdump -q (regular proxy)"),
]
tck = os.sysconf("SC_CLK_TCK")
by = {s: [i for i in items if i["subject"] == s] for s, _ in TARGETS}
by_round = {(i["subject"], i["round"]): i for i in items}


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def rps(subject):
    return med([i.get("rps") for i in by[subject]])


def rate_cell(subject):
    figures = sorted(i["rps"] for i in by[subject] if i.get("rps") is not None)
    if not figures:
        notes = "; ".join(i.get("notes") or i.get("unavailable", "") for i in by[subject])
        return f"failed ({notes})"
    text = f"{statistics.median(figures):,.0f}"
    if len(figures) > 1:
        text += f" ({figures[0]:,.0f}–{figures[-1]:,.0f})"
    return text


def paired(a, b):
    """Per-round ratios a/b (the two ran in the same round), for the range."""
    out = []
    for (subject, rnd), item in by_round.items():
        other = by_round.get((b, rnd))
        if subject == a and item.get("rps") and other and other.get("rps"):
            out.append(item["rps"] / other["rps"])
    return sorted(out)


def ratio_cell(a, b):
    top, bottom = rps(a), rps(b)
    if not top or not bottom:
        return "–"
    text = f"{top / bottom:.2f}" if top / bottom < 10 else f"{top / bottom:.1f}"
    rounds = paired(a, b)
    if len(rounds) > 1:
        fmt = "{:.2f}" if top / bottom < 10 else "{:.1f}"
        text += f" (rounds {fmt.format(rounds[0])}–{fmt.format(rounds[-1])})"
    return text


lines = [
    "# What recording costs: small HTTP GETs through the forward proxy",
    "",
    f"{os.environ.get('BENCH_DATE', '')}; {os.environ.get('BENCH_MACHINE', '')}; machine "
    f"{os.environ.get('BENCH_BUSY', '?')} busy before the run.",
    f"wrk -t2 -c{os.environ['CONC']} -d{os.environ['DUR']}s, absolute-form keep-alive GETs of an 18-byte file "
    f"(bench/absolute.lua) on 127.0.0.1; {os.environ['ROUNDS']} round(s), medians (range).",
    "",
    "| target | req/s | p50 / p99 ms | proxy CPU (cores) | other CPU (cores) | errors | ratio on/off | ratio on/mitmdump |",
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
]
for subject, label in TARGETS:
    rows = by[subject]
    p50 = med([i.get("p50_ms") for i in rows])
    p99 = med([i.get("p99_ms") for i in rows])
    cpu = med([i["proxy_cpu_ticks"] / tck / i["seconds"] for i in rows if i.get("proxy_cpu_ticks") is not None])
    others = med([i["others_cpu_ticks"] / tck / i["seconds"] for i in rows if i.get("others_cpu_ticks") is not None])
    errors = sum(i.get("errors") or 0 for i in rows)
    on = subject == "lanner-on"
    lines.append(
        f"| {label} | {rate_cell(subject)} | "
        + (f"{p50:.2f} / {p99:.2f}" if p50 is not None and p99 is not None else "–")
        + f" | {'–' if cpu is None else f'{cpu:.2f}'} | {'–' if others is None else f'{others:.2f}'} | {errors}"
        + f" | {ratio_cell('lanner-on', 'lanner-off') if on else ''} | {ratio_cell('lanner-on', 'mitmdump') if on else ''} |"
    )
off, on, mitm = rps("lanner-off"), rps("lanner-on"), rps("mitmdump")
lines += ["", "Targets (issue): recording on / off ≥ 0.75; recording on ≥ 20 × mitmdump."]
if off and on:
    lines.append(f"- on/off = {on / off:.2f}: {'met' if on / off >= 0.75 else '**not met**'}")
if mitm and on:
    lines.append(f"- on/mitmdump = {on / mitm:.1f}: {'met' if on / mitm >= 20 else '**not met**'}")
def cpu_us(subject, key):
    per = [i[key] / tck / i["requests"] * 1e6 for i in by[subject] if i.get(key) is not None and i.get("requests")]
    return med(per)


off_us, on_us = cpu_us("lanner-off", "proxy_cpu_ticks"), cpu_us("lanner-on", "cpu_ticks_with_catchup")
if off_us and on_us:
    lines.append(
        f"- lanner's CPU per request (median of rounds): recording off {off_us:.0f} µs; recording on {on_us:.0f} µs "
        "counting the writer's catch-up after wrk (requests the recorder dropped cost less)."
    )
lines += [
    "",
    "Recording on, per round: what reached the store.",
    "",
    "| round | wrk requests | flows in the store at wrk's end (writer flows/s during wrk) "
    "| flows stored (`lanner flows stats`) | stored / requests | requests not stored "
    "| writer catch-up after wrk (s) | connection rows | dropped (warnings) | lost at stop | store failures |",
    "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
]
for item in sorted(by["lanner-on"], key=lambda i: i["round"]):
    def n(key):
        value = item.get(key)
        return "–" if value is None else f"{value:,.0f}"
    share = missing = "–"
    if item.get("requests") and item.get("flows_stored") is not None:
        share = f"{item['flows_stored'] / item['requests']:.4f}"
        missing = f"{max(0, item['requests'] - item['flows_stored']):,.0f}"
    at_end = n("flows_at_wrk_end")
    if item.get("flows_at_wrk_end") is not None and item.get("seconds"):
        at_end += f" ({item['flows_at_wrk_end'] / item['seconds']:,.0f}/s)"
    drain = item.get("drain_s")
    lines.append(
        f"| {item['round']:.0f} | {n('requests')} | {at_end} | {n('flows_stored')} | {share} | {missing} "
        f"| {'–' if drain is None else f'{drain:.1f}'} | {n('connection_rows')} | {n('dropped')} | {n('lost')} "
        f"| {n('store_failures')} |"
    )
lines += [
    "",
    "wrk counts only the responses it read before its time ran out, so up to one request per connection "
    "more may be stored than wrk reports. Connection rows: wrk's connections plus the script's two port "
    "probes. The recorder logs drops 10 s after the first one; the script waits for that line.",
]
text = "\n".join(lines) + "\n"
open(out_path, "w").write(text)
sys.stdout.write(text)
EOF
say "wrote $OUT (raw results: $RESULTS)"
