#!/usr/bin/env bash
# TLS interception: HTTPS through CONNECT with the proxy opening up the TLS, against an nginx
# HTTPS origin on 127.0.0.1, in one run, for
#   direct          bench/tls_load.py straight to nginx over TLS (no proxy: the client's ceiling)
#   lanner-off      lanner, `intercept: [{hosts: ["*"], verify: false}]`, `record: {enabled: false}`
#   lanner-on       the same with recording on (the defaults: analysis + SQLite), a fresh data_dir
#   mitmdump        mitmproxy's mitmdump -q --ssl-insecure (intercepts every TLS tunnel by default)
#   proxy.py        proxy.py with its TLS interception flags (--ca-key-file, --ca-cert-file,
#                   --ca-signing-key-file), --insecure-tls-interception, and --ca-file holding
#                   one certificate (the origin's CA): its fastest setup
#   proxy.py-sysca  the same with --ca-file /etc/ssl/certs/ca-certificates.crt (the system
#                   trust store), which proxy.py loads again for every upstream handshake
# Two measurements per target (bench/tls_load.py):
#   newconn    NEW_CONC workers, each: connect, CONNECT, 200, TLS handshake, one GET with
#              Connection: close, the whole response, close. Completed cycles per second.
#   keepalive  KA_CONC connections, each opened once, then sequential keep-alive GETs. Requests/s.
# Each runs WARMUP seconds first (uncounted: connections opened, the proxy's certificate for
# the name issued and cached), then DUR seconds counted. The client does not verify the
# certificates it is shown, and every proxy is told not to verify the origin's.
#
#   bench/intercept.sh [OUT.md]      default OUT: $BENCH_WORK/intercept.md
#
# env: DUR=8, WARMUP=2, NEW_CONC=20, KA_CONC=10, ROUNDS=1 (passes over every target in turn;
# the report gives each rate's median and range: use 3 on a noisy machine), BASE_PORT=18400
# (origin; proxies on the next five ports), LANNER=.venv/bin/lanner,
# BENCH_WORK=/tmp/lanner-intercept-run, BENCH_ENVS=/tmp/lanner-bench-envs (throwaway venvs),
# MITMPROXY=mitmproxy and PROXYPY=proxy.py==2.4.10 (pip requirements for the peers' venvs, made
# once and reused), QUIET_WAIT=SECONDS (before each measurement, wait up to that long for the
# machine to be under 10% busy), SYSCA=0 (skip the proxy.py-sysca row), KEEP_DATA=1 (keep each
# recording-on run's data_dir).
set -u
BENCH=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/common.sh
. "$BENCH/common.sh"
ROOT=$(dirname "$BENCH")
export DUR=${DUR:-8} WARMUP=${WARMUP:-2} NEW_CONC=${NEW_CONC:-20} KA_CONC=${KA_CONC:-10} ROUNDS=${ROUNDS:-1}
ROUND=0
BASE=${BASE_PORT:-18400}
WORK=${BENCH_WORK:-/tmp/lanner-intercept-run}
ENVS=${BENCH_ENVS:-/tmp/lanner-bench-envs}
LANNER=${LANNER:-$ROOT/.venv/bin/lanner}
PY=$ROOT/.venv/bin/python  # the load client (uvloop, cryptography, trustme) and report.py
OUT=${1:-$WORK/intercept.md}
SNI=origin.test
SYSTEM_CA=/etc/ssl/certs/ca-certificates.crt

ORIGIN_PORT=$BASE
OFF_PORT=$((BASE + 1))
ON_PORT=$((BASE + 2))
MITM_PORT=$((BASE + 3))
PROXYPY_PORT=$((BASE + 4))
PROXYPY_SYSCA_PORT=$((BASE + 5))

