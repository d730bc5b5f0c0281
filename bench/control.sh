#!/usr/bin/env bash
# What the control plane (issue 8: admin API, Prometheus metrics, live stream, hot reload) costs
# and how it behaves, in one run, all on 127.0.0.1 against a local nginx origin:
#   1. overhead  the same loads through lanner at HEAD ("after") and at the commit before
#                issue 8 ("before", BEFORE_REV, run from a git worktree with PYTHONPATH), with
#                recording off and on, plus a direct baseline: wrk keep-alive forwarding
#                (absolute-form GETs, bench/absolute.lua) and new CONNECT tunnels/s
#                (bench/new_tunnels.py). The subjects alternate within every round, and their
#                order rotates each round. A fresh lanner process for every measurement.
#                With SPLIT=1 (the default) the recording-off runs add two rows that split the
#                cost: after with `admin.enabled: false`, and after with the data path's metric
#                calls made no-ops (control_report.py without-metrics: an experiment, not a
#                configuration lanner offers).
#   2. metrics   lanner --workers 2 (recording on): GET /metrics once a second while wrk runs
#                and while new tunnels run (time, size, series), and the counters
#                lanner_connections_opened_total and lanner_http_responses_total{class="2xx"}
#                before and after each load against what the load client saw.
#   3. api       a store filled with FLOWS flows (SqliteStore.write in batches, before lanner
#                starts): admin API calls idle (CALLS each), then wrk alone / wrk + 1 API client /
#                wrk + HAMMER_CLIENTS API clients (the API clients call the endpoints in turn,
#                back to back, for the whole wrk run), in two lanner processes per round
#                (API_MODES): `none`, the listener with `analyze: none` (the store keeps FLOWS
#                flows), and `on`, every exchange recorded into the store too (it grows). A
#                fresh copy of the filled store for each.
#   4. reload    RELOADS SIGHUPs, each after rewriting one rule, spread over a wrk run and over a
#                new-tunnel run; the same process without reloads alternating. wrk's errors and
#                non-2xx, the tunnel client's errors, and the reloads the log says were applied.
#
#   bench/control.sh [OUT.md]      default OUT: $BENCH_WORK/control.md
#
# env: DUR=10 (seconds per load run), CONC=50, ROUNDS=3, BASE_PORT=18800 (origin; lanner's
# proxy on the next port, its admin listener on the one after), BEFORE_REV=40ea67f,
# BEFORE_TREE=/tmp/lanner-before (a git worktree of BEFORE_REV, added when missing and left in
# place: `git worktree remove /tmp/lanner-before` drops it), FLOWS=100000, CALLS=50,
# HAMMER_CLIENTS=4, RELOADS=20, PARTS="overhead metrics api reload" (a subset to run), SPLIT=1,
# API_MODES="none on", BENCH_WORK=/tmp/lanner-control-run, QUIET_WAIT=SECONDS (before each
# measurement, wait up to that long for the machine to be under 10% busy: the recording writer
# catching up after a load counts as busy), PROFILE=1 (after round 1: py-spy on before and after
# under wrk and under new tunnels, recording off; py-spy goes into BENCH_ENVS/load, the venv
# run.sh uses, BENCH_ENVS=/tmp/lanner-bench-envs; collapsed stacks in BENCH_WORK). Both trees
# run on lanner's venv (.venv/bin/python -m lanner run), so only lanner's own code differs.
set -u
BENCH=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/common.sh
. "$BENCH/common.sh"
ROOT=$(dirname "$BENCH")
export DUR=${DUR:-10} CONC=${CONC:-50} ROUNDS=${ROUNDS:-3}
ROUND=0
BASE=${BASE_PORT:-18800}
WORK=${BENCH_WORK:-/tmp/lanner-control-run}
ENVS=${BENCH_ENVS:-/tmp/lanner-bench-envs}
PY=$ROOT/.venv/bin/python  # lanner's venv: runs both trees, the tunnel client (uvloop) and the helpers
export BEFORE_REV=${BEFORE_REV:-40ea67f} BEFORE_TREE=${BEFORE_TREE:-/tmp/lanner-before}
FLOWS=${FLOWS:-100000}
CALLS=${CALLS:-50}
export HAMMER_CLIENTS=${HAMMER_CLIENTS:-4} RELOADS=${RELOADS:-20}
PARTS=${PARTS:-overhead metrics api reload}
SPLIT=${SPLIT:-1}
API_MODES=${API_MODES:-none on}
OUT=${1:-$WORK/control.md}

