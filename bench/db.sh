#!/usr/bin/env bash
# Redis and PostgreSQL through lanner's tcp listeners, in one run, against the machine's own
# redis-server (127.0.0.1:6379) and PostgreSQL (127.0.0.1:5432, trust auth), in three modes:
#   direct     the clients straight to the servers
#   none       lanner, two `type: tcp` listeners with `analyze: none` (connection records only)
#   analyzed   the same listeners with `analyze: redis` / `analyze: postgres`: every command and
#              statement analyzed and recorded into a fresh store (the default SQLite store)
# Tests in each mode: redis-benchmark SET then GET (-c 50, -n REDIS_N), the same pipelined
# (-P 16, -n REDIS_PN), pgbench -S (select-only) with -M simple and -M extended (-c 10 -j 2
# -T DUR). In the analyzed mode, after each test the script waits for the store writer to catch
# up and counts the test's flows against what the clients sent; at the end it stops lanner with
# SIGINT, counts the store again and reads lanner's log for dropped or unwritten records.
#
#   bench/db.sh [OUT.md]      default OUT: $BENCH_WORK/db.md
#
# env: DUR=15 (seconds per pgbench run), ROUNDS=1 (passes over the three modes in turn; the
# report gives medians and ranges), REDIS_N=200000 (requests per non-pipelined redis-benchmark
# test), REDIS_PN=5*REDIS_N (per pipelined test), PIPELINE=16, REDIS_CONC=50, PG_CONC=10,
# PG_THREADS=2, BASE_PORT=18700 (lanner's Redis listener; PostgreSQL on the next port),
# REDIS_PORT=6379, PG_PORT=5432, PG_USER (default: root if it can log in, else postgres),
# PG_DB=lanner_bench (created if missing; `pgbench -i -s 1` at every run), MODES="direct none
# analyzed" (a subset to run), ANALYZE_REDIS=redis and ANALYZE_PG=postgres (the analyzed mode's
# `analyze:` values), DRAIN_MAX=120 (seconds to wait for the writer after a test),
# REDIS_TIMEOUT=300 (seconds one redis-benchmark run may take), LANNER=.venv/bin/lanner,
# BENCH_WORK=/tmp/lanner-db-run, QUIET_WAIT=SECONDS (before each test, wait up to that long for
# the machine to be under 10% busy), KEEP_DATA=1 (keep each lanner run's data_dir).
# redis-benchmark writes one key, `key:__rand_int__`, in database 0; it is deleted at the end
# when it was not there before. Exit status 1 when a target was missed, a test failed, a mode did
# not run, or flows went missing.
set -u
BENCH=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/common.sh
. "$BENCH/common.sh"
ROOT=$(dirname "$BENCH")
export DUR=${DUR:-15} ROUNDS=${ROUNDS:-1}
ROUND=0
REDIS_N=${REDIS_N:-200000}
REDIS_PN=${REDIS_PN:-$((REDIS_N * 5))}
PIPELINE=${PIPELINE:-16}
REDIS_CONC=${REDIS_CONC:-50}
PG_CONC=${PG_CONC:-10}
PG_THREADS=${PG_THREADS:-2}
BASE=${BASE_PORT:-18700}
REDIS_LPORT=$BASE
PG_LPORT=$((BASE + 1))
REDIS_PORT=${REDIS_PORT:-6379}
PG_PORT=${PG_PORT:-5432}
PG_DB=${PG_DB:-lanner_bench}
MODES=${MODES:-direct none analyzed}
ANALYZE_REDIS=${ANALYZE_REDIS:-redis}
ANALYZE_PG=${ANALYZE_PG:-postgres}
DRAIN_MAX=${DRAIN_MAX:-120}
REDIS_TIMEOUT=${REDIS_TIMEOUT:-300}
WORK=${BENCH_WORK:-/tmp/lanner-db-run}
LANNER=${LANNER:-$ROOT/.venv/bin/lanner}
PY=$ROOT/.venv/bin/python  # the report scripts need only the standard library
OUT=${1:-$WORK/db.md}

