#!/usr/bin/env bash
# Reverse proxy: small keep-alive GETs (wrk, origin-form, no proxy awareness in the client)
# through a reverse proxy in front of a local nginx origin, in one run, for
#   direct      wrk straight to the origin (no proxy)
#   nginx       nginx (Debian) proxy_pass to an upstream block: worker_processes 1, keepalive 64,
#               proxy_http_version 1.1, Connection "", access_log off
#   haproxy     HAProxy (Debian): nbthread 1, mode http, http-reuse always
#   mitmdump    mitmproxy's mitmdump --mode reverse:http://127.0.0.1:ORIGIN -q (no flow file)
#   lanner      lanner, one worker, a `type: reverse` listener and one pool, recording off
#   lanner-rec  the same with recording on, a fresh data_dir (information, not a target)
# and, with two wrk threads (the pair the --workers 2 target compares, plus references):
#   direct, nginx (1 worker), nginx-w2 (worker_processes 2), lanner, lanner-w2 (--workers 2).
# nginx and HAProxy set what lanner sets on each request for an untrusted client (its default):
# X-Forwarded-For, X-Forwarded-Proto, X-Forwarded-Host, Forwarded, X-Real-IP (any the client sent
# replaced) and a new X-Request-Id; mitmdump adds none (it has no option for it). The origin serves
# /small, a 100-byte file.
# Every target is checked with curl (200 and the file's bytes) before it is measured, gets
# WARMUP seconds of wrk that are not counted, then one counted wrk run. A target whose wrk run
# saw socket errors or non-2xx/3xx responses is reported as failed and the run exits 1.
# Nothing is pinned by default: on a small machine wrk, the origin and the proxy compete for the
# cores, and the report gives the CPU each used (LOAD_CPUS pins wrk with taskset instead).
# Until lanner accepts the reverse config (`lanner config check`), the lanner targets are
# skipped, loudly, and the run exits 3.
#
#   bench/reverse.sh [OUT.md]      default OUT: $BENCH_WORK/reverse.md
#
# env: DUR=10 (seconds per counted wrk run), CONC=50 (wrk connections), WARMUP=2 (seconds of
# uncounted wrk before each counted run), MITM_DUR=5 and MITM_CONC=$CONC (mitmdump's counted
# run: it does about 0.4k req/s), ROUNDS=3 (passes over every target in turn; the report gives
# each rate's median and range), BASE_PORT=18500 (origin; targets on the next seven ports),
# LOAD_CPUS= (a taskset CPU list for wrk; default: nothing is pinned), LANNER=.venv/bin/lanner,
# BENCH_WORK=/tmp/lanner-reverse-run, BENCH_ENVS=/tmp/lanner-bench-envs (throwaway venvs),
# MITMPROXY=mitmproxy==11.0.2 (the pip requirement of the mitmproxy venv, made once and reused),
# QUIET_WAIT=SECONDS (before each measurement, wait up to that long for the machine to be under
# 10% busy), KEEP_DATA=1 (keep each recording-on run's data_dir).
set -u
BENCH=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/common.sh
. "$BENCH/common.sh"
ROOT=$(dirname "$BENCH")
export DUR=${DUR:-10} CONC=${CONC:-50} WARMUP=${WARMUP:-2} ROUNDS=${ROUNDS:-3}
export MITM_DUR=${MITM_DUR:-5} MITM_CONC=${MITM_CONC:-$CONC} LOAD_CPUS=${LOAD_CPUS:-}
ROUND=0
BASE=${BASE_PORT:-18500}
WORK=${BENCH_WORK:-/tmp/lanner-reverse-run}
ENVS=${BENCH_ENVS:-/tmp/lanner-bench-envs}
LANNER=${LANNER:-$ROOT/.venv/bin/lanner}
PY=$ROOT/.venv/bin/python  # report.py and reverse_report.py need only the standard library
OUT=${1:-$WORK/reverse.md}
MITMPROXY=${MITMPROXY:-mitmproxy==11.0.2}
BODY_BYTES=100