[ -x "$LANNER" ] || die "no lanner at $LANNER (run 'make install' or set LANNER)"
[ -x "$PY" ] || die "no python at $PY"
"$PY" -c 'import uvloop, trustme' 2>/dev/null || die "$PY lacks uvloop or trustme (run 'make install-test')"
case "$OUT" in /*) ;; *) OUT=$PWD/$OUT ;; esac
mkdir -p "$WORK/www" "$(dirname "$OUT")"
RESULTS=$WORK/intercept.jsonl
: >"$RESULTS"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# --- tools: nginx and openssl from Debian; throwaway venvs for mitmproxy and proxy.py ---
need_debs "nginx openssl" "nginx-light openssl"
venv "$ENVS/mitmproxy" "${MITMPROXY:-mitmproxy}"
venv "$ENVS/proxy.py" "${PROXYPY:-proxy.py==2.4.10}"
MITMDUMP=$ENVS/mitmproxy/bin/mitmdump
PROXYPY=$ENVS/proxy.py/bin/proxy
MITM_VERSION=$("$MITMDUMP" --version 2>/dev/null | sed -n 's/^Mitmproxy: //p')
PROXYPY_VERSION=$("$PROXYPY" --version 2>/dev/null)
[ "${SYSCA:-1}" = 1 ] && [ ! -f "$SYSTEM_CA" ] && { say "no $SYSTEM_CA: skipping proxy.py-sysca"; SYSCA=0; }

ports_free "$BASE" $((BASE + 5))

# --- certificates: the origin's (trustme: its own CA, ECDSA P-256, for origin.test,
# localhost and 127.0.0.1) and proxy.py's CA, CA key and leaf signing key (RSA 2048, made with
# openssl as proxy.py's documentation does; proxy.py itself runs the openssl binary to issue
# leaves). lanner and mitmdump make their own CA on first start. ---
if [ ! -f "$WORK/origin.pem" ]; then
  "$PY" - "$WORK" "$SNI" <<'EOF' || die "could not make the origin's certificate"
import sys, trustme
work, name = sys.argv[1], sys.argv[2]
ca = trustme.CA()
ca.cert_pem.write_to_path(f"{work}/origin-ca.pem")
ca.issue_cert(name, "localhost", "127.0.0.1").private_key_and_cert_chain_pem.write_to_path(f"{work}/origin.pem")
EOF
fi
PPY=$WORK/proxypy
if [ ! -f "$PPY/ca-signing-key.pem" ]; then
  mkdir -p "$PPY/certs" "$PPY/certs-sysca" "$PPY/data"
  { openssl genrsa -out "$PPY/ca-key.pem" 2048 &&
    openssl req -key "$PPY/ca-key.pem" -new -x509 -days 30 -subj "/CN=proxy.py bench CA" -out "$PPY/ca-cert.pem" &&
    openssl genrsa -out "$PPY/ca-signing-key.pem" 2048; } >"$WORK/openssl.log" 2>&1 ||
    die "openssl could not make proxy.py's CA, see $WORK/openssl.log"
fi

# --- the origin: nginx, one worker, TLS on 127.0.0.1, /small (18 bytes) ---
echo "hello-from-origin" >"$WORK/www/small"
start_origin "$ORIGIN_PORT" "$WORK/origin.pem"

# --- lanner configs (checked before anything is measured) ---
lanner_config() { # file port data_dir recording(true|false)
  cat >"$1" <<EOF
listeners:
  - name: forward
    bind: 127.0.0.1:$2
data_dir: $3
record:
  enabled: $4
intercept:
  - hosts: ["*"]
    verify: false
EOF
}
lanner_config "$WORK/lanner-off.yaml" "$OFF_PORT" "$WORK/lanner-off-data" false
lanner_config "$WORK/lanner-on.yaml" "$ON_PORT" "$WORK/data-check" true
for config in lanner-off lanner-on; do
  "$LANNER" config check "$WORK/$config.yaml" >"$WORK/$config.check" 2>&1 ||
    die "lanner config check refused $WORK/$config.yaml: $(cat "$WORK/$config.check")"
done

# --- measurements: each appends one JSON line to $RESULTS ---
REPORT_PY=$PY
load() { # subject mode port pid: one tls_load.py run, recorded
  local subject=$1 mode=$2 port=$3 pid=$4 conc others
  conc=$NEW_CONC; [ "$mode" = keepalive ] && conc=$KA_CONC
  wait_quiet
  say "round $ROUND: $subject: $mode, $conc concurrent, ${WARMUP}s warm-up + ${DUR}s"
  others_start
  timeout $((WARMUP + DUR + 40)) "$PY" "$BENCH/tls_load.py" "$mode" "$port" "$ORIGIN_PORT" "$conc" "$DUR" \
    --warmup "$WARMUP" --sni "$SNI" --expect 18 --watch "$pid" >"$WORK/$subject-$mode-round$ROUND.json" 2>&1
  others=$(others_since)
  record "$subject" "$mode" others_cpu_ticks="$others" <"$WORK/$subject-$mode-round$ROUND.json"
}
both() { # subject port pid
  load "$1" newconn "$2" "$3"
  load "$1" keepalive "$2" "$3"
}
log_problems() { # subject log: error-ish lines, kept apart; their count on stdout
  grep -iE 'error|traceback|exception|warn' "$2" >"$WORK/$1-round$ROUND.problems"
  wc -l <"$WORK/$1-round$ROUND.problems"
}
suite() { # subject port command...
  local subject=$1 port=$2; shift 2
  local log=$WORK/$subject-round$ROUND.log
  start "$log" "$@"
  local pid=$PID
  if wait_port "$port" "$pid" 150; then
    both "$subject" "$port" "$pid"
  else
    for mode in newconn keepalive; do echo '{"unavailable": "did not start"}' | record "$subject" "$mode"; done
  fi
  stop "$pid"
  echo "{\"log_problems\": $(log_problems "$subject" "$log")}" | record "$subject" log
}
measure_on() { # recording on: both loads, then what reached the store
  local data log pid count problems
  data=$(mktemp -d "$WORK/data-on-round$ROUND.XXXX")
  log=$WORK/lanner-on-round$ROUND.log
  lanner_config "$WORK/lanner-on.yaml" "$ON_PORT" "$data" true
  start "$log" "$LANNER" run -c "$WORK/lanner-on.yaml"
  pid=$PID
  if wait_port "$ON_PORT" "$pid" 150; then
    both lanner-on "$ON_PORT" "$pid"
  else
    for mode in newconn keepalive; do echo '{"unavailable": "did not start"}' | record lanner-on "$mode"; done
  fi
  stop "$pid" 30  # the recorder writes what is queued before lanner exits
  "$LANNER" flows --db "$data/lanner.db" stats >"$WORK/lanner-on-round$ROUND.stats" 2>&1
  count=$(awk '$1 == "flows" {print $2; exit}' "$WORK/lanner-on-round$ROUND.stats")
  problems=$(log_problems lanner-on "$log")
  echo "{\"log_problems\": $problems, \"flows_stored\": ${count:-null}}" | record lanner-on log
  [ "${KEEP_DATA:-0}" = 1 ] || rm -rf "$data"
}

# --- the run ---
begin_run
for ROUND in $(seq "$ROUNDS"); do
  both direct 0 0
  suite lanner-off "$OFF_PORT" "$LANNER" run -c "$WORK/lanner-off.yaml"
  measure_on
  suite mitmdump "$MITM_PORT" "$MITMDUMP" --listen-host 127.0.0.1 -p "$MITM_PORT" -q --ssl-insecure \
    --set confdir="$WORK/mitmproxy-conf"
  suite proxy.py "$PROXYPY_PORT" "$PROXYPY" --hostname 127.0.0.1 --port "$PROXYPY_PORT" \
    --ca-key-file "$PPY/ca-key.pem" --ca-cert-file "$PPY/ca-cert.pem" --ca-signing-key-file "$PPY/ca-signing-key.pem" \
    --ca-cert-dir "$PPY/certs" --ca-file "$WORK/origin-ca.pem" --insecure-tls-interception --data-dir "$PPY/data"
  [ "${SYSCA:-1}" = 1 ] && suite proxy.py-sysca "$PROXYPY_SYSCA_PORT" "$PROXYPY" --hostname 127.0.0.1 \
    --port "$PROXYPY_SYSCA_PORT" --ca-key-file "$PPY/ca-key.pem" --ca-cert-file "$PPY/ca-cert.pem" \
    --ca-signing-key-file "$PPY/ca-signing-key.pem" --ca-cert-dir "$PPY/certs-sysca" --ca-file "$SYSTEM_CA" \
    --insecure-tls-interception --data-dir "$PPY/data"
done

# --- the report ---
export BENCH_DATE BENCH_MACHINE
BENCH_DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
BENCH_MACHINE="$(nproc) cores ($cpu), Linux $(uname -r), $("$PY" --version) for lanner and the client"
BENCH_MACHINE+=", lanner $("$LANNER" --version 2>&1 | awk '{print $NF}') at $LANNER_REV"
BENCH_MACHINE+=", mitmproxy $MITM_VERSION ($("$ENVS/mitmproxy/bin/python" --version))"
BENCH_MACHINE+=", proxy.py $PROXYPY_VERSION ($("$ENVS/proxy.py/bin/python" --version))"
BENCH_MACHINE+=", $(nginx -v 2>&1 | sed 's/.*: //'), $(openssl version | awk '{print $1, $2}')"
"$PY" - "$RESULTS" "$OUT" <<'EOF'
"""The table: median rates per target over the rounds, CPU, ratios, and the issue's targets."""
import json, os, statistics, sys

results_path, out_path = sys.argv[1], sys.argv[2]
items = [json.loads(line) for line in open(results_path) if line.strip()]
TARGETS = [
    ("direct", "direct to nginx over TLS (no proxy)"),
    ("lanner-off", "**lanner**, recording off"),
    ("lanner-on", "lanner, recording on (analysis + SQLite)"),
    ("mitmdump", "mitmdump -q --ssl-insecure"),
    ("proxy.py", "proxy.py, --ca-file: one certificate"),
    ("proxy.py-sysca", "proxy.py, --ca-file: the system trust store"),
]
MODES = ("newconn", "keepalive")
tck = os.sysconf("SC_CLK_TCK")
env = os.environ
rows = {(i["subject"], i["metric"], i["round"]): i for i in items}
rounds = sorted({i["round"] for i in items})
present = [(s, label) for s, label in TARGETS if any(i["subject"] == s for i in items)]


def figures(subject, mode):
    return sorted(r["rate"] for k, r in rows.items() if k[:2] == (subject, mode) and r.get("rate") is not None)


def rate(subject, mode):
    found = figures(subject, mode)
    return statistics.median(found) if found else None


def med(subject, mode, fn):
    values = [fn(r) for k, r in rows.items() if k[:2] == (subject, mode)]
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def rate_cell(subject, mode):
    found = figures(subject, mode)
    if not found:
        notes = "; ".join(
            r.get("unavailable") or r.get("first_error") or "no output"
            for k, r in rows.items() if k[:2] == (subject, mode)
        )
        return f"failed ({notes})"
    text = f"{statistics.median(found):,.0f}"
    return text + (f" ({found[0]:,.0f}–{found[-1]:,.0f})" if len(found) > 1 else "")


def cores(subject, mode, key):
    def one(r):
        if key == "proxy_cpu_ticks":
            return None if r.get(key) is None else r[key] / tck / r["seconds"]
        return r.get(key)
    value = med(subject, mode, one)
    return "–" if value is None else f"{value:.2f}"


def others(subject, mode):
    """CPU used meanwhile by processes this script did not start, in cores (over warm-up + DUR)."""
    span = float(env["WARMUP"]) + float(env["DUR"])
    value = med(subject, mode, lambda r: None if r.get("others_cpu_ticks") is None else r["others_cpu_ticks"] / tck / span)
    return "–" if value is None else f"{value:.2f}"


def errors(subject, mode):
    total = sum((r.get("errors") or 0) for k, r in rows.items() if k[:2] == (subject, mode))
    first = next((r["first_error"] for k, r in rows.items() if k[:2] == (subject, mode) and r.get("first_error")), "")
    return f"{total:.0f}" + (f" ({first[:60]})" if first else "")


def ratio(a, b, mode):
    top, bottom = rate(a, mode), rate(b, mode)
    if not top or not bottom:
        return None, []
    per_round = []
    for rnd in rounds:
        x, y = rows.get((a, mode, rnd)), rows.get((b, mode, rnd))
        if x and y and x.get("rate") and y.get("rate"):
            per_round.append(x["rate"] / y["rate"])
    return top / bottom, sorted(per_round)


def ratio_cell(a, b, mode):
    value, per_round = ratio(a, b, mode)
    if value is None:
        return "–"
    fmt = "{:.1f}" if value >= 10 else "{:.2f}"
    text = fmt.format(value)
    if len(per_round) > 1:
        text += f" ({fmt.format(per_round[0])}–{fmt.format(per_round[-1])})"
    return text


lines = [
    "# TLS interception: new intercepted HTTPS connections and keep-alive requests",
    "",
    f"{env.get('BENCH_DATE', '')}; {env.get('BENCH_MACHINE', '')}; machine {env.get('BENCH_BUSY', '?')} busy before the run.",
    f"bench/tls_load.py on 127.0.0.1: new connections with {env['NEW_CONC']} workers, keep-alive with "
    f"{env['KA_CONC']} connections; {env['WARMUP']} s warm-up + {env['DUR']} s counted each; "
    f"{env['ROUNDS']} round(s), medians (range). GET of an 18-byte file from nginx over TLS. "
    "CPU columns in cores (1.00 = one core busy): the proxy's process tree and the client during the counted "
    "seconds; other processes' CPU (not started by this script) over warm-up and counted seconds.",
    "",
    "| target | new conns/s | p50 / p99 ms | proxy CPU | client CPU | keep-alive req/s | proxy CPU | client CPU "
    "| new: × mitmdump | new: × proxy.py | keep-alive: × mitmdump | keep-alive: × proxy.py | errors (new / keep-alive) "
    "| other processes' CPU (new / keep-alive) |",
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |",
]
for subject, label in present:
    p50, p99 = med(subject, "newconn", lambda r: r.get("p50_ms")), med(subject, "newconn", lambda r: r.get("p99_ms"))
    lat = f"{p50:.1f} / {p99:.1f}" if p50 is not None and p99 is not None else "–"
    peer = subject in ("mitmdump", "proxy.py", "proxy.py-sysca", "direct")
    ratios = ["", "", "", ""] if peer else [
        ratio_cell(subject, "mitmdump", "newconn"), ratio_cell(subject, "proxy.py", "newconn"),
        ratio_cell(subject, "mitmdump", "keepalive"), ratio_cell(subject, "proxy.py", "keepalive"),
    ]
    lines.append(
        f"| {label} | {rate_cell(subject, 'newconn')} | {lat} | {cores(subject, 'newconn', 'proxy_cpu_ticks')} "
        f"| {cores(subject, 'newconn', 'client_cpu')} | {rate_cell(subject, 'keepalive')} "
        f"| {cores(subject, 'keepalive', 'proxy_cpu_ticks')} | {cores(subject, 'keepalive', 'client_cpu')} | "
        + " | ".join(ratios) + f" | {errors(subject, 'newconn')} / {errors(subject, 'keepalive')} "
        f"| {others(subject, 'newconn')} / {others(subject, 'keepalive')} |"
    )
lines += ["", "Targets (issue), lanner with recording off against each peer in the same run:", ""]
for mode, peer, need, what in (
    ("newconn", "mitmdump", 5, "new intercepted connections/s ≥ 5 × mitmdump"),
    ("newconn", "proxy.py", 3, "new intercepted connections/s ≥ 3 × proxy.py"),
    ("keepalive", "mitmdump", 10, "keep-alive requests/s ≥ 10 × mitmdump"),
    ("keepalive", "proxy.py", 1, "keep-alive requests/s ≥ 1 × proxy.py"),
):
    value, per_round = ratio("lanner-off", peer, mode)
    if value is None:
        lines.append(f"- {what}: not measured")
        continue
    verdict = "met" if value >= need else "**not met**"
    spread = f" (rounds {per_round[0]:.2f}–{per_round[-1]:.2f})" if len(per_round) > 1 else ""
    lines.append(f"- {what}: {value:.2f}{spread}: {verdict}")
logs = {(i["subject"], i["round"]): i for i in items if i["metric"] == "log"}
problems = {s: sum(int(i.get("log_problems") or 0) for (subj, _), i in logs.items() if subj == s) for s, _ in present}
lines += ["", "Error, warning and traceback lines in each target's log (all rounds): "
          + ", ".join(f"{s} {n}" for s, n in problems.items() if s != "direct") + "."]
stored = [(rnd, logs[("lanner-on", rnd)].get("flows_stored")) for rnd in rounds if ("lanner-on", rnd) in logs]
if stored:
    parts = []
    for rnd, count in stored:
        made = sum(rows[("lanner-on", m, rnd)].get("total") or 0 for m in MODES if ("lanner-on", m, rnd) in rows)
        parts.append(f"round {rnd:.0f}: {count if count is None else f'{count:,.0f}'} flows stored for {made:,.0f} "
                     "requests completed")
    lines.append("Recording on: " + "; ".join(parts) + " (warm-up included).")
text = "\n".join(lines) + "\n"
open(out_path, "w").write(text)
sys.stdout.write(text)
EOF
say "wrote $OUT (raw results: $RESULTS)"