[ -x "$LANNER" ] || die "no lanner at $LANNER (run 'make install' or set LANNER)"
[ -x "$PY" ] || die "no python at $PY"
case "$OUT" in /*) ;; *) OUT=$PWD/$OUT ;; esac
mkdir -p "$WORK" "$(dirname "$OUT")"
RESULTS=$WORK/db.jsonl
: >"$RESULTS"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# --- tools and servers: the clients from Debian if missing; the servers must be running ---
need_debs "redis-benchmark redis-cli pgbench psql" "redis-tools postgresql-client"
ports_free "$REDIS_LPORT" "$PG_LPORT"
redis_cli() { timeout 10 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" "$@"; }
[ "$(redis_cli ping 2>&1)" = PONG ] || die "no Redis answering on 127.0.0.1:$REDIS_PORT"
redis_processed() { redis_cli info stats | sed -n 's/^total_commands_processed:\([0-9]*\).*/\1/p'; }
RAND_KEY_EXISTED=$(redis_cli exists 'key:__rand_int__')

psql_as() { # user database sql...
  local user=$1 db=$2; shift 2
  timeout 60 psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U "$user" -d "$db" -tA "$@"
}
if [ -z "${PG_USER:-}" ]; then
  for PG_USER in root postgres ""; do
    [ -n "$PG_USER" ] && psql_as "$PG_USER" test -c 'SELECT 1' >/dev/null 2>&1 && break
  done
  [ -n "$PG_USER" ] || die "neither root nor postgres can log in to PostgreSQL on 127.0.0.1:$PG_PORT, database test (set PG_USER)"
fi
if [ "$(psql_as "$PG_USER" test -c "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'" 2>&1)" != 1 ]; then
  say "creating database $PG_DB"
  psql_as "$PG_USER" test -c "CREATE DATABASE \"$PG_DB\"" >"$WORK/createdb.log" 2>&1 ||
    die "could not create database $PG_DB: $(cat "$WORK/createdb.log")"
fi
say "pgbench -i -s 1 into $PG_DB (as $PG_USER)"
timeout 300 pgbench -i -s 1 -q -h 127.0.0.1 -p "$PG_PORT" -U "$PG_USER" "$PG_DB" >"$WORK/pgbench-init.log" 2>&1 ||
  die "pgbench -i failed, see $WORK/pgbench-init.log"

tidy() {
  cleanup
  [ "$RAND_KEY_EXISTED" = 0 ] && redis_cli del 'key:__rand_int__' >/dev/null 2>&1
  return 0
}
trap tidy EXIT

# --- lanner configs (checked before anything is measured) ---
lanner_config() { # mode data_dir -> $WORK/lanner-MODE.yaml
  local redis=none pg=none
  [ "$1" = analyzed ] && { redis=$ANALYZE_REDIS; pg=$ANALYZE_PG; }
  cat >"$WORK/lanner-$1.yaml" <<EOF
listeners:
  - name: redis
    type: tcp
    bind: 127.0.0.1:$REDIS_LPORT
    target: 127.0.0.1:$REDIS_PORT
    analyze: $redis
  - name: postgres
    type: tcp
    bind: 127.0.0.1:$PG_LPORT
    target: 127.0.0.1:$PG_PORT
    analyze: $pg
    limits:
      idle_timeout: 3600
data_dir: $2
EOF
}
REPORT_PY=$PY
# CPU of processes outside this script's tree, less the servers under test (they work for the load)
others_start() { "$PY" "$BENCH/db_report.py" others $$ >"$WORK/others.json"; }
others_since() { "$PY" "$BENCH/db_report.py" others $$ "$WORK/others.json"; }
RUN_MODES=()
for mode in $MODES; do
  case $mode in
    direct) RUN_MODES+=(direct) ;;
    none | analyzed)
      lanner_config "$mode" "$WORK/data-check"
      if "$LANNER" config check "$WORK/lanner-$mode.yaml" >"$WORK/lanner-$mode.check" 2>&1; then
        RUN_MODES+=("$mode")
      elif [ "$mode" = none ]; then
        die "lanner config check refused $WORK/lanner-none.yaml: $(cat "$WORK/lanner-none.check")"
      else
        say "lanner refuses the analyzed config, the analyzed mode is skipped: $(tr '\n' ' ' <"$WORK/lanner-$mode.check")"
        echo "{\"unavailable\": $(head -c 300 "$WORK/lanner-$mode.check" | "$PY" -c 'import json, sys; print(json.dumps("lanner config check: " + " ".join(sys.stdin.read().split())))')}" |
          record "$mode" mode
      fi ;;
    *) die "unknown mode $mode (MODES: direct none analyzed)" ;;
  esac