ORIGIN_PORT=$BASE
NGINX_PORT=$((BASE + 1))
HAPROXY_PORT=$((BASE + 2))
MITM_PORT=$((BASE + 3))
LANNER_PORT=$((BASE + 4))
LANNER_REC_PORT=$((BASE + 5))
LANNER_W2_PORT=$((BASE + 6))
NGINX_W2_PORT=$((BASE + 7))

[ -x "$LANNER" ] || die "no lanner at $LANNER (run 'make install' or set LANNER)"
[ -x "$PY" ] || die "no python at $PY"
case "$OUT" in /*) ;; *) OUT=$PWD/$OUT ;; esac
mkdir -p "$WORK/www" "$(dirname "$OUT")"
RESULTS=$WORK/reverse.jsonl
: >"$RESULTS"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

loud() { # a message that must not scroll by unnoticed
  say "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
  local line
  for line in "$@"; do say "!!! $line"; done
  say "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
}

# --- tools: Debian packages for the origin, the peers and the load; a throwaway venv for mitmproxy ---
need_debs "wrk nginx haproxy curl" "wrk nginx-light haproxy curl"
# a venv per requirement: record.sh and intercept.sh share an unpinned $ENVS/mitmproxy
MITM_ENV=$ENVS/$(echo "$MITMPROXY" | sed 's/[^A-Za-z0-9.]\{1,\}/-/g')
venv "$MITM_ENV" "$MITMPROXY"
MITMDUMP=$MITM_ENV/bin/mitmdump
export MITM_VERSION NGINX_VERSION HAPROXY_VERSION
MITM_VERSION=$("$MITMDUMP" --version 2>/dev/null | sed -n 's/^Mitmproxy: //p')
NGINX_VERSION=$(nginx -v 2>&1 | sed 's/.*nginx\///')
HAPROXY_VERSION=$(haproxy -v 2>/dev/null | awk 'NR == 1 {print $3}')
WRK=(wrk)
if [ -n "$LOAD_CPUS" ]; then
  command -v taskset >/dev/null || die "LOAD_CPUS needs taskset (util-linux)"
  WRK=(taskset -c "$LOAD_CPUS" wrk)
fi

ports_free "$BASE" $((BASE + 7))

# --- the origin: nginx, one worker, /small (100 bytes) ---
head -c "$BODY_BYTES" /dev/zero | tr '\0' 'x' >"$WORK/www/small"
start_origin "$ORIGIN_PORT"
ORIGIN_PID=$PID

# --- the peers' configs ---
nginx_config() { # file port workers
  local name reuseport=
  name=$(basename "$1" .conf)
  [ "$3" -gt 1 ] && reuseport=" reuseport"  # a socket per worker, as lanner's workers have (SO_REUSEPORT)
  mkdir -p "$WORK/$name-temp"
  cat >"$1" <<EOF
worker_processes $3;
worker_rlimit_nofile 65536;
daemon off;
pid $WORK/$name.pid;
error_log $WORK/$name.err;
events { worker_connections 16384; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path $WORK/$name-temp/body;
  proxy_temp_path $WORK/$name-temp/proxy;
  upstream origin {
    server 127.0.0.1:$ORIGIN_PORT;
    keepalive 64;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:$2 backlog=4096$reuseport;
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$http_host;
      proxy_set_header X-Forwarded-For \$remote_addr;
      proxy_set_header X-Forwarded-Proto \$scheme;
      proxy_set_header X-Forwarded-Host \$http_host;
      proxy_set_header Forwarded "for=\$remote_addr;proto=\$scheme;host=\\"\$http_host\\"";
      proxy_set_header X-Real-IP \$remote_addr;
      proxy_set_header X-Request-Id \$request_id;
    }
  }
}
EOF
}
nginx_config "$WORK/nginx-proxy.conf" "$NGINX_PORT" 1
nginx_config "$WORK/nginx-proxy-w2.conf" "$NGINX_W2_PORT" 2
cat >"$WORK/haproxy.cfg" <<EOF
global
  nbthread 1
  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  http-reuse always
frontend reverse
  bind 127.0.0.1:$HAPROXY_PORT
  unique-id-format %[uuid()]
  unique-id-header X-Request-Id
  http-request set-header X-Forwarded-For %[src]
  http-request set-header X-Forwarded-Proto http
  http-request set-header X-Forwarded-Host %[req.hdr(host)]
  http-request set-header Forwarded "for=%[src];proto=http;host=\\"%[req.hdr(host)]\\""
  http-request set-header X-Real-IP %[src]
  default_backend origin
backend origin
  server origin 127.0.0.1:$ORIGIN_PORT
EOF
nginx -t -c "$WORK/nginx-proxy.conf" >"$WORK/nginx-proxy.check" 2>&1 ||
  die "nginx refused $WORK/nginx-proxy.conf: $(cat "$WORK/nginx-proxy.check")"
haproxy -c -f "$WORK/haproxy.cfg" >"$WORK/haproxy.check" 2>&1 ||
  die "haproxy refused $WORK/haproxy.cfg: $(cat "$WORK/haproxy.check")"

# --- lanner configs, checked before anything is measured; refused: the lanner targets are skipped ---
lanner_config() { # file port data_dir recording(true|false)
  cat >"$1" <<EOF
data_dir: $3
record: {enabled: $4}
log: {connections: false, level: warning}
listeners:
  - name: api
    type: reverse
    bind: 127.0.0.1:$2
    routes:
      - pool: origin
pools:
  - name: origin
    backends:
      - address: 127.0.0.1:$ORIGIN_PORT
EOF
}
lanner_config "$WORK/lanner.yaml" "$LANNER_PORT" "$WORK/lanner-data" false
lanner_config "$WORK/lanner-w2.yaml" "$LANNER_W2_PORT" "$WORK/lanner-data" false
lanner_config "$WORK/lanner-rec.yaml" "$LANNER_REC_PORT" "$WORK/data-check" true
export BENCH_LANNER_SKIPPED=  # not LANNER_...: lanner reads those as config overrides
for config in lanner lanner-rec; do
  if ! "$LANNER" config check "$WORK/$config.yaml" >"$WORK/$config.check" 2>&1; then
    BENCH_LANNER_SKIPPED="lanner config check refused $WORK/$config.yaml: $(tr '\n' ' ' <"$WORK/$config.check")"
    break
  fi
done
if [ -n "$BENCH_LANNER_SKIPPED" ]; then
  loud "LANNER IS NOT MEASURED IN THIS RUN: its reverse-proxy config was refused." \
    "$BENCH_LANNER_SKIPPED" "Only the peers run; the report has no lanner figure and the run exits 3."
fi

# --- measurements: each appends one JSON line to $RESULTS ---
REPORT_PY=$PY
check() { # subject port: one GET through the target must give 200 and the file's bytes
  local code
  code=$(curl -s -m 10 -o "$WORK/check-$1.body" -w '%{http_code}' "http://127.0.0.1:$2/small")
  [ "$code" = 200 ] && cmp -s "$WORK/check-$1.body" "$WORK/www/small" && return 0
  loud "$1: GET /small through port $2 gave HTTP $code and $(stat -c %s "$WORK/check-$1.body" 2>/dev/null || echo 0) bytes" \
    "(want 200 and the $BODY_BYTES-byte file): not measured"
  CHECK_FAILED="GET /small gave HTTP $code, not 200 with the file"
  return 1
}
measure() { # subject threads seconds conns port pid: warm-up, then one counted wrk run, recorded
  local subject=$1 threads=$2 dur=$3 conc=$4 port=$5 pid=$6
  local url=http://127.0.0.1:$port/small out=$WORK/wrk-$1-t$2-round$ROUND.out
  local proxy=() o0 o1 warm=0 cpu others
  if [ "$WARMUP" -gt 0 ]; then
    timeout $((WARMUP + 20)) "${WRK[@]}" -t"$threads" -c"$conc" -d"${WARMUP}s" "$url" >"$out.warmup" 2>&1
    warm=$(awk '/requests in/ {print $1}' "$out.warmup")
  fi
  wait_quiet
  say "round $ROUND: $subject: wrk -t$threads -c$conc -d${dur}s${LOAD_CPUS:+ (wrk on CPUs $LOAD_CPUS)}"
  others_start
  [ "$pid" = 0 ] || "$PY" "$BENCH/reverse_report.py" ticks "$pid" >"$WORK/ticks.json"
  o0=$(cpu_ticks "$ORIGIN_PID")
  local TIMEFORMAT='%U %S'  # bash's `time`: wrk's user and system CPU seconds
  { time timeout $((dur + 20)) "${WRK[@]}" -t"$threads" -c"$conc" -d"${dur}s" --latency "$url" >"$out" 2>&1; } 2>"$out.time"
  [ "$pid" = 0 ] || read -ra proxy < <("$PY" "$BENCH/reverse_report.py" cpu "$pid" "$WORK/ticks.json")
  o1=$(cpu_ticks "$ORIGIN_PID")
  others=$(others_since)
  cpu=$(awk '{print $1 + $2}' "$out.time")
  local extra=(seconds="$dur" conns="$conc" threads="$threads" origin_cpu_ticks=$((o1 - o0)) wrk_cpu_s="$cpu"
    others_cpu_ticks="$others" warmup_requests="${warm:-0}")
  # the proxy's whole process tree, and its busiest process (is the load spread over the workers?)
  [ "$pid" = 0 ] || extra+=(proxy_cpu_ticks="${proxy[0]:-}" busiest_cpu_ticks="${proxy[1]:-}")
  "$PY" "$BENCH/reverse_report.py" wrk <"$out" | record "$subject" "t$threads" "${extra[@]}"
  if grep -qE 'Non-2xx|Socket errors' "$out" || ! grep -q '^Requests/sec:' "$out"; then
    loud "$subject (wrk -t$threads): ERRORS, this figure will not count:" \
      "$({ grep -E 'Non-2xx|Socket errors|requests in' "$out" || head -c 300 "$out"; } | tr -s ' ')" "wrk output: $out"
  fi
}
failed() { # subject threads why
  echo "{\"unavailable\": \"$3\"}" | record "$1" "t$2"
}
log_problems() { # log: error-ish lines kept apart; their count on stdout
  grep -iE 'error|traceback|exception|warn|alert|emerg' "$1" >"${1%.log}.problems"
  wc -l <"${1%.log}.problems"
}
suite() { # subject threads seconds conns port command...: start, check, measure, stop
  local subject=$1 threads=$2 dur=$3 conc=$4 port=$5; shift 5
  local log=$WORK/$subject-t$threads-round$ROUND.log pid
  start "$log" "$@"
  pid=$PID
  CHECK_FAILED=
  if ! wait_port "$port" "$pid" 150; then
    loud "$subject did not start, see $log"
    failed "$subject" "$threads" "did not start"
  else
    case "$subject" in *-w2) sleep 0.5 ;; esac  # the second worker binds a little after the first
    if check "$subject" "$port"; then
      measure "$subject" "$threads" "$dur" "$conc" "$port" "$pid"
    else
      say "$subject's log: $log"
      failed "$subject" "$threads" "$CHECK_FAILED"
    fi
  fi
  stop "$pid" "${STOP_WAIT:-5}"
  echo "{\"log_problems\": $(log_problems "$log")}" | record "$subject" "log-t$threads"
}
direct() { # threads
  CHECK_FAILED=
  if check direct "$ORIGIN_PORT"; then
    measure direct "$1" "$DUR" "$CONC" "$ORIGIN_PORT" 0
  else
    failed direct "$1" "$CHECK_FAILED"
  fi
}
lanner_suite() { # subject threads port config [lanner run options...]
  local subject=$1 threads=$2 port=$3 config=$4; shift 4
  if [ -n "$BENCH_LANNER_SKIPPED" ]; then
    say "round $ROUND: $subject: SKIPPED (lanner refused the reverse config; see above)"
    return 0
  fi
  suite "$subject" "$threads" "$DUR" "$CONC" "$port" "$LANNER" run -c "$config" "$@"
}
lanner_rec() { # recording on: a fresh data_dir, then what reached the store
  if [ -n "$BENCH_LANNER_SKIPPED" ]; then
    say "round $ROUND: lanner-rec: SKIPPED (lanner refused the reverse config; see above)"
    return 0
  fi
  local data count
  data=$(mktemp -d "$WORK/data-rec-round$ROUND.XXXX")
  lanner_config "$WORK/lanner-rec.yaml" "$LANNER_REC_PORT" "$data" true
  STOP_WAIT=30 suite lanner-rec 1 "$DUR" "$CONC" "$LANNER_REC_PORT" "$LANNER" run -c "$WORK/lanner-rec.yaml"
  "$LANNER" flows --db "$data/lanner.db" stats >"$WORK/lanner-rec-round$ROUND.stats" 2>&1
  count=$(awk '$1 == "flows" {print $2; exit}' "$WORK/lanner-rec-round$ROUND.stats")
  echo "{\"flows_stored\": ${count:-null}}" | record lanner-rec store
  [ "${KEEP_DATA:-0}" = 1 ] || rm -rf "$data"
}

# --- the run ---
touch "$WORK/run.stamp"  # a source newer than this at the end: lanner changed during the run
START_HEAD=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)
begin_run
for ROUND in $(seq "$ROUNDS"); do
  say "round $ROUND of $ROUNDS"
  # one worker each, one wrk thread
  direct 1
  suite nginx 1 "$DUR" "$CONC" "$NGINX_PORT" nginx -c "$WORK/nginx-proxy.conf"
  suite haproxy 1 "$DUR" "$CONC" "$HAPROXY_PORT" haproxy -db -f "$WORK/haproxy.cfg"
  suite mitmdump 1 "$MITM_DUR" "$MITM_CONC" "$MITM_PORT" "$MITMDUMP" --mode "reverse:http://127.0.0.1:$ORIGIN_PORT" \
    --listen-host 127.0.0.1 -p "$MITM_PORT" -q --set confdir="$WORK/mitmproxy-conf"
  lanner_suite lanner 1 "$LANNER_PORT" "$WORK/lanner.yaml"
  lanner_rec
  # two wrk threads: lanner --workers 2 against one worker, and the same for nginx as a reference
  direct 2
  suite nginx 2 "$DUR" "$CONC" "$NGINX_PORT" nginx -c "$WORK/nginx-proxy.conf"
  suite nginx-w2 2 "$DUR" "$CONC" "$NGINX_W2_PORT" nginx -c "$WORK/nginx-proxy-w2.conf"
  lanner_suite lanner 2 "$LANNER_PORT" "$WORK/lanner.yaml"
  lanner_suite lanner-w2 2 "$LANNER_W2_PORT" "$WORK/lanner-w2.yaml" --workers 2
done

# --- the report ---
export BENCH_DATE BENCH_MACHINE BENCH_SRC_CHANGED
BENCH_SRC_CHANGED=$(find "$ROOT/src" -type f -name "*.py" -newer "$WORK/run.stamp" -printf '%P ' 2>/dev/null | head -c 400)
END_HEAD=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)
[ "$START_HEAD" = "$END_HEAD" ] || BENCH_SRC_CHANGED="HEAD $START_HEAD -> $END_HEAD; $BENCH_SRC_CHANGED"
[ -n "$BENCH_SRC_CHANGED" ] &&
  loud "lanner's code changed during the run, its rounds may have measured different code:" "$BENCH_SRC_CHANGED"
BENCH_DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
BENCH_MACHINE="$(nproc) cores ($cpu), Linux $(uname -r), $("$PY" --version) for lanner"
BENCH_MACHINE+=", lanner $("$LANNER" --version 2>&1 | awk '{print $NF}') at $LANNER_REV"
BENCH_MACHINE+=", nginx $NGINX_VERSION, HAProxy $HAPROXY_VERSION"
BENCH_MACHINE+=", mitmproxy $MITM_VERSION ($("$MITM_ENV/bin/python" --version))"
BENCH_MACHINE+=", $(wrk -v 2>&1 | head -1 | awk '{print $1, $2}')"
"$PY" "$BENCH/reverse_report.py" render "$RESULTS" "$OUT"
status=$?
say "wrote $OUT (raw results: $RESULTS, logs and wrk outputs: $WORK)"
if [ -n "$BENCH_LANNER_SKIPPED" ]; then
  loud "LANNER WAS NOT MEASURED: its reverse-proxy config was refused; only the peers ran." "$BENCH_LANNER_SKIPPED"
  exit 3
fi
[ "$status" = 0 ] || loud "some targets failed or returned errors: see $OUT"
exit "$status"
