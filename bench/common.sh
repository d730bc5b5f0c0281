# Shared by bench/run.sh and bench/record.sh (sourced, not run): tools, throwaway venvs,
# server processes, ports, the nginx origin, CPU accounting and quiet-machine waits.
# The sourcing script sets WORK, RESULTS, BENCH (this folder) and REPORT_PY (a python for
# report.py) before calling these.

say() { echo "bench: $*" >&2; }
die() { say "$*"; exit 1; }

need_debs() { # "tool ..." "package ...": apt-get the packages when any tool is missing
  local tool missing=()
  export PATH=$PATH:/usr/sbin
  for tool in $1; do command -v "$tool" >/dev/null || missing+=("$tool"); done
  [ ${#missing[@]} -gt 0 ] || return 0
  say "installing Debian packages for: ${missing[*]}"
  # shellcheck disable=SC2086  # the package list is words
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $2; } >"$WORK/apt.log" 2>&1 ||
    die "apt-get failed, see $WORK/apt.log"
}

venv() { # dir packages... : create once, reuse after
  local dir=$1; shift
  [ -f "$dir/.done" ] && return 0
  say "creating $dir ($*)"
  rm -rf "$dir" && python3 -m venv "$dir" && "$dir/bin/pip" install -q "$@" >"$dir.log" 2>&1 && touch "$dir/.done" ||
    die "pip install $* failed, see $dir.log"
}

# --- processes: each server in its own process group, all stopped on exit ---
SERVERS=()
start() { # log command... ; sets PID (also the process group id)
  local log=$1; shift
  setsid "$@" >"$log" 2>&1 &
  PID=$!
  SERVERS+=("$PID")
}
stop() { # pid [seconds=5]: TERM the group, wait that long, then KILL what is left
  local pid=$1 tenths=$((${2:-5} * 10)) i
  kill -TERM -- "-$pid" 2>/dev/null || return 0
  for i in $(seq "$tenths"); do kill -0 -- "-$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL -- "-$pid" 2>/dev/null && say "process group $pid did not stop in ${2:-5}s: killed"
  wait "$pid" 2>/dev/null
  return 0
}
cleanup() { for pid in "${SERVERS[@]}"; do stop "$pid"; done; }
trap cleanup EXIT
trap 'exit 130' INT TERM

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() { # port pid [tenths of a second=100]
  local i
  for i in $(seq "${3:-100}"); do
    port_open "$1" && return 0
    kill -0 "$2" 2>/dev/null || { say "process $2 for port $1 exited"; return 1; }
    sleep 0.1
  done
  say "port $1 never opened"; return 1
}
ports_free() { # first last
  local port
  for port in $(seq "$1" "$2"); do port_open "$port" && die "port $port is already in use (set BASE_PORT)"; done
  return 0
}

start_origin() { # port [pem]: nginx, one worker, serving $WORK/www (over TLS with a cert+key pem)
  local listen="listen 127.0.0.1:$1 backlog=4096;"
  [ -n "${2:-}" ] && listen="listen 127.0.0.1:$1 ssl backlog=4096; ssl_certificate $2; ssl_certificate_key $2;"
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
  server { $listen root $WORK/www; }
}
EOF
  start "$WORK/origin.log" nginx -c "$WORK/origin.conf"
  wait_port "$1" "$PID" || die "origin nginx did not start, see $WORK/origin.err"
}

# --- measurements: each appends one JSON line to $RESULTS ---
record() { "$REPORT_PY" "$BENCH/report.py" tag "$@" round="$ROUND" >>"$RESULTS"; }  # subject metric [key=value...] < json
cpu_ticks() { "$REPORT_PY" "$BENCH/report.py" cputicks "$1"; }
# CPU used by processes outside this script's tree (someone else's tests, a build) during a measurement
others_start() { "$REPORT_PY" "$BENCH/report.py" others $$ >"$WORK/others.json"; }
others_since() { "$REPORT_PY" "$BENCH/report.py" others $$ "$WORK/others.json"; }

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

# The code measured and how busy the machine is, taken just before the rounds start
# (the tree may change while a run goes on); sets LANNER_REV and BENCH_BUSY.
begin_run() {
  LANNER_REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')
  LANNER_REV+=$(git -C "$ROOT" diff --quiet HEAD -- src 2>/dev/null || echo ' (src modified)')
  wait_quiet
  export BENCH_BUSY
  BENCH_BUSY=$(busy_pct)
  [ "$BENCH_BUSY" -gt 10 ] && say "warning: the machine is ${BENCH_BUSY}% busy before the run; figures will be low and noisy"
  BENCH_BUSY="$BENCH_BUSY%"
  say "results: $RESULTS, logs: $WORK"
}
