#!/usr/bin/env bash
# GET /api/v1/profile (valid token) vs a bare Tornado handler, one process each, same wrk harness, same run.
# Run `bash scripts/bench.sh --help` for the options.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: bash scripts/bench.sh [--duration S] [--connections C] [--threads T] [--port-app A] [--port-bare B]
                             [--keep-logs]

Benchmarks GET /api/v1/profile with a valid token on ONE server.py process against a bare Tornado handler
(scripts/bench_bare.py, ONE process) with wrk, and prints a markdown table: path | req/s | p50 | p99 | errors |
ratio to bare, the machine and the exact commands.

Options:
  --duration S      seconds per measured wrk run (default 15; each run is preceded by a 3 s warm-up)
  --connections C   wrk connections (default 100)
  --threads T       wrk threads (default 2)
  --port-app A      port for server.py (default 18481)
  --port-bare B     port for bench_bare.py (default 18482)
  --keep-logs       keep the servers' logs and wrk outputs (the directory is printed)
  -h, --help        this text

Fixtures (left in place, reused on the next run; the script is idempotent):
  MySQL  SWIPER_BENCH_MYSQL_URL, default mysql://root:@127.0.0.1:3306/swiper_bench (created if missing by
         ${SWIPER_BENCH_MYSQL_ADMIN:-mariadb -uroot}; a non-root user is granted rights on it), migrated with
         scripts/manage.py migrate.
  Redis  SWIPER_BENCH_REDIS_URL, default redis://127.0.0.1:6379/14, key prefix swiper_bench:
The server runs with SWIPER_ENV=dev SWIPER_SMS_BACKEND=console SWIPER_LOG_LEVEL=WARNING (no access lines;
override with SWIPER_BENCH_LOG_LEVEL=INFO to measure with them, stdout then goes to a file) and
SWIPER_RATE_LIMIT_ENABLED=false (one token hammering one endpoint is not what a limiter is for).
Python: ${SWIPER_PYTHON:-<repo>/.venv/bin/python}, else python3. Only 127.0.0.1 is ever loaded.
EOF
}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DURATION=15
CONNECTIONS=100
THREADS=2
PORT_APP=18481
PORT_BARE=18482
WARMUP=3
KEEP_LOGS=0
ORIG_ARGS=("$@")

die() { echo "bench.sh: $*" >&2; exit 1; }
need_value() { [[ $# -ge 2 && -n $2 ]] || die "$1 needs a value (see --help)"; }
while [[ $# -gt 0 ]]; do
  case $1 in
    --duration) need_value "$@"; DURATION=$2; shift 2 ;;
    --connections) need_value "$@"; CONNECTIONS=$2; shift 2 ;;
    --threads) need_value "$@"; THREADS=$2; shift 2 ;;
    --port-app) need_value "$@"; PORT_APP=$2; shift 2 ;;
    --port-bare) need_value "$@"; PORT_BARE=$2; shift 2 ;;
    --keep-logs) KEEP_LOGS=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown option: $1 (see --help)" ;;
  esac
