#!/usr/bin/env bash
# Vendor aggregation: new sticky-session CONNECT tunnels per second through lanner, in one run, for
#   direct        lanner, a forward listener without upstream_pool, CONNECT to a plain HTTP server
#                 (fast_vendor.py --plain); the same usernames and passwords as below, so lanner
#                 parses the same routing parameters
#   vendor        lanner with upstream_pool -> fast_vendor.py --terminate: lanner completes the
#                 vendor's CONNECT (Proxy-Authorization rendered from the credential template, a
#                 vendor session id derived per client session), then relays; the fake vendor
#                 answers the tunnelled GET itself (the CONNECT target, 127.0.0.1:9, is never dialled)
#   vendor-relay  (information) lanner -> fast_vendor.py --relay -> the plain server
#   vendor-redis  (information) as vendor, with `state: redis://127.0.0.1:6379/14`
# Each tunnel (bench/vendor_load.py): CONNECT with `alice_session-{i % SESSIONS}:secret`, read the
# 200, `GET /small` with Connection: close, read to the end, check the 200 and the body, close;
# CONC tunnels in flight. Every target is checked with curl first and gets WARMUP seconds of
# uncounted load; then one counted run of DUR seconds. After the rounds, one SUSTAIN-second run of
# `vendor` on a fresh lanner samples its RSS every 5 s and the load's latency per 10 s.
# The issue's target: vendor >= 0.8 x direct, sustained for 60 s at 2,000 live sessions without
# growth in memory or latency. A run with errors (the load's, or refusals at the fake vendor)
# counts as failed and the script exits 1.
# Nothing is pinned: on a small machine the load, the fake vendor and lanner share the cores;
# the report gives the CPU each used per 1,000 tunnels.
#
#   bench/vendors.sh [OUT.md]      default OUT: $BENCH_WORK/vendors.md
#
# env: DUR=20 (seconds per counted run), CONC=50 (tunnels in flight), SESSIONS=2000 (distinct
# client sessions, used round-robin), WARMUP=3 (uncounted seconds before each counted run),
# ROUNDS=3 (passes over the four targets; the report gives medians and ranges), SUSTAIN=60 (the
# long run's seconds; 0 skips it), BASE_PORT=18600 (the plain server; the fake vendors and the
# lanner listeners on the next six ports), REDIS_URL=redis://127.0.0.1:6379/14, LANNER=.venv/bin/lanner,
# BENCH_WORK=/tmp/lanner-vendors-run, QUIET_WAIT=10 (before each counted run, wait up to that
# long for the machine to be under 10% busy; 0: do not wait).
set -u
BENCH=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/common.sh
. "$BENCH/common.sh"
ROOT=$(dirname "$BENCH")
export DUR=${DUR:-20} CONC=${CONC:-50} SESSIONS=${SESSIONS:-2000} WARMUP=${WARMUP:-3}
export ROUNDS=${ROUNDS:-3} SUSTAIN=${SUSTAIN:-60} QUIET_WAIT=${QUIET_WAIT:-10}
ROUND=0
BASE=${BASE_PORT:-18600}
WORK=${BENCH_WORK:-/tmp/lanner-vendors-run}
LANNER=${LANNER:-$ROOT/.venv/bin/lanner}
PY=$ROOT/.venv/bin/python  # fast_vendor.py and vendor_load.py want uvloop, which lanner's venv has
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379/14}
OUT=${1:-$WORK/vendors.md}
BODY="hello-from-origin"
SINK_PORT=9  # the CONNECT target the terminating vendor never dials

PLAIN_PORT=$BASE
TERMINATE_PORT=$((BASE + 1))
RELAY_PORT=$((BASE + 2))
DIRECT_LPORT=$((BASE + 3))
VENDOR_LPORT=$((BASE + 4))
RELAY_LPORT=$((BASE + 5))
REDIS_LPORT=$((BASE + 6))