done
rm -rf "$WORK/data-check"

# --- one test: its rate, lanner's CPU, and in the analyzed mode the flows it left ---
TESTS="redis-set redis-get redis-set-p16 redis-get-p16 pg-simple pg-extended"
redis_bench() { # port test requests pipeline
  timeout "$REDIS_TIMEOUT" redis-benchmark -h 127.0.0.1 -p "$1" -t "$2" -q --csv -c "$REDIS_CONC" -n "$3" -P "$4"
}
pg_bench() { # port protocol
  timeout $((DUR + 60)) pgbench -h 127.0.0.1 -p "$1" -U "$PG_USER" -n -S -M "$2" -c "$PG_CONC" -j "$PG_THREADS" \
    -T "$DUR" "$PG_DB"
}
flows_of() { "$PY" "$BENCH/db_report.py" count "$1" "$2"; }  # db listener
FLOWS_redis=0 FLOWS_postgres=0 EXPECTED_redis=0 EXPECTED_postgres=0
# after a test: wait until the listener's count reaches what was expected and holds for 1 s, or
# holds for 5 s, or DRAIN_MAX passes; sets FLOWS (the test's flows) and DRAIN (seconds from the
# test's end to the count's last change: how long the writer took to catch up)
wait_flows() { # db listener expected
  local before now last still=0 t0 changed i target
  t0=$(date +%s.%N)
  changed=$t0
  before=$(eval echo "\$FLOWS_$2")
  target=$((before + $3))
  now=$(flows_of "$1" "$2")
  last=$now
  for i in $(seq "$DRAIN_MAX"); do
    [ "$now" -ge "$target" ] && [ "$still" -ge 1 ] && break
    [ "$still" -ge 5 ] && break
    sleep 1
    now=$(flows_of "$1" "$2")
    if [ "$now" = "$last" ]; then
      still=$((still + 1))
    else
      still=0 changed=$(date +%s.%N) last=$now
    fi
  done
  DRAIN=$(awk -v a="$t0" -v b="$changed" 'BEGIN {printf "%.1f", b - a}')
  FLOWS=$((now - before))
  eval "FLOWS_$2=$now"
}
run_test() { # mode test port lanner_pid db
  local mode=$1 test=$2 port=$3 pid=$4 db=$5 out=$WORK/$1-$2-round$ROUND.out
  local c0=0 c1=0 t0 t1 r0=0 r1=0 kind listener extra=()
  wait_quiet
  case $test in redis-*) kind=redis listener=redis ;; *) kind=pgbench listener=postgres ;; esac
  others_start
  [ "$pid" = 0 ] || c0=$(cpu_ticks "$pid")
  [ "$kind" = redis ] && r0=$(redis_processed)
  t0=$(date +%s.%N)
  case $test in
    redis-set) redis_bench "$port" set "$REDIS_N" 1 ;;
    redis-get) redis_bench "$port" get "$REDIS_N" 1 ;;
    redis-set-p16) redis_bench "$port" set "$REDIS_PN" "$PIPELINE" ;;
    redis-get-p16) redis_bench "$port" get "$REDIS_PN" "$PIPELINE" ;;
    pg-simple) pg_bench "$port" simple ;;
    pg-extended) pg_bench "$port" extended ;;
  esac >"$out" 2>&1
  t1=$(date +%s.%N)
  [ "$pid" = 0 ] || c1=$(cpu_ticks "$pid")
  extra=(seconds="$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}')" others_cpu_ticks="$(others_since)")
  [ "$pid" = 0 ] || extra+=(lanner_cpu_ticks=$((c1 - c0)))
  local expected
  if [ "$kind" = redis ]; then
    r1=$(redis_processed)
    expected=$((r1 - r0 - 1))  # the first INFO is counted in the second
    extra+=(expected="$expected" requested="$([ "${test%-p16}" = "$test" ] && echo "$REDIS_N" || echo "$REDIS_PN")")
  else
    expected=$("$PY" "$BENCH/db_report.py" pgbench <"$out" | "$PY" -c 'import json, sys; print(json.load(sys.stdin).get("expected", 0))')
  fi
  if [ "$mode" = analyzed ]; then
    wait_flows "$db" "$listener" "$expected"
    extra+=(flows="$FLOWS" drain_s="$DRAIN")
    eval "EXPECTED_$listener=\$((EXPECTED_$listener + expected))"
  fi
  "$PY" "$BENCH/db_report.py" "$kind" <"$out" | record "$mode" "$test" "${extra[@]}"
  say "round $ROUND: $mode: $test: $(tail -1 "$RESULTS" | "$PY" "$BENCH/db_report.py" brief)${FLOWS:+, $FLOWS flows of $expected expected}"
}