ORIGIN_PORT=$BASE
PROXY_PORT=$((BASE + 1))
ADMIN_PORT=$((BASE + 2))

[ -x "$PY" ] || die "no python at $PY (run 'make install')"
case "$OUT" in /*) ;; *) OUT=$PWD/$OUT ;; esac
mkdir -p "$WORK/www" "$WORK/tmp" "$(dirname "$OUT")"
cd "$WORK" || die "cannot enter $WORK"  # `python -m` puts the current directory on sys.path
export TMPDIR=$WORK/tmp  # lanner's metrics directory (lanner-metrics-*) lands here
RESULTS=$WORK/control.jsonl
: >"$RESULTS"
REPORT_PY=$PY
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# --- tools, the two trees ---
need_debs "wrk nginx curl" "wrk nginx-light curl"
ports_free "$BASE" $((BASE + 2))
if [ ! -d "$BEFORE_TREE/src/lanner" ]; then
  say "adding a git worktree of $BEFORE_REV at $BEFORE_TREE"
  git -C "$ROOT" worktree add --detach "$BEFORE_TREE" "$BEFORE_REV" >"$WORK/worktree.log" 2>&1 ||
    die "git worktree add failed, see $WORK/worktree.log"
fi
[ "$(git -C "$BEFORE_TREE" rev-parse HEAD)" = "$(git -C "$ROOT" rev-parse "$BEFORE_REV^{commit}")" ] ||
  die "$BEFORE_TREE is not at $BEFORE_REV"
TREE_before=$BEFORE_TREE/src
TREE_after=$ROOT/src
for tree in before after; do
  src=$(eval echo "\$TREE_$tree")
  where=$(PYTHONPATH=$src "$PY" -c 'import lanner; print(lanner.__file__)' 2>&1)
  [ "${where#"$src"/}" != "$where" ] || die "the $tree tree does not import from $src: $where"
done
export AFTER_REV
AFTER_REV=$(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet HEAD -- src || echo ' (src modified)')
BEFORE_REV=$(git -C "$BEFORE_TREE" rev-parse --short HEAD)

# --- the origin: nginx, one worker, /small (18 bytes) ---
echo "hello-from-origin" >"$WORK/www/small"
start_origin "$ORIGIN_PORT"

# --- lanner configs: the listener, a data_dir, recording off or on; after: the admin port ---
config() { # kind(before|after|noadmin) rec data_dir [extra yaml] -> the file's path
  local file=$WORK/lanner-$1-$2.yaml enabled=false
  [ "$2" = on ] && enabled=true
  {
    printf 'listeners:\n  - name: bench\n    bind: 127.0.0.1:%s\n%bdata_dir: %s\nrecord: {enabled: %s}\n' \
      "$PROXY_PORT" "${LISTENER_EXTRA:-}" "$3" "$enabled"
    [ "$1" = after ] && printf 'admin: {bind: "127.0.0.1:%s"}\n' "$ADMIN_PORT"
    [ "$1" = noadmin ] && printf 'admin: {enabled: false}\n'
    printf '%s\n' "${4:-}"
  } >"$file"
  echo "$file"
}
for kind in before after noadmin; do
  tree=after
  [ "$kind" = before ] && tree=before
  for rec in off on; do
    file=$(config "$kind" "$rec" "$WORK/data-check")
    PYTHONPATH=$(eval echo "\$TREE_$tree") "$PY" -m lanner config check "$file" >"$WORK/check-$kind-$rec.log" 2>&1 ||
      die "the $tree tree refuses $file: $(cat "$WORK/check-$kind-$rec.log")"
  done
done
rm -rf "$WORK/data-check"

LANNER_PID=0
start_lanner() { # how(before|after|noadmin|nometrics) config log [args...]: start it, wait for its ports;
  # sets LANNER_PID (0: failed). nometrics: the after tree with the data path's metric calls made
  # no-ops (control_report.py without-metrics: an experiment, not a configuration)
  local how=$1 cfg=$2 log=$3 launcher=(-m lanner); shift 3
  [ "$how" = nometrics ] && launcher=("$BENCH/control_report.py" without-metrics)
  local tree=after
  [ "$how" = before ] && tree=before
  start "$log" env PYTHONPATH="$(eval echo "\$TREE_$tree")" "$PY" "${launcher[@]}" run -c "$cfg" "$@"
  LANNER_PID=$PID
  if ! wait_port "$PROXY_PORT" "$LANNER_PID" 150 || { [ "$how" != before ] && [ "$how" != noadmin ] && ! wait_port "$ADMIN_PORT" "$LANNER_PID" 100; }; then
    say "lanner ($tree) did not start, see $log"
    stop "$LANNER_PID"; LANNER_PID=0; return 1
  fi
  sleep 0.5  # a second worker binds after the first; the writer process starts
}
jget() { "$PY" -c 'import json, sys; v = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1]).get(sys.argv[2]); print(0 if v is None else v)' "$1" "$2"; }
json_or() { [ -s "$1" ] && tail -1 "$1" | "$PY" -c 'import json, sys; json.loads(sys.stdin.read())' 2>/dev/null && return 0
  echo "{\"unavailable\": \"no output, see $1\"}" >"$1"; }

# --- loads: each leaves the client's output in a file and sets EXTRA (seconds, CPU ticks) ---
# NOWAIT=1: the caller waited for a quiet machine already (before starting what runs alongside)
run_wrk() { # port pid out [subject for the log]
  [ "${NOWAIT:-0}" = 1 ] || wait_quiet
  say "round $ROUND: ${4:-}: wrk ${DUR}s"
  local before=0 after=0
  others_start
  [ "$2" = 0 ] || before=$(cpu_ticks "$2")
  if [ "$1" = "$ORIGIN_PORT" ]; then
    timeout $((DUR + 20)) wrk -t2 -c"$CONC" -d"${DUR}s" --latency "http://127.0.0.1:$ORIGIN_PORT/small" >"$3" 2>&1
  else
    ORIGIN=http://127.0.0.1:$ORIGIN_PORT/small timeout $((DUR + 20)) \
      wrk -t2 -c"$CONC" -d"${DUR}s" --latency -s "$BENCH/absolute.lua" "http://127.0.0.1:$1/" >"$3" 2>&1
  fi
  [ "$2" = 0 ] || after=$(cpu_ticks "$2")
  EXTRA=(seconds="$DUR" others_cpu_ticks="$(others_since)")
  [ "$2" = 0 ] || EXTRA+=(proxy_cpu_ticks=$((after - before)))
}
run_new() { # mode port pid out [subject]
  [ "${NOWAIT:-0}" = 1 ] || wait_quiet
  say "round $ROUND: ${5:-}: new $1 tunnels ${DUR}s"
  local before=0 after=0
  others_start
  [ "$3" = 0 ] || before=$(cpu_ticks "$3")
  timeout $((DUR + 30)) "$PY" "$BENCH/new_tunnels.py" "$1" "$2" "$ORIGIN_PORT" "$CONC" "$DUR" >"$4" 2>&1
  [ "$3" = 0 ] || after=$(cpu_ticks "$3")
  json_or "$4"
  EXTRA=(seconds="$DUR" others_cpu_ticks="$(others_since)")
  [ "$3" = 0 ] || EXTRA+=(proxy_cpu_ticks=$((after - before)))
}
wrk_json() { "$PY" "$BENCH/report.py" wrk <"$1"; }

# --- 1. overhead ---
overhead_one() { # subject (before|after|noadmin|nometrics) rec load(fwd|new_connect)
  local subject=$1-$2 data cfg log=$WORK/$1-$2-$3-round$ROUND.log kind=$1
  data=$(mktemp -d "$WORK/data-$subject.XXXX")
  [ "$1" = nometrics ] && kind=after
  cfg=$(config "$kind" "$2" "$data")
  if start_lanner "$1" "$cfg" "$log"; then
    if [ "$3" = fwd ]; then
      run_wrk "$PROXY_PORT" "$LANNER_PID" "$WORK/wrk.out" "$subject"
      wrk_json "$WORK/wrk.out" | record "$subject" fwd "${EXTRA[@]}"
    else
      run_new connect "$PROXY_PORT" "$LANNER_PID" "$WORK/new.out" "$subject"
      record "$subject" new_connect "${EXTRA[@]}" <"$WORK/new.out"
    fi
    stop "$LANNER_PID" 30
  else
    echo "{\"unavailable\": \"did not start, see $log\"}" | record "$subject" "$3"
  fi
  rm -rf "$data"
}
part_overhead() {
  run_wrk "$ORIGIN_PORT" 0 "$WORK/wrk.out" direct
  wrk_json "$WORK/wrk.out" | record direct fwd "${EXTRA[@]}"
  run_new direct 0 0 "$WORK/new.out" direct
  record direct new_connect "${EXTRA[@]}" <"$WORK/new.out"
  local rec load subject subjects
  for rec in off on; do
    subjects=(before after)
    [ "$rec" = off ] && [ "$SPLIT" = 1 ] && subjects+=(noadmin nometrics)
    # rotate the order every round: each subject takes every place in turn
    local n=${#subjects[@]} i
    for load in fwd new_connect; do
      for i in $(seq 0 $((n - 1))); do
        overhead_one "${subjects[$(((i + ROUND - 1) % n))]}" "$rec" "$load"
      done
    done
  done
}

# --- 2. /metrics with --workers 2 ---
scrape() { "$PY" "$BENCH/control_report.py" scrape "$ADMIN_PORT" "$@"; }
part_metrics() {
  local data cfg log=$WORK/w2-round$ROUND.log
  data=$(mktemp -d "$WORK/data-w2.XXXX")
  cfg=$(config after on "$data")
  if ! start_lanner after "$cfg" "$log" --workers 2; then
    echo "{\"unavailable\": \"did not start, see $log\"}" | record w2 scrape_fwd
    rm -rf "$data"; return
  fi
  sleep 1
  [ "$ROUND" = 1 ] && scrape | record w2 scrape_idle
  local load s0 s1 loop=$WORK/scrapes.json
  for load in fwd new_connect; do
    wait_quiet
    scrape >"$WORK/s0.json"
    scrape $((DUR - 1)) 1 >"$loop" &
    local scraper=$!
    if [ "$load" = fwd ]; then
      NOWAIT=1 run_wrk "$PROXY_PORT" "$LANNER_PID" "$WORK/w2-wrk.out" w2
      wrk_json "$WORK/w2-wrk.out" >"$WORK/w2-load.json"
    else
      NOWAIT=1 run_new connect "$PROXY_PORT" "$LANNER_PID" "$WORK/w2-load.json" w2
    fi
    wait "$scraper"
    sleep 1.5  # the last connections close; other workers hand their counts over within a second
    scrape >"$WORK/s1.json"
    record w2 "$load" "${EXTRA[@]}" <"$WORK/w2-load.json"
    local opened rate requests=0
    if [ "$load" = fwd ]; then
      opened=$CONC rate=$(jget "$WORK/w2-load.json" rps) requests=$(jget "$WORK/w2-load.json" requests)
    else
      opened=$(($(jget "$WORK/w2-load.json" done) + $(jget "$WORK/w2-load.json" errors)))
      rate=$(jget "$WORK/w2-load.json" tunnels_per_s)
    fi
    s0=$(jget "$WORK/s0.json" connections_opened_total) s1=$(jget "$WORK/s1.json" connections_opened_total)
    local r0 r1
    r0=$(jget "$WORK/s0.json" http_responses_total) r1=$(jget "$WORK/s1.json" http_responses_total)
    json_or "$loop"
    record w2 "scrape_$load" load_rate="$rate" load_connections="$opened" opened_delta=$((s1 - s0)) \
      load_requests="$requests" responses_2xx_delta=$((r1 - r0)) <"$loop"
    say "round $ROUND: w2 $load: the load opened $opened connections, lanner_connections_opened_total +$((s1 - s0)); $(cat "$loop")"
  done
  stop "$LANNER_PID" 30
  rm -rf "$data"
}

# --- 3. the admin API with a full store ---
STORE=$WORK/api-store/lanner.db
api_fill() {
  rm -rf "$WORK/api-store" && mkdir -p "$WORK/api-store"
  say "filling $STORE with $FLOWS flows"
  "$PY" "$BENCH/control_report.py" fill "$STORE" "$FLOWS" >"$WORK/fill.json" 2>"$WORK/fill.log" ||
    die "filling the store failed, see $WORK/fill.log"
  record api fill <"$WORK/fill.json"
}
api_with_wrk() { # clients (0: none) mode
  local api_pid=0 subject=api-$2-alone
  [ "$1" = 1 ] && subject=api-$2-1
  [ "$1" -gt 1 ] && subject=api-$2-n
  wait_quiet
  if [ "$1" -gt 0 ]; then
    "$PY" "$BENCH/control_report.py" api "$ADMIN_PORT" "$DUR" "$1" --timed >"$WORK/api-load.json" 2>&1 &
    api_pid=$!
  fi
  NOWAIT=1 run_wrk "$PROXY_PORT" "$LANNER_PID" "$WORK/wrk.out" "$subject"
  wrk_json "$WORK/wrk.out" | record "$subject" fwd "${EXTRA[@]}"
  if [ "$api_pid" != 0 ]; then
    wait "$api_pid"
    json_or "$WORK/api-load.json"
    record "api-$2" "api_load${subject##*-}" <"$WORK/api-load.json"
  fi
}
store_count() { # subject: the store's flows now, through the API
  curl -s "http://127.0.0.1:$ADMIN_PORT/api/v1/flows/count" |
    "$PY" -c 'import json, sys; print(json.dumps({"flows": json.load(sys.stdin)["count"]}))' | record "$1" store_count
}
part_api() {
  [ "$ROUND" = 1 ] && api_fill
  local mode
  for mode in $API_MODES; do
    local data=$WORK/data-api-$mode-round$ROUND cfg log=$WORK/api-$mode-round$ROUND.log
    rm -rf "$data" && mkdir -p "$data"
    cp "$STORE" "$data/lanner.db"
    # none: the listener records connections only (the store keeps its FLOWS flows); on: every
    # exchange is recorded into the store as well (it grows while wrk runs)
    LISTENER_EXTRA=
    [ "$mode" = none ] && LISTENER_EXTRA='    analyze: none\n'
    cfg=$(config after on "$data")
    LISTENER_EXTRA=
    if ! start_lanner after "$cfg" "$log"; then
      echo "{\"unavailable\": \"did not start, see $log\"}" | record "api-$mode" store_count
      rm -rf "$data"; continue
    fi
    if [ "$ROUND" = 1 ] && [ "$mode" = "${API_MODES%% *}" ]; then
      wait_quiet
      say "round $ROUND: admin API, idle: $CALLS calls per endpoint"
      "$PY" "$BENCH/control_report.py" api "$ADMIN_PORT" "$CALLS" >"$WORK/api-idle.json" 2>&1
      json_or "$WORK/api-idle.json"
      record api api_idle <"$WORK/api-idle.json"
    fi
    local order=(0 1 "$HAMMER_CLIENTS") i
    for i in 0 1 2; do api_with_wrk "${order[$(((i + ROUND - 1) % 3))]}" "$mode"; done
    store_count "api-$mode"
    stop "$LANNER_PID" 30
    rm -rf "$data"
  done
}

# --- 4. hot reload under load ---
reload_config() { # n data_dir -> $WORK/lanner-reload.yaml, with a rule naming host n
  config after on "$2" "$(printf 'config_watch_interval: 0\nrules:\n  - action: deny\n    hosts: ["blocked-%s.example.invalid"]\n' "$1")" >/dev/null
  mv "$WORK/lanner-after-on.yaml" "$WORK/lanner-reload.yaml"
}
reloader() { # pid: RELOADS times, spread over DUR: rewrite the rule, SIGHUP
  local i gap
  gap=$(awk -v d="$DUR" -v n="$RELOADS" 'BEGIN {printf "%.3f", d / (n + 1)}')
  for i in $(seq "$RELOADS"); do
    sleep "$gap"
    reload_config "$((ROUND * 1000 + RELOAD_SERIAL + i))" "$RELOAD_DATA"
    kill -HUP "$1" 2>/dev/null || return
  done
}
RELOAD_SERIAL=0
part_reload() {
  RELOAD_DATA=$(mktemp -d "$WORK/data-reload.XXXX")
  local log=$WORK/reload-round$ROUND.log modes=(none sighup) load mode
  reload_config "$((ROUND * 1000))" "$RELOAD_DATA"
  if ! start_lanner after "$WORK/lanner-reload.yaml" "$log"; then
    echo "{\"unavailable\": \"did not start, see $log\"}" | record reload-none fwd
    rm -rf "$RELOAD_DATA"; return
  fi
  [ $((ROUND % 2)) = 0 ] && modes=(sighup none)
  for load in fwd new_connect; do
    for mode in "${modes[@]}"; do
      local before_n after_n rl=0 out=$WORK/reload-$load.out
      wait_quiet
      before_n=$(grep -c 'config reloaded' "$log")
      if [ "$mode" = sighup ]; then reloader "$LANNER_PID" & rl=$!; fi
      if [ "$load" = fwd ]; then
        NOWAIT=1 run_wrk "$PROXY_PORT" "$LANNER_PID" "$out" "reload-$mode"
      else
        NOWAIT=1 run_new connect "$PROXY_PORT" "$LANNER_PID" "$out" "reload-$mode"
      fi
      [ "$rl" = 0 ] || wait "$rl"
      sleep 0.5
      after_n=$(grep -c 'config reloaded' "$log")
      RELOAD_SERIAL=$((RELOAD_SERIAL + RELOADS))
      if [ "$load" = fwd ]; then wrk_json "$out" >"$out.json"; else cp "$out" "$out.json"; fi
      record "reload-$mode" "$load" "${EXTRA[@]}" reloads_applied=$((after_n - before_n)) <"$out.json"
      say "round $ROUND: reload-$mode $load: $((after_n - before_n)) reloads applied; $(tail -1 "$out.json")"
    done
  done
  grep -E ' (error|critical) |Traceback' "$log" >"$WORK/reload-round$ROUND.errors"
  stop "$LANNER_PID" 30
  rm -rf "$RELOAD_DATA"
}

# --- optional: where the time goes (py-spy, not a measurement) ---
part_profile() {
  venv "$ENVS/load" "uvloop==$("$PY" -c 'import uvloop; print(uvloop.__version__)')" py-spy
  local tree load data cfg
  for tree in before after; do
    data=$(mktemp -d "$WORK/data-profile.XXXX")
    cfg=$(config "$tree" off "$data")
    start_lanner "$tree" "$cfg" "$WORK/profile-$tree.log" || continue
    for load in fwd new_connect; do
      wait_quiet
      say "profiling $tree under $load (py-spy, not a measurement)"
      "$ENVS/load/bin/py-spy" record --pid "$LANNER_PID" --duration "$DUR" --rate 200 --format raw \
        --output "$WORK/profile-$tree-$load.txt" >"$WORK/profile-$tree-$load.log" 2>&1 &
      local spy=$!
      sleep 0.5
      if [ "$load" = fwd ]; then NOWAIT=1 run_wrk "$PROXY_PORT" "$LANNER_PID" /dev/null profile
      else NOWAIT=1 run_new connect "$PROXY_PORT" "$LANNER_PID" "$WORK/profile-new.out" profile; fi
      wait "$spy"
      "$PY" "$BENCH/control_report.py" share "$WORK/profile-$tree-$load.txt" prometheus_client lanner/control/ \
        generation.py >"$WORK/profile-$tree-$load.share" 2>&1
      say "profile $tree $load: $(cat "$WORK/profile-$tree-$load.share")"
    done
    stop "$LANNER_PID" 30
    rm -rf "$data"
  done
}

# --- the run ---
touch "$WORK/run.stamp"  # a source newer than this at the end: the after tree changed during the run
START_HEAD=$(git -C "$ROOT" rev-parse --short HEAD)
begin_run
for ROUND in $(seq "$ROUNDS"); do
  say "round $ROUND of $ROUNDS"
  for part in $PARTS; do
    case $part in
      overhead) part_overhead ;;
      metrics) part_metrics ;;
      api) part_api ;;
      reload) part_reload ;;
      *) die "unknown part $part (PARTS: overhead metrics api reload)" ;;
    esac
  done
  [ "${PROFILE:-0}" = 1 ] && [ "$ROUND" = 1 ] && part_profile
done

# --- the report ---
export BENCH_DATE BENCH_MACHINE BENCH_SRC_CHANGED
BENCH_SRC_CHANGED=$(find "$ROOT/src" -type f -name "*.py" -newer "$WORK/run.stamp" -printf '%P ' 2>/dev/null | head -c 400)
END_HEAD=$(git -C "$ROOT" rev-parse --short HEAD)
git -C "$ROOT" diff --quiet "$START_HEAD" "$END_HEAD" -- src || BENCH_SRC_CHANGED="HEAD $START_HEAD -> $END_HEAD; $BENCH_SRC_CHANGED"
[ -n "$BENCH_SRC_CHANGED" ] && say "warning: lanner's source changed during the run, the after rows may mix code: $BENCH_SRC_CHANGED"
BENCH_DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
cpu=$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1)
BENCH_MACHINE="$(nproc) CPUs ($cpu), $(uname -m), Linux $(uname -r), $("$PY" --version)"
BENCH_MACHINE+=", $(nginx -v 2>&1 | sed 's/.*: //'), $(wrk -v 2>&1 | head -1 | awk '{print $1, $2}')"
"$PY" "$BENCH/control_report.py" render "$RESULTS" "$OUT" >/dev/null
say "wrote $OUT (raw results: $RESULTS, logs: $WORK)"
if grep -q '"unavailable"' "$RESULTS"; then say "some measurements failed: see $OUT"; exit 1; fi
leftover=$(find "$WORK/tmp" -maxdepth 1 -name 'lanner-metrics-*' | wc -l)
[ "$leftover" = 0 ] || say "warning: $leftover lanner-metrics-* directories left in $WORK/tmp (a lanner that did not stop cleanly)"
exit 0