done
for pair in "duration:$DURATION" "connections:$CONNECTIONS" "threads:$THREADS" "port-app:$PORT_APP" \
            "port-bare:$PORT_BARE"; do
  [[ ${pair#*:} =~ ^[1-9][0-9]*$ ]] || die "--${pair%%:*} must be a positive integer, got '${pair#*:}'"
done
(( DURATION <= 600 )) || die "--duration is capped at 600 s"
(( THREADS <= CONNECTIONS )) || die "--threads must not exceed --connections"
(( PORT_APP < 65536 && PORT_BARE < 65536 )) || die "ports must be below 65536"
[[ $PORT_APP != "$PORT_BARE" ]] || die "--port-app and --port-bare must differ"

PY=${SWIPER_PYTHON:-$ROOT/.venv/bin/python}
if [[ ! -x $PY ]]; then
  PY=$(command -v python3) || die "no python: set SWIPER_PYTHON or run scripts/bootstrap.sh"
fi
for tool in wrk curl timeout; do
  command -v "$tool" >/dev/null || die "$tool is required (apt-get install $tool)"
done

# --- environment of every Python step: the bench's own database, Redis db and prefix ----------------------
MYSQL_URL=${SWIPER_BENCH_MYSQL_URL:-mysql://root:@127.0.0.1:3306/swiper_bench}
REDIS_URL=${SWIPER_BENCH_REDIS_URL:-redis://127.0.0.1:6379/14}
export SWIPER_MYSQL_URL=$MYSQL_URL
export SWIPER_REDIS_URL=$REDIS_URL
export SWIPER_REDIS_PREFIX=swiper_bench:
export SWIPER_ENV=dev
export SWIPER_SMS_BACKEND=console
export SWIPER_LOG_LEVEL=${SWIPER_BENCH_LOG_LEVEL:-WARNING}
export SWIPER_RATE_LIMIT_ENABLED=false
export SWIPER_DRAIN_TIMEOUT=2
# The token must outlive warm-ups, runs and checks; its family expires an hour later so Redis stays small.
export SWIPER_ACCESS_TOKEN_TTL=$(( 2 * (DURATION + WARMUP) + 600 ))
export SWIPER_REFRESH_TOKEN_TTL=$(( SWIPER_ACCESS_TOKEN_TTL + 3600 ))
export PYTHONDONTWRITEBYTECODE=1

WORK=$(mktemp -d "${TMPDIR:-/tmp}/swiper-bench.XXXXXX")
BENCH_NAME=bench.sh
# shellcheck source=scripts/lib/bench.sh
source "$ROOT/scripts/lib/bench.sh"
APP_PID=""
BARE_PID=""


cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_pid "$APP_PID" server.py
  stop_pid "$BARE_PID" bench_bare.py
  finish_bench "$rc"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM


# --- fixtures ------------------------------------------------------------------------------------------------
prepare_bench_database
cd "$ROOT"

# --- servers ---------------------------------------------------------------------------------------------
port_in_use "$PORT_APP" && die "port $PORT_APP is taken (server.py binds with SO_REUSEPORT and would share it)"
port_in_use "$PORT_BARE" && die "port $PORT_BARE is taken"
"$PY" server.py --port "$PORT_APP" >"$WORK/app.out" 2>"$WORK/app.err" &
APP_PID=$!
"$PY" scripts/bench_bare.py --port "$PORT_BARE" >"$WORK/bare.out" 2>"$WORK/bare.err" &
BARE_PID=$!
APP_URL="http://127.0.0.1:$PORT_APP/api/v1/profile"
BARE_URL="http://127.0.0.1:$PORT_BARE/"
wait_for "http://127.0.0.1:$PORT_APP/healthz" "$APP_PID" server.py
wait_for "$BARE_URL" "$BARE_PID" bench_bare.py

TOKEN=$(timeout 60 "$PY" scripts/bench_token.py 2>"$WORK/token.err") \
  || { cat "$WORK/token.err" >&2; die "bench_token.py failed"; }
[[ $TOKEN =~ ^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$ ]] || die "bench_token.py printed no JWT: '$TOKEN'"
AUTH="Authorization: Bearer $TOKEN"

# --- pre-run: every answer must be a 200 success envelope -------------------------------------------------
check_200() {  # check_200 URL N [curl args...]
  local url=$1 n=$2 code
  shift 2
  for _ in $(seq "$n"); do
    code=$(curl -s -o "$WORK/check.body" -w '%{http_code}' --max-time 5 "$@" "$url" || true)
    if [[ $code != 200 ]] || ! grep -q '^{"code":0,' "$WORK/check.body"; then
      die "pre-run: $url answered $code: $(head -c 300 "$WORK/check.body" 2>/dev/null)"
    fi
  done
}
check_200 "$BARE_URL" 20
check_200 "$APP_URL" 50 -H "$AUTH"

# --- wrk ------------------------------------------------------------------------------------------------
WRK_BARE=(wrk -t "$THREADS" -c "$CONNECTIONS" -d "${DURATION}s" --latency "$BARE_URL")
WRK_APP=(wrk -t "$THREADS" -c "$CONNECTIONS" -d "${DURATION}s" --latency -H "$AUTH" "$APP_URL")
run_wrk() {  # run_wrk OUTFILE SECONDS wrk-args... (the duration argument is replaced by SECONDS)
  local out=$1 secs=$2
  shift 2
  local args=("$@")
  args[6]="${secs}s"
  timeout $(( secs + 30 )) "${args[@]}" >"$out" 2>&1 || { cat "$out" >&2; die "wrk failed: ${args[*]:0:7} ..."; }
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }  # utime + stime
run_wrk "$WORK/warm-bare.txt" "$WARMUP" "${WRK_BARE[@]}"
T0=$(cpu_ticks "$BARE_PID")
run_wrk "$WORK/wrk-bare.txt" "$DURATION" "${WRK_BARE[@]}"
BARE_TICKS=$(( $(cpu_ticks "$BARE_PID") - T0 ))
run_wrk "$WORK/warm-app.txt" "$WARMUP" "${WRK_APP[@]}"
T0=$(cpu_ticks "$APP_PID")
run_wrk "$WORK/wrk-app.txt" "$DURATION" "${WRK_APP[@]}"
APP_TICKS=$(( $(cpu_ticks "$APP_PID") - T0 ))
kill -0 "$APP_PID" 2>/dev/null || die "server.py died during the run"
check_200 "$APP_URL" 5 -H "$AUTH"

# --- report -----------------------------------------------------------------------------------------------
BARE_RPS=$(field "$WORK/wrk-bare.txt" rps)
APP_RPS=$(field "$WORK/wrk-app.txt" rps)
[[ -n $BARE_RPS && -n $APP_RPS ]] || { cat "$WORK"/wrk-*.txt >&2; die "could not parse wrk output"; }

for name in bare app; do
  echo "--- wrk: $name ---"
  cat "$WORK/wrk-$name.txt"
done
echo
CPU=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
echo "Machine: $(nproc) cores, ${CPU:-unknown CPU}, $(uname -sr); $("$PY" -c 'import sys, tornado; print(f"Python {sys.version.split()[0]}, Tornado {tornado.version}")')"
echo "Date: $(date -u +%Y-%m-%dT%H:%MZ); code: commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown) (plus any uncommitted changes)"
printf 'Command: SWIPER_PYTHON=%q bash scripts/bench.sh' "$PY"
(( ${#ORIG_ARGS[@]} )) && printf ' %q' "${ORIG_ARGS[@]}"
echo
echo "  wrk: ${WRK_BARE[*]}"
echo "  wrk: wrk -t $THREADS -c $CONNECTIONS -d ${DURATION}s --latency -H \"Authorization: Bearer \$TOKEN\" $APP_URL"
echo "  (each after a ${WARMUP} s warm-up; server.py and bench_bare.py one process each, SWIPER_LOG_LEVEL=$SWIPER_LOG_LEVEL)"
ACCESS_LINES=$(wc -l <"$WORK/app.out")
ERR_LINES=$(wc -l <"$WORK/app.err")
echo "server.py output during the run: $ACCESS_LINES stdout (access) lines, $ERR_LINES stderr lines"
echo
echo "| path | req/s | p50 | p99 | errors | ratio to bare |"
echo "|---|---:|---:|---:|---|---:|"
echo "| bare Tornado \`/\` | $BARE_RPS | $(field "$WORK/wrk-bare.txt" p50) | $(field "$WORK/wrk-bare.txt" p99) | $(field "$WORK/wrk-bare.txt" errors) | 1.00 |"
echo "| \`GET /api/v1/profile\` | $APP_RPS | $(field "$WORK/wrk-app.txt" p50) | $(field "$WORK/wrk-app.txt" p99) | $(field "$WORK/wrk-app.txt" errors) | $(awk -v a="$APP_RPS" -v b="$BARE_RPS" 'BEGIN {printf "%.2f", a / b}') |"
HZ=$(getconf CLK_TCK 2>/dev/null || echo 100)
cpu_line() {  # cpu_line TICKS WRKFILE: share of one core and CPU time per request of the server process
  awk -v t="$1" -v hz="$HZ" -v d="$DURATION" '/ requests in / {n = $1} END {
    if (n > 0) printf "%.0f%% of one core, %.0f us CPU per request", 100 * t / hz / d, 1e6 * t / hz / n }' "$2"
}
echo
echo "Server process CPU during the measured run: bare $(cpu_line "$BARE_TICKS" "$WORK/wrk-bare.txt");" \
     "server.py $(cpu_line "$APP_TICKS" "$WORK/wrk-app.txt")"
if [[ $ERR_LINES -gt 0 ]]; then
  echo
  echo "server.py stderr (last 10 lines):"
  tail -n 10 "$WORK/app.err"
fi