stop_int() { # pid seconds: SIGINT (a graceful stop: the recorder writes what is queued), wait for exit
  local pid=$1 tenths=$(($2 * 10)) i t0
  t0=$(date +%s.%N)
  kill -INT "$pid" 2>/dev/null
  for i in $(seq "$tenths"); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    say "lanner ($pid) still running ${2}s after SIGINT: stopping it"
    stop "$pid"
  fi
  wait "$pid" 2>/dev/null
  STOP_RC=$?
  STOP_S=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}')
}

mode_run() { # mode
  local mode=$1 test port
  if [ "$mode" = direct ]; then
    for test in $TESTS; do
      case $test in redis-*) port=$REDIS_PORT ;; *) port=$PG_PORT ;; esac
      FLOWS=
      run_test direct "$test" "$port" 0 ""
    done
    return 0
  fi
  local data log pid db dropped lost warnings retained
  data=$(mktemp -d "$WORK/data-$mode-round$ROUND.XXXX")
  db=$data/lanner.db
  log=$WORK/lanner-$mode-round$ROUND.log
  lanner_config "$mode" "$data"
  start "$log" "$LANNER" run -c "$WORK/lanner-$mode.yaml"
  pid=$PID
  if ! wait_port "$REDIS_LPORT" "$pid" 150 || ! wait_port "$PG_LPORT" "$pid" 50; then
    say "$mode: lanner did not start, see $log"
    for test in $TESTS; do echo "{\"unavailable\": \"lanner did not start, see $log\"}" | record "$mode" "$test"; done
    stop "$pid"; return 0
  fi
  FLOWS_redis=$(flows_of "$db" redis) FLOWS_postgres=$(flows_of "$db" postgres) EXPECTED_redis=0 EXPECTED_postgres=0
  for test in $TESTS; do
    case $test in redis-*) port=$REDIS_LPORT ;; *) port=$PG_LPORT ;; esac
    FLOWS=
    run_test "$mode" "$test" "$port" "$pid" "$db"
  done
  FLOWS=
  # the recorder logs drops 10 s after the first one, and at stop the rest: stop it gracefully
  stop_int "$pid" 60
  "$LANNER" flows --db "$db" stats >"$WORK/$mode-round$ROUND.stats" 2>&1
  dropped=$(grep -o 'dropped_total=[0-9]*' "$log" | tail -1 | cut -d= -f2)
  lost=$(grep -E 'unwritten|lost' "$log" | grep -o 'lost\(_total\)\?=[0-9]*' | cut -d= -f2 | awk '{s += $1} END {print s + 0}')
  grep -E '^[^ ]+ (warning|error|critical) |^Traceback' "$log" >"$WORK/$mode-round$ROUND.warnings"
  warnings=$(wc -l <"$WORK/$mode-round$ROUND.warnings")
  # retention (the default max_size 1GiB) deletes the oldest records: the counts then fall short
  retained=$(grep 'retention deleted' "$log" | grep -o 'deleted=[0-9]*' | cut -d= -f2 | awk '{s += $1} END {print s + 0}')
  "$PY" "$BENCH/db_report.py" flows "$db" | record "$mode" store dropped="${dropped:-0}" lost="${lost:-0}" \
    warnings="$warnings" retention_deleted="$retained" store_bytes="$(du -sb "$data" | cut -f1)" stop_s="$STOP_S" exit_code="$STOP_RC" expected_redis="$EXPECTED_redis" \
    expected_postgres="$EXPECTED_postgres"
  say "round $ROUND: $mode: lanner stopped in ${STOP_S}s (exit $STOP_RC); records dropped: ${dropped:-0}, lost: ${lost:-0}; $warnings warning/error lines (${WORK}/$mode-round$ROUND.warnings)"
  [ "${KEEP_DATA:-0}" = 1 ] || rm -rf "$data"
}

