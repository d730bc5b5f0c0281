#!/usr/bin/env bash
# lanner's benchmark: a direct connection, lanner and its peers (pproxy, proxy.py, squid),
# one after another on 127.0.0.1, in one run. See docs/BENCHMARKS.md.
#
#   bench/run.sh [OUT.md]      default OUT: $BENCH_WORK/results.md
#
# env: DUR=8 (seconds per wrk / new-tunnel run), CONC=50,
# ROUNDS=1 (passes over every proxy in turn; the report gives each rate's median and range:
# use 3 on a noisy machine), BASE_PORT=18200 (origin; proxies on the next five ports),
# LANNER=.venv/bin/lanner, BENCH_WORK=/tmp/lanner-bench-run,
# BENCH_ENVS=/tmp/lanner-bench-envs (throwaway venvs for the peers and the load client),
# QUIET_WAIT=SECONDS (before each measurement, wait up to that long for the machine to be
# under 10% busy: for a machine shared with other work),
# PROFILE=1 (after the measured lanner runs, an extra wrk run and an extra new-tunnel run
# under py-spy; collapsed stacks land in BENCH_WORK).
set -u
BENCH=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/common.sh
. "$BENCH/common.sh"
ROOT=$(dirname "$BENCH")
export DUR=${DUR:-8} CONC=${CONC:-50} ROUNDS=${ROUNDS:-1}
ROUND=0
BASE=${BASE_PORT:-18200}
WORK=${BENCH_WORK:-/tmp/lanner-bench-run}
ENVS=${BENCH_ENVS:-/tmp/lanner-bench-envs}
LANNER=${LANNER:-$ROOT/.venv/bin/lanner}
OUT=${1:-$WORK/results.md}
IDLE_TUNNELS=1000

ORIGIN_PORT=$BASE
LANNER_PORT=$((BASE + 1))
PPROXY_PORT=$((BASE + 2))
PPROXY_UV_PORT=$((BASE + 3))
PROXYPY_PORT=$((BASE + 4))
SQUID_PORT=$((BASE + 5))


