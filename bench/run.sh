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

say() { echo "bench: $*" >&2; }
die() { say "$*"; exit 1; }

[ -x "$LANNER" ] || die "no lanner at $LANNER (run 'make install' or set LANNER)"
case "$OUT" in /*) ;; *) OUT=$PWD/$OUT ;; esac
mkdir -p "$WORK/www" "$(dirname "$OUT")"
RESULTS=$WORK/results.jsonl
: >"$RESULTS"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# --- tools: Debian packages for the origin, the load and squid; throwaway venvs for the rest ---
export PATH=$PATH:/usr/sbin
missing=()
for tool in wrk nginx squid curl; do command -v $tool >/dev/null || missing+=($tool); done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages for: ${missing[*]}"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx-light squid curl; } >"$WORK/apt.log" 2>&1 ||
    die "apt-get failed, see $WORK/apt.log"
fi
UVLOOP_PIN=$("$ROOT/.venv/bin/python" -c 'import uvloop; print("uvloop==" + uvloop.__version__)' 2>/dev/null || echo uvloop)
venv() { # dir packages... : create once, reuse after
  local dir=$1; shift
  [ -f "$dir/.done" ] && return 0
  say "creating $dir ($*)"
  rm -rf "$dir" && python3 -m venv "$dir" && "$dir/bin/pip" install -q "$@" >"$dir.log" 2>&1 && touch "$dir/.done" ||
    die "pip install $* failed, see $dir.log"
}
venv "$ENVS/peers" 'pproxy==2.7.9' 'proxy.py==2.4.10'  # no uvloop: pproxy as a plain install runs on asyncio
# pproxy 2.7.9 calls asyncio.get_event_loop() after uvloop.install(), which uvloop >= 0.22 refuses.
venv "$ENVS/pproxy-uvloop" 'pproxy==2.7.9' 'uvloop==0.21.0'
venv "$ENVS/load" "$UVLOOP_PIN" py-spy
LOADPY=$ENVS/load/bin/python

# --- processes: each server in its own process group, all stopped on exit ---
SERVERS=()
start() { # log command... ; sets PID (also the process group id)
  local log=$1; shift
  setsid "$@" >"$log" 2>&1 &
  PID=$!
  SERVERS+=("$PID")
}
stop() { # pid: TERM the group, wait up to 5 s, then KILL what is left
  local pid=$1 i
  kill -TERM -- "-$pid" 2>/dev/null || return 0
  for i in $(seq 50); do kill -0 -- "-$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL -- "-$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  return 0
}
cleanup() { for pid in "${SERVERS[@]}"; do stop "$pid"; done; }
trap cleanup EXIT
trap 'exit 130' INT TERM
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() { # port pid
  local i
  for i in $(seq 100); do
    port_open "$1" && return 0
    kill -0 "$2" 2>/dev/null || { say "process $2 for port $1 exited"; return 1; }
    sleep 0.1
  done
  say "port $1 never opened"; return 1
}
for port in $(seq "$BASE" $((BASE + 5))); do port_open "$port" && die "port $port is already in use (set BASE_PORT)"; done

# --- the origin: nginx, one worker, /small (18 bytes) and /big (100 MB) ---
[ -f "$WORK/www/small" ] || echo "hello-from-origin" >"$WORK/www/small"
[ "$(stat -c %s "$WORK/www/big" 2>/dev/null)" = 100000000 ] || head -c 100000000 /dev/urandom >"$WORK/www/big"
cat >"$WORK/origin.conf" <<EOF
worker_processes 1;
worker_rlimit_nofile 65536;
daemon off;
pid $WORK/origin.pid;
error_log $WORK/origin.err;
events { worker_connections 16384; }
http {
  access_log off;
  sendfile on;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$ORIGIN_PORT backlog=4096; root $WORK/www; }
}
EOF
start "$WORK/origin.log" nginx -c "$WORK/origin.conf"
wait_port "$ORIGIN_PORT" "$PID" || die "origin nginx did not start, see $WORK/origin.err"

# --- measurements: each appends one JSON line to $RESULTS ---
record() { "$LOADPY" "$BENCH/report.py" tag "$@" round="$ROUND" >>"$RESULTS"; }  # subject metric [key=value...] < json
cpu_ticks() { "$LOADPY" "$BENCH/report.py" cputicks "$1"; }
# CPU used by processes outside this script's tree (someone else's tests, a build) during a measurement
others_start() { "$LOADPY" "$BENCH/report.py" others $$ >"$WORK/others.json"; }
others_since() { "$LOADPY" "$BENCH/report.py" others $$ "$WORK/others.json"; }
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

# the code measured: taken now, as the tree may change while the run goes on
LANNER_REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')
LANNER_REV+=$(git -C "$ROOT" diff --quiet HEAD -- src 2>/dev/null || echo ' (src modified)')

# --- the run: first, is anything else using the CPU? (the figures would be lower and noisier) ---
busy_pct() { # machine-wide CPU busy % over 1 s
  local a b i total=0
  a=($(head -1 /proc/stat)); sleep 1; b=($(head -1 /proc/stat))
  local idle=$(( (b[4] + b[5]) - (a[4] + a[5]) ))
  for i in 1 2 3 4 5 6 7 8; do total=$((total + b[i] - a[i])); done
  echo $(( 100 - 100 * idle / (total > 0 ? total : 1) ))
}
wait_quiet() { # with QUIET_WAIT=N: wait up to N s for the machine to be under 10% busy
  [ "${QUIET_WAIT:-0}" -gt 0 ] || return 0
  local waited=0 busy
  busy=$(busy_pct)
  while [ "$busy" -gt 10 ] && [ "$waited" -lt "$QUIET_WAIT" ]; do
    [ "$waited" = 0 ] && say "machine ${busy}% busy; waiting up to ${QUIET_WAIT}s for it to quieten"
    sleep 2; waited=$((waited + 3)); busy=$(busy_pct)
  done
}
wait_quiet
export BENCH_BUSY
BENCH_BUSY=$(busy_pct)
[ "$BENCH_BUSY" -gt 10 ] && say "warning: the machine is ${BENCH_BUSY}% busy before the run; figures will be low and noisy"
BENCH_BUSY="$BENCH_BUSY%"
say "results: $RESULTS, logs: $WORK"
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
