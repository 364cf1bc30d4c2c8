#!/usr/bin/env bash
# The whole production stack under load: supervisor + 2 server.py processes + nginx, as scripts/start.sh runs it,
# against a bare Tornado ceiling behind the same nginx. Run with --help for the options.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: bash scripts/bench.sh [--duration S] [--connections C] [--threads T] [--procs N] [--base-port P]
                             [--robots N] [--viewer-swipes N] [--swipers N] [--keep-logs]

Brings up a PRIVATE instance of the production stack from this repository's own files and scripts: the
repository is copied (rsync, without .venv/var/.git/tests; .venv is a symlink to this one's) into a temporary
directory and that copy's scripts/start.sh starts it, so everything it writes (var/run, var/log, var/nginx) is
in the copy and the repository's own var/ and any stack running from it are left alone:
  - supervisord (the copy's supervisor.conf) with N server.py processes (default 2) on 127.0.0.1:BASE+1..BASE+N;
  - nginx (the copy's nginx.conf template, rendered by start.sh) on 127.0.0.1:BASE+2N+1;
  - the ceiling: scripts/bench_bare.py as N processes on 127.0.0.1:BASE+N+1..BASE+2N, behind the SAME nginx
    master/workers on 127.0.0.1:BASE+2N+2 through a second server block that is a copy of Swiper's server
    block (same proxy, keep-alive, gzip and access-log settings), with its own upstream "bare" (same keepalive).
Fixtures are scripts/bench_social_setup.py's (robots, a viewer whose feed steps over his swipes, swipers) plus
one token from scripts/bench_token.py. Then, through nginx, wrk --latency with C connections (each measured run
after a 3 s warm-up):
  1. the bare ceiling GET /;
  2. GET /api/v1/profile (valid token);
  3. GET /api/v1/recommendations?limit=10 (the viewer);
  4. POST /api/v1/swipes (scripts/lua/swipes.lua: every request a new pair); afterwards the new swipe rows in
     MySQL must equal the 2xx answers (a surplus up to C is requests in flight when wrk stopped).
The login path (sms-codes + sessions) is NOT measured by this script (said so in the output).
Prints one markdown table: path | req/s | p50 | p99 | errors | ratio to ceiling, then the resident memory
(VmRSS) of every server process idle (before any load) and after the runs.

Options:
  --duration S       seconds per measured wrk run (default 15; max 600)
  --connections C    wrk connections (default 100, issue 5's setting)
  --threads T        wrk threads (default 2)
  --procs N          server processes, and bare processes (default 2)
  --base-port P      first port of the block used (default: the first free block from 19000 up; every port must
                     lie below the kernel's ephemeral range)
  --robots N         robots in the bench database (default 100000; only missing ones are created)
  --viewer-swipes N  swipes of the feed viewer (default 5000)
  --swipers N        users that post the swipes (default 100)
  --keep-logs        keep the temporary copy (logs, wrk outputs, fixtures); its path is printed
  -h, --help         this text

Fixtures as scripts/bench_social.sh: MySQL SWIPER_BENCH_MYSQL_URL (default
mysql://root:@127.0.0.1:3306/swiper_bench, created/migrated if needed), Redis SWIPER_BENCH_REDIS_URL (default
redis://127.0.0.1:6379/14) with prefix swiper_bench:. The processes read a private env file in the copy:
SWIPER_ENV=dev SWIPER_SMS_BACKEND=console SWIPER_LOG_LEVEL=WARNING SWIPER_RATE_LIMIT_ENABLED=false
SWIPER_DRAIN_TIMEOUT=2. Only 127.0.0.1 is listened on and loaded. Everything started (supervisord, its
processes, nginx, the bare processes) is stopped on exit, also on failure or Ctrl-C (trap).
EOF
}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
BENCH_NAME=bench.sh
# shellcheck source=scripts/lib/bench.sh
source "$ROOT/scripts/lib/bench.sh"
DURATION=15
CONNECTIONS=100
THREADS=2
PROCS=2
BASE_PORT=""
ROBOTS=100000
VIEWER_SWIPES=5000
SWIPERS=100
WARMUP=3
KEEP_LOGS=0
ORIG_ARGS=("$@")

die() { echo "bench.sh: $*" >&2; exit 1; }
say() { echo "bench.sh: $*" >&2; }
need_value() { [[ $# -ge 2 && -n $2 ]] || die "$1 needs a value (see --help)"; }
while [[ $# -gt 0 ]]; do
  case $1 in
    --duration) need_value "$@"; DURATION=$2; shift 2 ;;
    --connections) need_value "$@"; CONNECTIONS=$2; shift 2 ;;
    --threads) need_value "$@"; THREADS=$2; shift 2 ;;
    --procs) need_value "$@"; PROCS=$2; shift 2 ;;
    --base-port) need_value "$@"; BASE_PORT=$2; shift 2 ;;
    --robots) need_value "$@"; ROBOTS=$2; shift 2 ;;
    --viewer-swipes) need_value "$@"; VIEWER_SWIPES=$2; shift 2 ;;
    --swipers) need_value "$@"; SWIPERS=$2; shift 2 ;;
    --keep-logs) KEEP_LOGS=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown option: $1 (see --help)" ;;
  esac
done
for pair in "duration:$DURATION" "connections:$CONNECTIONS" "threads:$THREADS" "procs:$PROCS" "robots:$ROBOTS" \
            "viewer-swipes:$VIEWER_SWIPES" "swipers:$SWIPERS" "base-port:${BASE_PORT:-1}"; do
  [[ ${pair#*:} =~ ^[1-9][0-9]*$ ]] || die "--${pair%%:*} must be a positive integer, got '${pair#*:}'"
done
(( DURATION <= 600 )) || die "--duration is capped at 600 s"
(( THREADS <= CONNECTIONS )) || die "--threads must not exceed --connections"
(( PROCS <= 16 )) || die "--procs is capped at 16"
(( SWIPERS >= THREADS && SWIPERS <= 9999 )) || die "--swipers must be between --threads and 9999"
(( ROBOTS >= 1000 )) || die "--robots must be at least 1000"

PY=${SWIPER_PYTHON:-$ROOT/.venv/bin/python}
[[ -x $PY ]] || die "no $PY (run scripts/bootstrap.sh or set SWIPER_PYTHON)"
[[ -x $ROOT/.venv/bin/supervisord ]] || die "no $ROOT/.venv/bin/supervisord (run scripts/bootstrap.sh)"
for tool in wrk curl timeout jq rsync nginx; do
  command -v "$tool" >/dev/null || [[ $tool == nginx && -x /usr/sbin/nginx ]] \
    || die "$tool is required (apt-get install $tool)"
done

# --- ports: one block of 2N+3 free ports below the ephemeral range ------------------------------------------
read -r EPH_LOW _ </proc/sys/net/ipv4/ip_local_port_range
NPORTS=$(( 2 * PROCS + 3 ))
block_free() {
  local p
  (( $1 + NPORTS < EPH_LOW )) || return 1
  for ((p = $1 + 1; p <= $1 + NPORTS; p++)); do
    port_in_use "$p" && return 1
    ss -Hltn "sport = :$p" 2>/dev/null | grep -q . && return 1
  done
  return 0
}
if [[ -n $BASE_PORT ]]; then
  block_free "$BASE_PORT" || die "ports $((BASE_PORT + 1))..$((BASE_PORT + NPORTS)) are not all free and below the ephemeral range ($EPH_LOW)"
else
  for ((b = 19000; b + NPORTS < EPH_LOW; b += 20)); do
    block_free "$b" && { BASE_PORT=$b; break; }
  done
  [[ -n $BASE_PORT ]] || die "no free block of $NPORTS ports between 19000 and $EPH_LOW"
fi
HTTP_PORT=$(( BASE_PORT + 2 * PROCS + 1 ))
BARE_HTTP_PORT=$(( BASE_PORT + 2 * PROCS + 2 ))
HTTPS_PORT=$(( BASE_PORT + 2 * PROCS + 3 ))  # not listened on (SWIPER_TLS=off); start.sh wants a port

# --- settings: the bench's database, Redis db and prefix; one set for the processes and the Python steps -----
MYSQL_URL=${SWIPER_BENCH_MYSQL_URL:-mysql://root:@127.0.0.1:3306/swiper_bench}
REDIS_URL=${SWIPER_BENCH_REDIS_URL:-redis://127.0.0.1:6379/14}
ACCESS_TTL=$(( 8 * (DURATION + WARMUP) + 1800 ))
SETTINGS=(
  "SWIPER_ENV=dev"
  "SWIPER_MYSQL_URL=$MYSQL_URL"
  "SWIPER_REDIS_URL=$REDIS_URL"
  "SWIPER_REDIS_PREFIX=swiper_bench:"
  "SWIPER_SMS_BACKEND=console"
  "SWIPER_LOG_LEVEL=WARNING"
  "SWIPER_RATE_LIMIT_ENABLED=false"
  "SWIPER_DRAIN_TIMEOUT=2"
  "SWIPER_ACCESS_TOKEN_TTL=$ACCESS_TTL"
  "SWIPER_REFRESH_TOKEN_TTL=$(( ACCESS_TTL + 3600 ))"
)
for kv in "${SETTINGS[@]}"; do export "${kv?}"; done
export PYTHONDONTWRITEBYTECODE=1

# --- the private copy ---------------------------------------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/swiper-bench.XXXXXX")
COPY=$WORK/swiper
OUT=$WORK/out
FX=$WORK/fixtures
mkdir -p "$COPY" "$OUT"
export BENCH_NAME
BARE_PIDS=()
STACK_STARTED=0

stop_stack() {
  local sup_pid ngx_pid
  sup_pid=$(cat "$COPY/var/run/supervisord.pid" 2>/dev/null || true)
  ngx_pid=$(cat "$COPY/var/nginx/run/nginx.pid" 2>/dev/null || true)
  timeout 120 bash "$COPY/scripts/stop.sh" >"$OUT/stop.out" 2>&1 || { say "scripts/stop.sh failed:"; cat "$OUT/stop.out" >&2; }
  # whatever stop.sh could not stop (only the pids this run's copy recorded)
  for pid in $sup_pid $ngx_pid; do
    [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null && { say "pid $pid still running: SIGKILL"; kill -KILL "$pid" 2>/dev/null || true; }
  done
  for pid in "${SERVER_PIDS[@]}"; do
    [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null && { say "server pid $pid still running: SIGKILL"; kill -KILL "$pid" 2>/dev/null || true; }
  done
  return 0
}
SERVER_PIDS=()
WRK_PID=""

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  stop_pid "$WRK_PID" wrk  # timeout(1), which passes SIGTERM on to wrk
  for pid in "${BARE_PIDS[@]}"; do stop_pid "$pid" bench_bare.py; done
  if (( STACK_STARTED )); then
    if [[ $rc -ne 0 ]]; then
      tail -n 20 "$COPY"/var/log/swiper_01.err.log >&2 2>/dev/null
      tail -n 10 "$COPY"/var/nginx/logs/error.log >&2 2>/dev/null
    fi
    stop_stack
  fi
  if (( KEEP_LOGS )); then
    echo "logs kept in $WORK (private copy: $COPY)" >&2
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

rsync -a --exclude /.venv --exclude /var --exclude /.git --exclude /tests --exclude __pycache__ \
  --exclude '/conf/swiper.env' "$ROOT/" "$COPY/"
ln -s "$ROOT/.venv" "$COPY/.venv"
printf '%s\n' "# bench.sh: the private instance's env file" "${SETTINGS[@]}" >"$COPY/conf/bench.env"

# A second server block for the ceiling, in the copy's nginx.conf template: Swiper's server block with its own
# listen port, access log and upstream (the bare processes, same keepalive settings as Swiper's upstream).
bare_servers=""
for ((n = 1; n <= PROCS; n++)); do
  bare_servers+="        server 127.0.0.1:$(( BASE_PORT + PROCS + n )) max_fails=0;"$'\n'
done
awk -v listen="127.0.0.1:$BARE_HTTP_PORT" -v servers="$bare_servers" '
  /^    upstream swiper \{/ { in_up = 1 }
  in_up { up = up $0 "\n"; if ($0 ~ /^    \}/) in_up = 0 }
  /^    server \{/ { in_srv = 1 }
  in_srv { srv = srv $0 "\n"; if ($0 ~ /^    \}/) in_srv = 0 }
  /^    # <<< site/ {
    sub(/upstream swiper/, "upstream bare", up)
    sub(/@@UPSTREAM_SERVERS@@\n/, servers, up)
    gsub(/@@HTTP_LISTEN@@/, listen, srv)
    gsub(/http:\/\/swiper;/, "http://bare;", srv)
    gsub(/swiper\.access\.log/, "bare.access.log", srv)
    gsub(/swiper\.error\.log/, "bare.error.log", srv)
    printf "    # bench.sh: the bare Tornado ceiling (scripts/bench_bare.py) behind the same nginx\n%s\n%s", up, srv
  }
  { print }' "$ROOT/nginx.conf" >"$COPY/nginx.conf"
if ! grep -q 'upstream bare' "$COPY/nginx.conf" || ! grep -q "listen 127.0.0.1:$BARE_HTTP_PORT;" "$COPY/nginx.conf"; then
  die "could not add the bare server block to the copy's nginx.conf"
fi

# --- fixtures (in the real repository, with the bench settings) ---------------------------------------------
ensure_bench_database
cd "$ROOT"
timeout 120 "$PY" scripts/manage.py migrate >"$OUT/migrate.out" 2>&1 \
  || { cat "$OUT/migrate.out" >&2; die "manage.py migrate failed"; }
say "setting up fixtures (the first run creates the robots: ~20 s per 100,000) ..."
timeout 600 "$PY" scripts/bench_social_setup.py --out "$FX" --robots "$ROBOTS" --viewer-swipes "$VIEWER_SWIPES" \
  --swipers "$SWIPERS" 2>"$OUT/setup.err" || { cat "$OUT/setup.err" >&2; die "bench_social_setup.py failed"; }
VIEWER_TOKEN=$(<"$FX/viewer.token")
SWIPER_IDS=$(<"$FX/swipers.ids")
[[ $SWIPER_IDS =~ ^[0-9,]+$ ]] || die "bad swipers.ids in $FX"
[[ $VIEWER_TOKEN =~ ^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$ ]] || die "no viewer JWT in $FX/viewer.token"
TOKEN=$(timeout 60 "$PY" scripts/bench_token.py 2>"$OUT/token.err") \
  || { cat "$OUT/token.err" >&2; die "bench_token.py failed"; }
[[ $TOKEN =~ ^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$ ]] || die "bench_token.py printed no JWT"

# --- the stack ----------------------------------------------------------------------------------------------
for ((n = 1; n <= PROCS; n++)); do
  "$PY" "$ROOT/scripts/bench_bare.py" --port $(( BASE_PORT + PROCS + n )) >"$OUT/bare_$n.out" 2>"$OUT/bare_$n.err" &
  BARE_PIDS+=($!)
done
say "starting the stack from $COPY: $PROCS processes on 127.0.0.1:$((BASE_PORT + 1))..$((BASE_PORT + PROCS)), nginx on 127.0.0.1:$HTTP_PORT (bare: 127.0.0.1:$BARE_HTTP_PORT)"
STACK_STARTED=1
timeout 150 env SWIPER_ENV_FILE="$COPY/conf/bench.env" SWIPER_PROCS="$PROCS" SWIPER_BASE_PORT="$BASE_PORT" \
  SWIPER_LISTEN_ADDR=127.0.0.1 SWIPER_HTTP_PORT="$HTTP_PORT" SWIPER_HTTPS_PORT="$HTTPS_PORT" SWIPER_TLS=off \
  bash "$COPY/scripts/start.sh" --timeout 60 >"$OUT/start.out" 2>&1 \
  || { cat "$OUT/start.out" >&2; die "scripts/start.sh failed"; }
sed 's/^/  /' "$OUT/start.out" >&2
for ((n = 1; n <= PROCS; n++)); do
  pid=$("$COPY/.venv/bin/supervisorctl" -c "$COPY/supervisor.conf" pid "$(printf 'swiper:swiper_%02d' "$n")")
  [[ $pid =~ ^[1-9][0-9]*$ ]] || die "no pid for server process $n (supervisorctl said '$pid')"
  SERVER_PIDS+=("$pid")
done
BASE="http://127.0.0.1:$HTTP_PORT"
BARE_URL="http://127.0.0.1:$BARE_HTTP_PORT/"
wait_for "$BARE_URL" "${BARE_PIDS[0]}" "bench_bare.py behind nginx"

rss() { awk '/^VmRSS:/ {printf "%.1f", $2 / 1024}' "/proc/$1/status" 2>/dev/null || echo "?"; }
declare -A RSS_IDLE
for pid in "${SERVER_PIDS[@]}" "${BARE_PIDS[@]}"; do RSS_IDLE[$pid]=$(rss "$pid"); done

# --- pre-run checks: 200 success envelopes through nginx, every process serving ---------------------------
check_200() {  # check_200 URL N [curl args...]
  local url=$1 n=$2 code
  shift 2
  for _ in $(seq "$n"); do
    code=$(curl -s -o "$OUT/check.body" -w '%{http_code}' --max-time 5 "$@" "$url" || true)
    if [[ $code != 200 ]] || ! grep -q '^{"code":0,\|^{"code": 0,' "$OUT/check.body"; then
      die "pre-run: $url answered $code: $(head -c 300 "$OUT/check.body" 2>/dev/null)"
    fi
  done
}
PROFILE_URL="$BASE/api/v1/profile"
FEED_URL="$BASE/api/v1/recommendations?limit=10"
SWIPE_URL="$BASE/api/v1/swipes"
check_200 "$BARE_URL" 10
check_200 "$PROFILE_URL" 10 -H "Authorization: Bearer $TOKEN"
check_200 "$FEED_URL" 4 -H "Authorization: Bearer $VIEWER_TOKEN"
jq -e '.code == 0 and (.data.items | length) == 10' "$OUT/check.body" >/dev/null \
  || die "pre-run: the feed did not answer 10 items: $(head -c 300 "$OUT/check.body")"

# --- wrk ------------------------------------------------------------------------------------------------
swipe_rows() { sql "SELECT COUNT(*) FROM swipe WHERE user_id IN ($SWIPER_IDS)"; }
settled_swipe_rows() {
  local last now
  last=$(swipe_rows)
  for _ in $(seq 40); do
    sleep 0.5
    now=$(swipe_rows)
    [[ $now == "$last" ]] && { echo "$now"; return 0; }
    last=$now
  done
  die "the swipe count did not settle within 20 s"
}
run_wrk() {  # run_wrk NAME SECONDS wrk-args...
  local name=$1 secs=$2
  shift 2
  say "wrk $name: -t $THREADS -c $CONNECTIONS -d ${secs}s"
  # in the background, so a signal reaches the trap at once (bash defers traps until a foreground child ends)
  timeout $(( secs + 30 )) wrk -t "$THREADS" -c "$CONNECTIONS" -d "${secs}s" --latency --timeout 10s "$@" \
    >"$OUT/wrk-$name.txt" 2>&1 &
  WRK_PID=$!
  wait "$WRK_PID" || { WRK_PID=""; cat "$OUT/wrk-$name.txt" >&2; die "wrk failed ($name)"; }
  WRK_PID=""
  for pid in "${SERVER_PIDS[@]}" "${BARE_PIDS[@]}"; do
    kill -0 "$pid" 2>/dev/null || die "server pid $pid died during wrk $name"
  done
}
lua_count() { sed -n "s/.*swipes-lua:.* $2=\([0-9]*\).*/\1/p" "$OUT/wrk-$1.txt"; }

say "running wrk ($WARMUP s warm-up + $DURATION s per path) ..."
run_wrk bare-warm "$WARMUP" "$BARE_URL"
run_wrk bare "$DURATION" "$BARE_URL"
run_wrk profile-warm "$WARMUP" -H "Authorization: Bearer $TOKEN" "$PROFILE_URL"
run_wrk profile "$DURATION" -H "Authorization: Bearer $TOKEN" "$PROFILE_URL"
run_wrk feed-warm "$WARMUP" -H "Authorization: Bearer $VIEWER_TOKEN" "$FEED_URL"
run_wrk feed "$DURATION" -H "Authorization: Bearer $VIEWER_TOKEN" "$FEED_URL"
LUA=$ROOT/scripts/lua/swipes.lua
run_wrk swipe-warm "$WARMUP" -s "$LUA" "$SWIPE_URL" -- "$FX/swipers.tokens" "$FX/targets.ranges" warm "$THREADS"
[[ $(lua_count swipe-warm non2xx) == 0 && $(lua_count swipe-warm badbody) == 0 && $(lua_count swipe-warm ok) -gt 0 ]] \
  || { cat "$OUT/wrk-swipe-warm.txt" >&2; die "the swipe warm-up had failures"; }
SWIPES_BEFORE=$(settled_swipe_rows)
run_wrk swipe "$DURATION" -s "$LUA" "$SWIPE_URL" -- "$FX/swipers.tokens" "$FX/targets.ranges" run "$THREADS"
SWIPES_AFTER=$(settled_swipe_rows)
declare -A RSS_AFTER
for pid in "${SERVER_PIDS[@]}" "${BARE_PIDS[@]}"; do RSS_AFTER[$pid]=$(rss "$pid"); done

SW_OK=$(lua_count swipe ok); SW_NON2XX=$(lua_count swipe non2xx); SW_BAD=$(lua_count swipe badbody)
SW_WRAPPED=$(lua_count swipe wrapped)
[[ -n $SW_OK ]] || { cat "$OUT/wrk-swipe.txt" >&2; die "no swipes-lua line in wrk swipe"; }
SW_ROWS=$(( SWIPES_AFTER - SWIPES_BEFORE ))
SW_DIFF=$(( SW_ROWS - SW_OK ))
if (( SW_DIFF >= 0 && SW_DIFF <= CONNECTIONS )) && [[ $SW_WRAPPED == 0 ]]; then
  SWIPE_CHECK="OK"
else
  SWIPE_CHECK="FAILED"
fi

# --- report -----------------------------------------------------------------------------------------------
for name in bare profile feed swipe; do
  echo "--- wrk: $name ---"
  cat "$OUT/wrk-$name.txt"
done
echo
BARE_RPS=$(field "$OUT/wrk-bare.txt" rps)
CPU=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
echo "Machine: $(nproc) cores, ${CPU:-unknown CPU}, $(uname -sr); $("$PY" -c 'import sys, tornado; print(f"Python {sys.version.split()[0]}, Tornado {tornado.version}")'); $(nginx -v 2>&1 | sed 's/^nginx version: //')"
echo "Date: $(date -u +%Y-%m-%dT%H:%MZ); code: commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown) (plus any uncommitted changes)"
printf 'Command: bash scripts/bench.sh'
(( ${#ORIG_ARGS[@]} )) && printf ' %q' "${ORIG_ARGS[@]}"
echo
echo "Stack: supervisord + $PROCS server.py (127.0.0.1:$((BASE_PORT + 1))..$((BASE_PORT + PROCS))) behind nginx 127.0.0.1:$HTTP_PORT;" \
     "ceiling: $PROCS bench_bare.py (127.0.0.1:$((BASE_PORT + PROCS + 1))..$((BASE_PORT + 2 * PROCS))) behind the same nginx, 127.0.0.1:$BARE_HTTP_PORT"
echo "wrk -t $THREADS -c $CONNECTIONS -d ${DURATION}s --latency --timeout 10s, each after a ${WARMUP} s warm-up; SWIPER_LOG_LEVEL=WARNING, rate limits off"
echo "Fixtures: $(<"$FX/summary.txt")"
echo
echo "| path | req/s | p50 | p99 | errors | ratio to ceiling |"
echo "|---|---:|---:|---:|---|---:|"
row() {  # row NAME LABEL
  local f=$OUT/wrk-$1.txt rps
  rps=$(field "$f" rps)
  echo "| $2 | $rps | $(field "$f" p50) | $(field "$f" p99) | $(field "$f" errors) | $(awk -v a="$rps" -v b="$BARE_RPS" 'BEGIN {printf "%.2f", a / b}') |"
}
row bare "ceiling: bare Tornado \`GET /\` ($PROCS procs, same nginx)"
row profile "\`GET /api/v1/profile\`"
row feed "\`GET /api/v1/recommendations?limit=10\` (viewer with $VIEWER_SWIPES swipes)"
row swipe "\`POST /api/v1/swipes\` (new pair each)"
echo "| login: \`POST /api/v1/sms-codes\` + \`POST /api/v1/sessions\` | not measured | | | | (not implemented in this script) |"
echo
echo "Resident memory (VmRSS), idle = after start-up before any load, after = after all the runs:"
echo
echo "| process | pid | idle | after |"
echo "|---|---:|---:|---:|"
for ((n = 1; n <= PROCS; n++)); do
  pid=${SERVER_PIDS[n-1]}
  echo "| server.py swiper_$(printf '%02d' "$n") | $pid | ${RSS_IDLE[$pid]} MB | ${RSS_AFTER[$pid]} MB |"
done
for ((n = 1; n <= PROCS; n++)); do
  pid=${BARE_PIDS[n-1]}
  echo "| bench_bare.py $n | $pid | ${RSS_IDLE[$pid]} MB | ${RSS_AFTER[$pid]} MB |"
done
echo
echo "Swipe check: $SWIPE_CHECK: wrk counted $(field "$OUT/wrk-swipe.txt" requests) responses, $SW_OK 2xx with code 0, $SW_NON2XX non-2xx, $SW_BAD bad bodies, $SW_WRAPPED repeated pairs; new swipe rows in MySQL: $SW_ROWS (difference $SW_DIFF; 0..$CONNECTIONS = requests in flight when wrk stopped)"
echo "Login path (sms-codes + sessions): skipped, not implemented in this script."
ERR_LINES=$(cat "$COPY"/var/log/swiper_*.err.log 2>/dev/null | wc -l)
echo "server.py stderr during the run: $ERR_LINES lines"
(( ERR_LINES == 0 )) || tail -n 10 "$COPY"/var/log/swiper_*.err.log
[[ $SWIPE_CHECK == OK ]] || die "the swipe rows do not match the 2xx answers"