[ -x "$LANNER" ] || die "no lanner at $LANNER (run 'make install' or set LANNER)"
case "$OUT" in /*) ;; *) OUT=$PWD/$OUT ;; esac
mkdir -p "$WORK/www" "$(dirname "$OUT")"
RESULTS=$WORK/results.jsonl
: >"$RESULTS"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# --- tools: Debian packages for the origin, the load and squid; throwaway venvs for the rest ---
need_debs "wrk nginx squid curl" "wrk nginx-light squid curl"
UVLOOP_PIN=$("$ROOT/.venv/bin/python" -c 'import uvloop; print("uvloop==" + uvloop.__version__)' 2>/dev/null || echo uvloop)
venv "$ENVS/peers" 'pproxy==2.7.9' 'proxy.py==2.4.10'  # no uvloop: pproxy as a plain install runs on asyncio
# pproxy 2.7.9 calls asyncio.get_event_loop() after uvloop.install(), which uvloop >= 0.22 refuses.
venv "$ENVS/pproxy-uvloop" 'pproxy==2.7.9' 'uvloop==0.21.0'
venv "$ENVS/load" "$UVLOOP_PIN" py-spy
LOADPY=$ENVS/load/bin/python

ports_free "$BASE" $((BASE + 5))

# --- the origin: nginx, one worker, /small (18 bytes) and /big (100 MB) ---
[ -f "$WORK/www/small" ] || echo "hello-from-origin" >"$WORK/www/small"
[ "$(stat -c %s "$WORK/www/big" 2>/dev/null)" = 100000000 ] || head -c 100000000 /dev/urandom >"$WORK/www/big"
start_origin "$ORIGIN_PORT"

# --- measurements: each appends one JSON line to $RESULTS ---
REPORT_PY=$LOADPY
measure_fwd() { # subject port pid
  wait_quiet
  say "$1: HTTP forward, wrk ${DUR}s"
  local before after
  others_start
  before=$(cpu_ticks "$3")
  ORIGIN=http://127.0.0.1:$ORIGIN_PORT/small timeout $((DUR + 20)) \
    wrk -t2 -c"$CONC" -d"${DUR}s" --latency -s "$BENCH/absolute.lua" "http://127.0.0.1:$2/" >"$WORK/wrk.out" 2>&1
  after=$(cpu_ticks "$3")
  "$LOADPY" "$BENCH/report.py" wrk <"$WORK/wrk.out" |
    record "$1" fwd seconds="$DUR" proxy_cpu_ticks=$((after - before)) others_cpu_ticks="$(others_since)"
}
measure_direct_fwd() {
  wait_quiet
  say "direct: wrk ${DUR}s"
  others_start
  timeout $((DUR + 20)) wrk -t2 -c"$CONC" -d"${DUR}s" --latency "http://127.0.0.1:$ORIGIN_PORT/small" >"$WORK/wrk.out" 2>&1
  "$LOADPY" "$BENCH/report.py" wrk <"$WORK/wrk.out" | record direct fwd seconds="$DUR" others_cpu_ticks="$(others_since)"
}
measure_bulk() { # subject metric curl-args... : median of 3 downloads of /big
  wait_quiet
  say "$1: $2"
  local subject=$1 metric=$2 runs=() i; shift 2
  for i in 1 2 3; do
    runs+=("$(timeout 120 curl -s -o /dev/null -w '%{speed_download}:%{size_download}:%{http_code}' "$@" \
      "http://127.0.0.1:$ORIGIN_PORT/big")")
  done
  "$LOADPY" "$BENCH/report.py" bulk "${runs[@]}" | record "$subject" "$metric"
}
measure_new() { # subject connect|socks5|direct port [pid]
  wait_quiet
  say "$1: new $2 tunnels, ${DUR}s"
  local metric=new_$2 before after
  [ "$2" = direct ] && metric=new_connect
  others_start
  before=$(cpu_ticks "${4:-0}")
  timeout $((DUR + 30)) "$LOADPY" "$BENCH/new_tunnels.py" "$2" "$3" "$ORIGIN_PORT" "$CONC" "$DUR" >"$WORK/new.out" 2>&1
  after=$(cpu_ticks "${4:-0}")
  local extra=(others_cpu_ticks="$(others_since)")
  [ -n "${4:-}" ] && extra+=(proxy_cpu_ticks=$((after - before)))
  record "$1" "$metric" "${extra[@]}" <"$WORK/new.out"
}
measure_idle() { # subject connect|socks5 port command... : on a fresh process
  local subject=$1 mode=$2 port=$3; shift 3
  say "$subject: RSS per idle $mode tunnel ($IDLE_TUNNELS open)"
  start "$WORK/$subject-idle-$mode.log" "$@"
  local pid=$PID
  if wait_port "$port" "$pid"; then
    timeout 120 "$LOADPY" "$BENCH/idle_tunnels.py" "$mode" "$port" "$ORIGIN_PORT" "$IDLE_TUNNELS" "$pid" 2>&1 |
      record "$subject" "idle_$mode"
  else
    echo '{"unavailable": "did not start"}' | record "$subject" "idle_$mode"
  fi
  stop "$pid"
}
suite() { # subject port socks5(yes|no) command... : every column for one proxy
  local subject=$1 port=$2 socks=$3; shift 3
  start "$WORK/$subject.log" "$@"
  local pid=$PID
  if wait_port "$port" "$pid"; then
    measure_fwd "$subject" "$port" "$pid"
    measure_bulk "$subject" bulk_connect -p -x "http://127.0.0.1:$port"
    [ "$socks" = yes ] && measure_bulk "$subject" bulk_socks5 --socks5 "127.0.0.1:$port"
    measure_new "$subject" connect "$port" "$pid"
    [ "$socks" = yes ] && measure_new "$subject" socks5 "$port" "$pid"
  else
    echo '{"unavailable": "did not start"}' | record "$subject" fwd
  fi
  stop "$pid"
  [ "$ROUND" = 1 ] || return 0  # memory per tunnel does not drift with the machine's load: once
  measure_idle "$subject" connect "$port" "$@"
  [ "$socks" = yes ] && measure_idle "$subject" socks5 "$port" "$@"
  return 0
}

# --- lanner configs ---
cat >"$WORK/lanner.yaml" <<EOF
listeners:
  - name: bench
    bind: 127.0.0.1:$LANNER_PORT
EOF
cat >"$WORK/lanner-nolog.yaml" <<EOF
listeners:
  - name: bench
    bind: 127.0.0.1:$LANNER_PORT
log:
  connections: false
EOF
cat >"$WORK/squid.conf" <<EOF
http_port 127.0.0.1:$SQUID_PORT
http_access allow all
cache deny all
access_log none
cache_log $WORK/squid-cache.log
pid_filename none
coredump_dir $WORK
max_filedescriptors 65536
shutdown_lifetime 0 seconds
pinger_enable off
EOF

# --- the run ---
begin_run
for ROUND in $(seq "$ROUNDS"); do
  [ "$ROUNDS" -gt 1 ] && say "round $ROUND of $ROUNDS"
  measure_direct_fwd
  measure_bulk direct bulk_connect
  measure_new direct direct 0

  suite lanner "$LANNER_PORT" yes "$LANNER" run -c "$WORK/lanner.yaml"

  start "$WORK/lanner-nolog.log" "$LANNER" run -c "$WORK/lanner-nolog.yaml"
  if wait_port "$LANNER_PORT" "$PID"; then
    measure_fwd lanner-nolog "$LANNER_PORT" "$PID"
    measure_new lanner-nolog connect "$LANNER_PORT" "$PID"
    measure_new lanner-nolog socks5 "$LANNER_PORT" "$PID"
  fi
  stop "$PID"

  start "$WORK/lanner-w2.log" "$LANNER" run -c "$WORK/lanner.yaml" --workers 2
  if wait_port "$LANNER_PORT" "$PID"; then
    sleep 0.5  # the second worker binds 20 ms after the first
    measure_fwd lanner-w2 "$LANNER_PORT" "$PID"
  fi
  stop "$PID"

  if [ "${PROFILE:-0}" = 1 ] && [ "$ROUND" = 1 ]; then
    start "$WORK/lanner-profile.log" "$LANNER" run -c "$WORK/lanner.yaml"
    if wait_port "$LANNER_PORT" "$PID"; then
      for what in fwd new_connect; do
        say "profiling lanner under $what (py-spy, not a measurement)"
        "$ENVS/load/bin/py-spy" record --pid "$PID" --duration "$DUR" --rate 200 --format raw \
          --output "$WORK/profile-$what.txt" >"$WORK/profile-$what.log" 2>&1 &
        spy=$!
        sleep 0.5
        if [ $what = fwd ]; then
          ORIGIN=http://127.0.0.1:$ORIGIN_PORT/small timeout $((DUR + 20)) \
            wrk -t2 -c"$CONC" -d"${DUR}s" -s "$BENCH/absolute.lua" "http://127.0.0.1:$LANNER_PORT/" >/dev/null 2>&1
        else
          timeout $((DUR + 30)) "$LOADPY" "$BENCH/new_tunnels.py" connect "$LANNER_PORT" "$ORIGIN_PORT" "$CONC" "$DUR" >/dev/null 2>&1
        fi
        wait $spy
      done
    fi
    stop "$PID"
  fi

  suite pproxy "$PPROXY_PORT" yes "$ENVS/peers/bin/pproxy" -l "http+socks4+socks5://127.0.0.1:$PPROXY_PORT"
  suite pproxy-uvloop "$PPROXY_UV_PORT" yes "$ENVS/pproxy-uvloop/bin/pproxy" -l "http+socks4+socks5://127.0.0.1:$PPROXY_UV_PORT"
  suite proxy.py "$PROXYPY_PORT" no "$ENVS/peers/bin/proxy" --hostname 127.0.0.1 --port "$PROXYPY_PORT"
  suite squid "$SQUID_PORT" no squid -N -f "$WORK/squid.conf"
done

# --- the report ---
export BENCH_DATE BENCH_MACHINE
BENCH_DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
BENCH_MACHINE="$(nproc) cores ($cpu), $(uname -m), Linux $(uname -r), $("$ROOT/.venv/bin/python" --version) for lanner"
BENCH_MACHINE+=", lanner $("$LANNER" --version 2>&1 | awk '{print $NF}') at $LANNER_REV"
BENCH_MACHINE+=", $(nginx -v 2>&1 | sed 's/.*: //'), $(squid -v | head -1 | sed 's/.*Version /squid /'), $(wrk -v 2>&1 | head -1 | awk '{print $1, $2}')"
"$LOADPY" "$BENCH/report.py" render "$RESULTS" "$OUT"
say "wrote $OUT (raw results: $RESULTS)"