[ -x "$LANNER" ] || die "no lanner at $LANNER (run 'make install' or set LANNER)"
"$PY" -c 'import uvloop' 2>/dev/null || die "$PY has no uvloop"
case "$OUT" in /*) ;; *) OUT=$PWD/$OUT ;; esac
mkdir -p "$WORK" "$(dirname "$OUT")"
RESULTS=$WORK/vendors.jsonl
: >"$RESULTS"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
need_debs "curl" "curl"
ports_free "$BASE" $((BASE + 6))

loud() { # a message that must not scroll by unnoticed
  say "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
  local line
  for line in "$@"; do say "!!! $line"; done
  say "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
}

# --- lanner configs, checked before anything is measured ---
lanner_config() { # file port [vendor_port [state_url]]: without a vendor port, no upstream_pool
  local pool=
  [ -n "${3:-}" ] && pool=", upstream_pool: main"
  cat >"$1" <<EOF
listeners:
  - {name: gw, bind: 127.0.0.1:$2$pool}
users: [{name: alice, password: secret}]
record: {enabled: false}
log: {connections: false, level: warning}
EOF
  [ -n "${3:-}" ] || return 0
  cat >>"$1" <<EOF
vendors:
  session_secret: bench-secret-123
${4:+  state: $4
}  # an hour: over a run, few sessions start a new period (and a new vendor session id)
  pools: [{name: main, providers: [fast], session_ttl: 1h}]
  providers:
    - name: fast
      endpoints: ["127.0.0.1:$3"]
      username: "customer-bench[-sessid-{session}][-sesstime-{ttl}]"
      password: vendorpw
EOF
}
lanner_config "$WORK/direct.yaml" "$DIRECT_LPORT"
lanner_config "$WORK/vendor.yaml" "$VENDOR_LPORT" "$TERMINATE_PORT"
lanner_config "$WORK/vendor-relay.yaml" "$RELAY_LPORT" "$RELAY_PORT"
lanner_config "$WORK/vendor-redis.yaml" "$REDIS_LPORT" "$TERMINATE_PORT" "$REDIS_URL"
for config in direct vendor vendor-relay vendor-redis; do
  "$LANNER" config check "$WORK/$config.yaml" >"$WORK/$config.check" 2>&1 ||
    die "lanner config check refused $WORK/$config.yaml: $(cat "$WORK/$config.check")"
done

# --- Redis: db 14 is the benchmark's; only lanner's keys there are cleared, before each redis run ---
REDIS_DB=${REDIS_URL##*/}
REDIS_HOSTPORT=${REDIS_URL#redis://}; REDIS_HOSTPORT=${REDIS_HOSTPORT%%/*}
redis_cli() { redis-cli -h "${REDIS_HOSTPORT%%:*}" -p "${REDIS_HOSTPORT##*:}" -n "$REDIS_DB" "$@"; }
REDIS_OK=1
command -v redis-cli >/dev/null && [ "$(redis_cli ping 2>/dev/null)" = PONG ] || REDIS_OK=0
[ "$REDIS_OK" = 1 ] || loud "no Redis answers at $REDIS_URL: vendor-redis is not measured"
redis_clear() { redis_cli --scan --pattern 'lanner:vendors:*' | xargs -r -n 500 redis-cli \
  -h "${REDIS_HOSTPORT%%:*}" -p "${REDIS_HOSTPORT##*:}" -n "$REDIS_DB" del >/dev/null; }

# --- measurements: each appends one JSON line to $RESULTS ---
REPORT_PY=$PY
check() { # subject port target_port: one tunnelled GET through lanner must give the body
  local got
  got=$(curl -s -m 10 -p -x "http://alice:secret@127.0.0.1:$2" "http://127.0.0.1:$3/small" 2>&1)
  [ "$got" = "$BODY" ] && return 0
  loud "$1: GET /small through lanner on port $2 gave '${got:0:120}', not '$BODY': not measured"
  return 1
}
log_problems() { # log: error-ish lines kept apart; their count on stdout
  grep -iE 'error|traceback|exception|warn|critical' "$1" >"${1%.log}.problems"
  wc -l <"${1%.log}.problems"
}
backends() { # subject: start the fake vendor and/or plain server it needs; sets BACKEND_PIDS, TARGET_PORT
  local tag=$WORK/$1-round$ROUND
  BACKEND_PIDS=()
  case "$1" in
    direct | vendor-relay)
      start "$tag-plain.log" "$PY" "$BENCH/fast_vendor.py" --plain "$PLAIN_PORT"
      BACKEND_PIDS+=("$PID"); wait_port "$PLAIN_PORT" "$PID" || return 1 ;;
  esac
  case "$1" in
    direct) TARGET_PORT=$PLAIN_PORT ;;
    vendor | vendor-redis)
      start "$tag-vendor.log" "$PY" "$BENCH/fast_vendor.py" --terminate "$TERMINATE_PORT"
      BACKEND_PIDS+=("$PID"); TARGET_PORT=$SINK_PORT
      wait_port "$TERMINATE_PORT" "$PID" || return 1 ;;
    vendor-relay)
      start "$tag-vendor.log" "$PY" "$BENCH/fast_vendor.py" --relay "$RELAY_PORT"
      BACKEND_PIDS+=("$PID"); TARGET_PORT=$PLAIN_PORT
      wait_port "$RELAY_PORT" "$PID" || return 1 ;;
  esac
}
backend_ticks() { # the fake vendor's and plain server's CPU ticks, summed
  local pid total=0
  for pid in "${BACKEND_PIDS[@]}"; do total=$((total + $(cpu_ticks "$pid"))); done
  echo "$total"
}
stop_backends() { # subject: stop them; each prints its counts, recorded
  local pid log
  for pid in "${BACKEND_PIDS[@]}"; do stop "$pid"; done
  for log in "$WORK/$1-round$ROUND"-{plain,vendor}.log; do
    [ -f "$log" ] && "$PY" "$BENCH/vendors_report.py" stats "$log" | record "$1" backend
  done
}
counted() { # subject lanner_pid lanner_port seconds metric [rss sampling: yes]: one counted load run
  local subject=$1 pid=$2 port=$3 seconds=$4 metric=$5 out=$WORK/$1-$5-round$ROUND.json
  local l0 l1 b0 b1 sampler=
  wait_quiet
  say "round $ROUND: $subject: $CONC in flight, $SESSIONS sessions, ${seconds}s"
  others_start
  l0=$(cpu_ticks "$pid"); b0=$(backend_ticks)
  [ "${6:-}" = yes ] && { "$PY" "$BENCH/vendors_report.py" rss "$pid" "$seconds" 5 >"$WORK/rss.json" & sampler=$!; }
  local TIMEFORMAT='%U %S'  # bash's `time`: the load's user and system CPU seconds
  { time timeout $((seconds + 30)) "$PY" "$BENCH/vendor_load.py" "$port" "$TARGET_PORT" "$CONC" "$seconds" \
    "$SESSIONS" >"$out" 2>&1; } 2>"$out.time"
  l1=$(cpu_ticks "$pid"); b1=$(backend_ticks)
  [ -n "$sampler" ] && wait "$sampler"
  local extra=(lanner_cpu_ticks=$((l1 - l0)) backend_cpu_ticks=$((b1 - b0))
    load_cpu_s="$(awk '{print $1 + $2}' "$out.time")" others_cpu_ticks="$(others_since)")
  record "$subject" "$metric" "${extra[@]}" <"$out"
  if ! grep -q '"errors": 0,' "$out"; then
    loud "$subject (round $ROUND): ERRORS or no result, this figure will not count:" "$(head -c 400 "$out")"
  fi
}
suite() { # subject lanner_port [sustain]: backends, lanner, check, warm-up, counted run, stop
  local subject=$1 port=$2 sustain=${3:-} log pid
  log=$WORK/$subject-round$ROUND.log
  [ -n "$sustain" ] && log=$WORK/$subject-sustain.log
  if [ "$subject" = vendor-redis ]; then
    [ "$REDIS_OK" = 1 ] || { echo '{"unavailable": "no Redis"}' | record "$subject" load; return 0; }
    redis_clear
  fi
  if ! backends "$subject"; then
    loud "$subject: a fake vendor or the plain server did not start (logs: $WORK/$subject-round$ROUND-*.log)"
    echo '{"unavailable": "backend did not start"}' | record "$subject" load
    stop_backends "$subject"; return 0
  fi
  start "$log" "$LANNER" run -c "$WORK/$subject.yaml"
  pid=$PID
  if ! wait_port "$port" "$pid" 150; then
    loud "$subject: lanner did not start, see $log"
    echo '{"unavailable": "lanner did not start"}' | record "$subject" load
  elif ! check "$subject" "$port" "$TARGET_PORT"; then
    echo '{"unavailable": "the curl check failed"}' | record "$subject" load
  else
    local rss0=0 rss1=0
    [ -n "$sustain" ] && rss0=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")
    [ "$WARMUP" -gt 0 ] && timeout $((WARMUP + 30)) "$PY" "$BENCH/vendor_load.py" "$port" "$TARGET_PORT" \
      "$CONC" "$WARMUP" "$SESSIONS" >"$WORK/$subject-warmup-round$ROUND.json" 2>&1
    if [ -n "$sustain" ]; then
      rss1=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")
      counted "$subject" "$pid" "$port" "$SUSTAIN" sustain yes
      record "$subject" rss rss_before_kb="$rss0" rss_after_warmup_kb="$rss1" <"$WORK/rss.json"
    else
      counted "$subject" "$pid" "$port" "$DUR" load
    fi
  fi
  stop "$pid"
  echo "{\"log_problems\": $(log_problems "$log")}" | record "$subject" "log${sustain:+-sustain}"
  stop_backends "$subject"
}

