#!/usr/bin/env bash
# THE benchmark: the whole production stack under load (supervisor + 2 server.py processes + nginx, as
# scripts/start.sh runs it) against a bare Tornado ceiling behind the same nginx: profile, feed, swipes and the
# login path (the real Aliyun SMS SDK against a local stub). Run with --help for the options.
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
    block (same proxy, keep-alive, gzip and access-log settings), with its own upstream "bare" (same keepalive);
  - the Aliyun SMS stub (python -m tests.stubs.aliyun_sms, run from this repository; it verifies every
    request's ACS3 signature) on 127.0.0.1:BASE+2N+4. The server processes use SWIPER_SMS_BACKEND=aliyun, so
    codes go through the real Aliyun SDK to it, and it writes each code to a file the login script reads.
Fixtures are scripts/bench_social_setup.py's (robots, a viewer whose feed steps over his swipes, swipers) plus
one token from scripts/bench_token.py; the previous run's login users (phones 155xxxxxxxx) are deleted from
MySQL, with their Redis keys, so every run logs in new users. Then, through nginx, wrk --latency with C
connections (each measured run after a 3 s warm-up):
  1. the bare ceiling GET /;
  2. GET /api/v1/profile (valid token);
  3. GET /api/v1/recommendations?limit=10 (the viewer);
  4. POST /api/v1/swipes (scripts/lua/swipes.lua: every request a new pair); afterwards the new swipe rows in
     MySQL must equal the 2xx answers (a surplus up to C is requests in flight when wrk stopped);
  5. login (scripts/lua/login.lua): POST /api/v1/sms-codes for a new phone, then POST /api/v1/sessions with
     the code the stub received, every phone once; the row counts both kinds of request. Every answer must be
     2xx with the expected body, and there must be logins.
Prints one markdown table: path | req/s | p50 | p99 | errors | ratio to ceiling, then the resident memory
(VmRSS) of every server process idle (before any load) and after the runs, then the swipe and login checks;
exits non-zero (after printing) if either check failed.

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
SWIPER_ENV=dev SWIPER_LOG_LEVEL=WARNING SWIPER_RATE_LIMIT_ENABLED=false SWIPER_DRAIN_TIMEOUT=2,
SWIPER_SMS_BACKEND=aliyun with the stub's endpoint (http) and a key made up for the run, and the per-phone and
per-IP SMS limits raised (SWIPER_SMS_HOUR_LIMIT, _DAY_LIMIT, _IP_DAY_LIMIT) so they never throttle the run.
Only 127.0.0.1 is listened on and loaded. Everything started (supervisord, its processes, nginx, the bare
processes, the SMS stub) is stopped on exit, also on failure or Ctrl-C (trap).
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

# --- ports: one block of 2N+4 free ports below the ephemeral range ------------------------------------------
read -r EPH_LOW _ </proc/sys/net/ipv4/ip_local_port_range
NPORTS=$(( 2 * PROCS + 4 ))
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
SMS_PORT=$(( BASE_PORT + 2 * PROCS + 4 ))    # the Aliyun SMS stub

# --- settings: the bench's database, Redis db and prefix; one set for the processes and the Python steps -----
MYSQL_URL=${SWIPER_BENCH_MYSQL_URL:-mysql://root:@127.0.0.1:3306/swiper_bench}
REDIS_URL=${SWIPER_BENCH_REDIS_URL:-redis://127.0.0.1:6379/14}
ACCESS_TTL=$(( 10 * (DURATION + WARMUP) + 1800 ))
STUB_KEY_ID=LTAI-bench-stub
STUB_KEY_SECRET=bench-stub-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
SETTINGS=(
  "SWIPER_ENV=dev"
  "SWIPER_EVENT_LOOP=${SWIPER_EVENT_LOOP:-uvloop}"
  "SWIPER_MYSQL_URL=$MYSQL_URL"
  "SWIPER_REDIS_URL=$REDIS_URL"
  "SWIPER_REDIS_PREFIX=swiper_bench:"
  "SWIPER_SMS_BACKEND=aliyun"
  "SWIPER_ALIYUN_ACCESS_KEY_ID=$STUB_KEY_ID"
  "SWIPER_ALIYUN_ACCESS_KEY_SECRET=$STUB_KEY_SECRET"
  "SWIPER_ALIYUN_SMS_ENDPOINT=127.0.0.1:$SMS_PORT"
  "SWIPER_ALIYUN_SMS_PROTOCOL=http"
  "SWIPER_SMS_HOUR_LIMIT=1000000"
  "SWIPER_SMS_DAY_LIMIT=1000000"
  "SWIPER_SMS_IP_DAY_LIMIT=1000000000"
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
CODES=$WORK/sms-codes  # the stub writes CODES/<phone>
mkdir -p "$COPY" "$OUT" "$CODES"
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
STUB_PID=""

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
  if [[ -n $STUB_PID ]]; then  # after the servers, so none of them sees the SMS provider go away
    [[ $rc -ne 0 ]] && tail -n 10 "$OUT/stub.err" >&2 2>/dev/null
    stop_pid "$STUB_PID" "the SMS stub"
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

# The login row's users: phones 155 + 8 digits (robots are 154..., the bench users 139...). The previous run's
# are deleted with whatever refers to them (preferences: ON DELETE CASCADE), and their Redis keys.
LOGIN_PHONES="phone BETWEEN '15500000000' AND '15599999999'"
LOGIN_USERS="SELECT id FROM user WHERE $LOGIN_PHONES"
sql "$LOGIN_USERS" >"$OUT/login_user_ids" || die "could not read the previous run's login users"
sql "DELETE FROM swipe WHERE user_id IN ($LOGIN_USERS) OR target_id IN ($LOGIN_USERS);
     DELETE FROM \`match\` WHERE user_a IN ($LOGIN_USERS) OR user_b IN ($LOGIN_USERS);
     DELETE FROM user WHERE $LOGIN_PHONES" || die "could not delete the previous run's login users"
LOGIN_KEYS_DELETED=$(timeout 120 "$PY" - "$OUT/login_user_ids" 2>"$OUT/login_keys.err" <<'PY'
import os
import sys

import redis

from services import keys

keys.configure(os.environ["SWIPER_REDIS_PREFIX"])
client = redis.Redis.from_url(os.environ["SWIPER_REDIS_URL"])
names = []
for pattern in (keys.sms_code("155*"), keys.sms_cooldown("155*"), keys.sms_hour("155*"), keys.sms_day("155*"),
                keys.sms_ip_day("*")):
    names.extend(client.scan_iter(match=pattern, count=1000))
with open(sys.argv[1]) as ids:
    for user_id in (int(line) for line in ids if line.strip()):
        names += [keys.model_cache("User", user_id), keys.model_cache_version("User", user_id), keys.active(user_id)]
print(sum(client.delete(*names[i:i + 1000]) for i in range(0, len(names), 1000)))
PY
) || { cat "$OUT/login_keys.err" >&2; die "could not delete the previous run's login keys from Redis"; }
say "deleted $(wc -l <"$OUT/login_user_ids") login users of the previous run and $LOGIN_KEYS_DELETED of their Redis keys"

# --- the SMS stub and the stack ----------------------------------------------------------------------------
# The stub runs from this repository (the copy has no tests/), on 127.0.0.1 only.
"$PY" -m tests.stubs.aliyun_sms --port "$SMS_PORT" --access-key-id "$STUB_KEY_ID" \
  --access-key-secret "$STUB_KEY_SECRET" --codes-dir "$CODES" >"$OUT/stub.out" 2>"$OUT/stub.err" &
STUB_PID=$!
for _ in $(seq 100); do
  kill -0 "$STUB_PID" 2>/dev/null || { cat "$OUT/stub.err" >&2; die "the SMS stub exited during start-up"; }
  grep -q 'listening on' "$OUT/stub.out" && break
  sleep 0.2
done
port_in_use "$SMS_PORT" || die "the SMS stub did not listen on 127.0.0.1:$SMS_PORT within 20 s"
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
post_json() {  # post_json PATH JSON JQ-CONDITION: one POST through nginx; must be a 200 whose body satisfies it
  local code
  code=$(curl -s -o "$OUT/check.body" -w '%{http_code}' --max-time 10 -H 'Content-Type: application/json' \
         --data-binary "$2" "$BASE$1" || true)
  if [[ $code != 200 ]] || ! jq -e "$3" "$OUT/check.body" >/dev/null 2>&1; then
    die "pre-run: POST $1 answered $code: $(head -c 300 "$OUT/check.body" 2>/dev/null)"
  fi
}
CHECK_PHONE=15500000000  # below the phone ranges login.lua uses
post_json /api/v1/sms-codes "{\"phone\":\"$CHECK_PHONE\"}" '.code == 0 and (.data.resend_after | type) == "number"'
[[ -s $CODES/$CHECK_PHONE ]] || die "pre-run: the SMS stub wrote no code for $CHECK_PHONE: $(tail -n 3 "$OUT/stub.err")"
CHECK_CODE=$(<"$CODES/$CHECK_PHONE")
rm -f "$CODES/$CHECK_PHONE"
post_json /api/v1/sessions "{\"phone\":\"$CHECK_PHONE\",\"code\":\"$CHECK_CODE\"}" \
  '.code == 0 and (.data.access_token | type) == "string"'

# --- wrk ------------------------------------------------------------------------------------------------
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
login_count() { sed -n "s/.*login-lua:.* $2=\([0-9]*\).*/\1/p" "$OUT/wrk-$1.txt"; }

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
# login.lua's arguments: CODES_DIR FIRST STRIDE, as offsets after "155": the warm-up's phones from 10,000,000,
# the run's from 20,000,000, split between wrk's threads
LOGIN_LUA=$ROOT/scripts/lua/login.lua
run_wrk login-warm "$WARMUP" -s "$LOGIN_LUA" "$BASE/" -- "$CODES" 10000000 $(( 10000000 / THREADS ))
if [[ $(login_count login-warm non2xx) != 0 || $(login_count login-warm badbody) != 0 \
      || ! $(login_count login-warm sessions) -gt 0 ]]; then
  cat "$OUT/wrk-login-warm.txt" >&2
  die "the login warm-up had failures"
fi
run_wrk login "$DURATION" -s "$LOGIN_LUA" "$BASE/" -- "$CODES" 20000000 $(( 80000000 / THREADS ))
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
LG_CODES=$(login_count login codes); LG_SESSIONS=$(login_count login sessions); LG_NON2XX=$(login_count login non2xx)
LG_BAD=$(login_count login badbody); LG_PENDING=$(login_count login pending); LG_EXHAUSTED=$(login_count login exhausted)
[[ -n $LG_SESSIONS && -n $LG_EXHAUSTED ]] || { cat "$OUT/wrk-login.txt" >&2; die "no login-lua line in wrk login"; }
STUB_REJECTED=$(grep -c 'rejected (' "$OUT/stub.err" || true)
if (( LG_NON2XX == 0 && LG_BAD == 0 && LG_SESSIONS > 0 && LG_EXHAUSTED == 0 && STUB_REJECTED == 0 )); then
  LOGIN_CHECK="OK"
else
  LOGIN_CHECK="FAILED"
fi

# --- report -----------------------------------------------------------------------------------------------
for name in bare profile feed swipe login; do
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
echo "wrk -t $THREADS -c $CONNECTIONS -d ${DURATION}s --latency --timeout 10s, each after a ${WARMUP} s warm-up; SWIPER_LOG_LEVEL=WARNING, rate limits off; event loop: $SWIPER_EVENT_LOOP (server.py and the ceiling alike)"
echo "SMS: SWIPER_SMS_BACKEND=aliyun (the real SDK) to tests/stubs/aliyun_sms.py on 127.0.0.1:$SMS_PORT (http, signatures verified); SMS limits raised"
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
row login "login: \`POST /api/v1/sms-codes\` + \`POST /api/v1/sessions\` (both kinds; new phone each)"
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
LOGINS_PER_S=$(awk -v n="$LG_SESSIONS" -v d="$DURATION" 'BEGIN {printf "%.1f", n / d}')
echo "Login check: $LOGIN_CHECK: $LG_SESSIONS logins (sessions 2xx with an access token; $LOGINS_PER_S/s), $LG_CODES codes sent (sms-codes 2xx), $LG_NON2XX non-2xx, $LG_BAD bad bodies, $LG_PENDING phones still waiting for their login when wrk stopped, $LG_EXHAUSTED requests past a thread's phone range; the SMS stub rejected $STUB_REJECTED requests in the whole run"
ERR_LINES=$(cat "$COPY"/var/log/swiper_*.err.log 2>/dev/null | wc -l)
echo "server.py stderr during the run: $ERR_LINES lines"
(( ERR_LINES == 0 )) || tail -n 10 "$COPY"/var/log/swiper_*.err.log
[[ $SWIPE_CHECK == OK ]] || die "the swipe rows do not match the 2xx answers"
[[ $LOGIN_CHECK == OK ]] || die "the login run had failures (see the Login check line)"