# --- the run ---
touch "$WORK/run.stamp"  # a source newer than this at the end: lanner changed during the run
START_HEAD=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)
begin_run
for ROUND in $(seq "$ROUNDS"); do
  for mode in "${RUN_MODES[@]}"; do
    say "round $ROUND of $ROUNDS: $mode"
    mode_run "$mode"
  done
done

# --- the report ---
export BENCH_DATE BENCH_MACHINE BENCH_SETTINGS
BENCH_SRC_CHANGED=
if [ "$LANNER" = "$ROOT/.venv/bin/lanner" ]; then  # another LANNER does not run this work tree
  BENCH_SRC_CHANGED=$(find "$ROOT/src" -type f -name "*.py" -newer "$WORK/run.stamp" -printf '%P ' 2>/dev/null | head -c 400)
  END_HEAD=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)
  [ "$START_HEAD" = "$END_HEAD" ] || BENCH_SRC_CHANGED="HEAD $START_HEAD -> $END_HEAD; $BENCH_SRC_CHANGED"
fi
[ -n "$BENCH_SRC_CHANGED" ] && say "warning: lanner's code changed during the run, its modes may have measured different code: $BENCH_SRC_CHANGED"
BENCH_DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
BENCH_MACHINE="$(nproc) cores ($cpu), Linux $(uname -r), $("$PY" --version) for lanner"
if [ "$LANNER" = "$ROOT/.venv/bin/lanner" ]; then
  BENCH_MACHINE+=", lanner $("$LANNER" --version 2>&1 | awk '{print $NF}') at $LANNER_REV"
else
  BENCH_MACHINE+=", lanner $("$LANNER" --version 2>&1 | awk '{print $NF}') from LANNER=$LANNER"
fi
BENCH_MACHINE+=", Redis $(redis_cli info server 2>/dev/null | sed -n 's/^redis_version:\([^[:space:]]*\).*/\1/p')"
BENCH_MACHINE+=", PostgreSQL $(psql_as "$PG_USER" "$PG_DB" -c 'SHOW server_version' 2>/dev/null | awk '{print $1}')"
BENCH_MACHINE+=", $(redis-benchmark --version 2>&1 | awk '{print $1, $2}'), $(pgbench --version 2>&1 | awk '{print $1, $3}')"
BENCH_SETTINGS="redis-benchmark -c $REDIS_CONC -n $REDIS_N (pipelined: -P $PIPELINE -n $REDIS_PN), SET then GET in separate runs"
BENCH_SETTINGS+="; pgbench -n -S -c $PG_CONC -j $PG_THREADS -T $DUR, scale 1"
BENCH_SETTINGS+="; analyzed: \`analyze: $ANALYZE_REDIS\` / \`analyze: $ANALYZE_PG\`, default record settings, a fresh data_dir per lanner run"
[ -n "$BENCH_SRC_CHANGED" ] && BENCH_SETTINGS+="; **lanner's source changed during the run**: $BENCH_SRC_CHANGED"
"$PY" "$BENCH/db_report.py" render "$RESULTS" "$OUT"
status=$?
say "wrote $OUT (raw results: $RESULTS, logs and client outputs: $WORK)"
[ "$status" = 0 ] || say "a target was missed, a test failed or flows went missing: see $OUT"
exit "$status"