# --- the run ---
touch "$WORK/run.stamp"  # a source newer than this at the end: lanner changed during the run
START_HEAD=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)
begin_run
for ROUND in $(seq "$ROUNDS"); do
  say "round $ROUND of $ROUNDS"
  suite direct "$DIRECT_LPORT"
  suite vendor "$VENDOR_LPORT"
  suite vendor-relay "$RELAY_LPORT"
  suite vendor-redis "$REDIS_LPORT"
done
if [ "$SUSTAIN" -gt 0 ]; then
  ROUND=0
  say "sustain: vendor for ${SUSTAIN}s, RSS every 5 s"
  suite vendor "$VENDOR_LPORT" sustain
fi

# --- the report ---
export BENCH_DATE BENCH_MACHINE BENCH_SETTINGS
BENCH_SRC_CHANGED=$(find "$ROOT/src" -type f -name "*.py" -newer "$WORK/run.stamp" -printf '%P ' 2>/dev/null | head -c 400)
END_HEAD=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)
[ "$START_HEAD" = "$END_HEAD" ] || BENCH_SRC_CHANGED="HEAD $START_HEAD -> $END_HEAD; $BENCH_SRC_CHANGED"
[ -n "$BENCH_SRC_CHANGED" ] &&
  loud "lanner's code changed during the run, its rounds may have measured different code:" "$BENCH_SRC_CHANGED"
BENCH_DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
BENCH_MACHINE="$(nproc) cores ($cpu), Linux $(uname -r), $("$PY" --version)"
BENCH_MACHINE+=", uvloop $("$PY" -c 'import uvloop; print(uvloop.__version__)')"
BENCH_MACHINE+=", lanner $("$LANNER" --version 2>&1 | awk '{print $NF}') at $LANNER_REV"
[ "$REDIS_OK" = 1 ] && BENCH_MACHINE+=", Redis $(redis_cli info server 2>/dev/null | sed -n 's/^redis_version:\([^[:space:]]*\).*/\1/p')"
BENCH_SETTINGS="DUR=$DUR ROUNDS=$ROUNDS CONC=$CONC SESSIONS=$SESSIONS WARMUP=$WARMUP SUSTAIN=$SUSTAIN QUIET_WAIT=$QUIET_WAIT"
"$PY" "$BENCH/vendors_report.py" render "$RESULTS" "$OUT"
status=$?
say "wrote $OUT (raw results: $RESULTS, logs and load outputs: $WORK)"
[ "$status" = 0 ] || loud "some targets failed or saw errors: see $OUT and above"
exit "$status"
