#!/usr/bin/env bash
# The social core under load: GET /api/v1/recommendations (a viewer who has swiped 5,000 users) and
# POST /api/v1/swipes (every request a new pair), ONE server.py process, wrk. Run with --help for the options.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: bash scripts/bench_social.sh [--duration S] [--connections C] [--threads T] [--port P] [--robots N]
                                    [--viewer-swipes N] [--swipers N] [--no-single] [--profile [S]]
                                    [--wait-quiet S] [--only feed|swipes] [--keep-logs]

With N robots loaded (default 100,000), benchmarks on ONE server.py process with wrk --latency:
  1. GET /api/v1/recommendations?limit=10 for a viewer who has swiped the 5,000 users his feed would show first
     (so every request steps over all of them), at C connections, then at 1 connection (service time);
  2. POST /api/v1/swipes, each request a new (swiper, target) pair made by scripts/lua/swipes.lua (swipers are
     level-2 users: unlimited likes; targets are robots, each read cold from MySQL on its first swipe), at C
     connections, then at 1 connection.
Checks first that the feed answers 200 with 10 items, none of them a swiped user; after each swipe run, that the
new swipe rows in MySQL equal the 2xx answers (a difference up to the number of connections is requests still in
flight when wrk stopped, which the server finishes). Prints the feed query's plan (EXPLAIN, ANALYZE FORMAT=JSON,
Handler_read_* of one execution) and a markdown table: path | conns | req/s | p50 | p99 | errors | non-2xx, with the
CPU each process used per request, the machine and the command.

Options:
  --duration S       seconds per measured wrk run (default 15; the C-connection runs get a 3 s warm-up first)
  --connections C    wrk connections (default 50)
  --threads T        wrk threads (default 2)
  --port P           port for server.py (default 18483)
  --robots N         robots to have in the bench database (default 100000; only missing ones are created)
  --viewer-swipes N  swipes of the feed viewer (default 5000)
  --swipers N        users that post the swipes (default 100; must be >= threads)
  --no-single        skip the 1-connection runs
  --profile [S]      afterwards, one more C-connection run of each endpoint with py-spy recording the server for S
                     seconds (default 10); the collapsed stacks are summarised and kept (implies --keep-logs).
                     py-spy: $SWIPER_PYSPY, else py-spy on PATH, else /root/.venvs/swiper/bin/py-spy
  --wait-quiet S     before each measured run wait up to S seconds (default 0) for 2 s in which the machine's
                     CPUs were at least 85% idle (other work on the box skews every figure; the table's last
                     column shows how busy the CPUs were with processes other than server.py, mariadbd and
                     redis-server during each run: wrk itself plus anything else)
  --only WHAT        run only the feed or only the swipe benchmark
  --keep-logs        keep the fixtures, logs, wrk outputs and query plans (the directory is printed)
  -h, --help         this text

Fixtures (left in place and reused; scripts/bench_social_setup.py is idempotent and resets the swipers' swipes):
  MySQL  SWIPER_BENCH_MYSQL_URL, default mysql://root:@127.0.0.1:3306/swiper_bench (created if missing by
         ${SWIPER_BENCH_MYSQL_ADMIN:-mariadb -uroot}, which also runs the row counts and EXPLAINs), migrated with
         scripts/manage.py migrate.
  Redis  SWIPER_BENCH_REDIS_URL, default redis://127.0.0.1:6379/14, key prefix swiper_bench:
The server runs with SWIPER_ENV=dev SWIPER_SMS_BACKEND=console SWIPER_LOG_LEVEL=WARNING
SWIPER_RATE_LIMIT_ENABLED=false. Python: ${SWIPER_PYTHON:-<repo>/.venv/bin/python}, else python3. Only 127.0.0.1
is ever loaded; every wrk run is bounded by --duration (max 600 s).
EOF
}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DURATION=15
CONNECTIONS=50
THREADS=2
PORT=18483
ROBOTS=100000
VIEWER_SWIPES=5000
SWIPERS=100
SINGLE=1
PROFILE=0
WAIT_QUIET=0
ONLY=""
WARMUP=3
KEEP_LOGS=0
ORIG_ARGS=("$@")

die() { echo "bench_social.sh: $*" >&2; exit 1; }
need_value() { [[ $# -ge 2 && -n $2 ]] || die "$1 needs a value (see --help)"; }
while [[ $# -gt 0 ]]; do
  case $1 in
    --duration) need_value "$@"; DURATION=$2; shift 2 ;;
    --connections) need_value "$@"; CONNECTIONS=$2; shift 2 ;;
    --threads) need_value "$@"; THREADS=$2; shift 2 ;;
    --port) need_value "$@"; PORT=$2; shift 2 ;;
    --robots) need_value "$@"; ROBOTS=$2; shift 2 ;;
    --viewer-swipes) need_value "$@"; VIEWER_SWIPES=$2; shift 2 ;;
    --swipers) need_value "$@"; SWIPERS=$2; shift 2 ;;
    --no-single) SINGLE=0; shift ;;
    --profile)
      if [[ $# -ge 2 && $2 =~ ^[0-9]+$ ]]; then PROFILE=$2; shift 2; else PROFILE=10; shift; fi
      KEEP_LOGS=1 ;;
    --wait-quiet) need_value "$@"; WAIT_QUIET=$2; shift 2 ;;
    --only) need_value "$@"; ONLY=$2; shift 2 ;;
    --keep-logs) KEEP_LOGS=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown option: $1 (see --help)" ;;
  esac
done
for pair in "duration:$DURATION" "connections:$CONNECTIONS" "threads:$THREADS" "port:$PORT" "robots:$ROBOTS" \
            "viewer-swipes:$VIEWER_SWIPES" "swipers:$SWIPERS" "wait-quiet:$WAIT_QUIET"; do
  [[ ${pair#*:} =~ ^[0-9]+$ ]] || die "--${pair%%:*} must be a non-negative integer, got '${pair#*:}'"
done
[[ -z $ONLY || $ONLY == feed || $ONLY == swipes ]] || die "--only must be feed or swipes"
(( DURATION >= 1 && DURATION <= 600 )) || die "--duration must be 1..600 s"
(( PROFILE <= 600 )) || die "--profile is capped at 600 s"
(( CONNECTIONS >= 1 && THREADS >= 1 )) || die "--connections and --threads must be at least 1"
(( THREADS <= CONNECTIONS )) || die "--threads must not exceed --connections"
(( SWIPERS >= THREADS && SWIPERS <= 9999 )) || die "--swipers must be between --threads and 9999"
(( ROBOTS >= 1000 )) || die "--robots must be at least 1000"
(( PORT >= 1 && PORT < 65536 )) || die "--port must be below 65536"

PY=${SWIPER_PYTHON:-$ROOT/.venv/bin/python}
if [[ ! -x $PY ]]; then
  PY=$(command -v python3) || die "no python: set SWIPER_PYTHON or run scripts/bootstrap.sh"
fi
for tool in wrk curl timeout jq; do
  command -v "$tool" >/dev/null || die "$tool is required (apt-get install $tool)"
done
PYSPY=""
if (( PROFILE > 0 )); then
  PYSPY=${SWIPER_PYSPY:-$(command -v py-spy || echo /root/.venvs/swiper/bin/py-spy)}
  [[ -x $PYSPY ]] || die "py-spy not found (set SWIPER_PYSPY or pip install py-spy)"
fi

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
# Tokens are issued before the server starts and must outlive every run; families expire an hour later.
export SWIPER_ACCESS_TOKEN_TTL=$(( 6 * (DURATION + WARMUP) + 2 * PROFILE + 1200 ))
export SWIPER_REFRESH_TOKEN_TTL=$(( SWIPER_ACCESS_TOKEN_TTL + 3600 ))
export PYTHONDONTWRITEBYTECODE=1

WORK=$(mktemp -d "${TMPDIR:-/tmp}/swiper-bench-social.XXXXXX")
BENCH_NAME=bench_social.sh
# shellcheck source=scripts/lib/bench.sh
source "$ROOT/scripts/lib/bench.sh"
FX=$WORK/fixtures
APP_PID=""
SPY_PID=""


cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_pid "$SPY_PID" py-spy
  stop_pid "$APP_PID" server.py
  finish_bench "$rc"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM


# --- database, schema, fixtures ---------------------------------------------------------------------------
prepare_bench_database
cd "$ROOT"
echo "setting up fixtures (the first run creates the robots: ~20 s per 100,000) ..." >&2
timeout 600 "$PY" scripts/bench_social_setup.py --out "$FX" --robots "$ROBOTS" --viewer-swipes "$VIEWER_SWIPES" \
  --swipers "$SWIPERS" 2>"$WORK/setup.err" || { cat "$WORK/setup.err" >&2; die "bench_social_setup.py failed"; }
grep -v ' robots (' "$WORK/setup.err" >&2 || true
VIEWER_ID=$(<"$FX/viewer.id")
VIEWER_TOKEN=$(<"$FX/viewer.token")
SWIPER_IDS=$(<"$FX/swipers.ids")
[[ $VIEWER_ID =~ ^[0-9]+$ && $SWIPER_IDS =~ ^[0-9,]+$ ]] || die "bad fixture files in $FX"
[[ $VIEWER_TOKEN =~ ^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$ ]] || die "no viewer JWT in $FX/viewer.token"

# --- the feed query's plan --------------------------------------------------------------------------------
FEED_SQL=$(<"$FX/feed.sql")
sql "EXPLAIN $FEED_SQL" >"$WORK/explain.tsv"
sql "ANALYZE FORMAT=JSON $FEED_SQL" | sed 's/\\n/\n/g' >"$WORK/analyze.json"
# One execution in a fresh session, counting the handler calls it made (the query's rows go to /dev/null).
sql "FLUSH STATUS; $FEED_SQL; SHOW SESSION STATUS LIKE 'Handler_read%';" | grep '^Handler_read' >"$WORK/handler.tsv"
PLAN_MAIN=$(jq -r '.query_block.nested_loop[0].table | "table \(.table_name): \(.access_type) on \(.key) (\(.used_key_parts | join(", "))), rows read \(.r_rows), kept \(.r_filtered)%, \(.r_engine_stats.pages_accessed // "?") pages, \(.r_table_time_ms + .r_other_time_ms | . * 100 | round / 100) ms"' "$WORK/analyze.json")
PLAN_SUB=$(jq -r '[.query_block.subqueries[]? | if .materialization then "subquery materialised (\(.materialization.r_strategy)): \(.materialization.query_block.nested_loop[0].table | "\(.key) \(.r_rows) rows once"), probed \(.materialization.r_loops) times" else (.query_block // .) as $q | "dependent subquery: \($q.nested_loop[0].table | "\(.access_type) on \(.key), \(.r_loops) probes")" end] | join("; ")' "$WORK/analyze.json")
PLAN_MS=$(jq -r '.query_block.r_total_time_ms | . * 100 | round / 100' "$WORK/analyze.json")
HANDLER=$(awk '$2 > 0 {printf "%s%s=%s", sep, $1, $2; sep = ", "}' "$WORK/handler.tsv")
# Server-side time of the query and of rewrites of it: median r_total_time_ms of 21 ANALYZE runs in one session.
plan_ms() {  # plan_ms FILE [OPTIMIZER_SWITCH]
  local q prefix=""
  q=$(<"$1")
  [[ -n ${2:-} ]] && prefix="SET SESSION optimizer_switch='$2';"
  for _ in $(seq 21); do prefix+=" ANALYZE FORMAT=JSON $q;"; done
  sql "$prefix" | sed 's/\\n/\n/g' | jq -s 'map(.query_block.r_total_time_ms) | sort | .[10] | . * 100 | round / 100'
}
PLAN_TIMES=()
for variant in "feed:" "feed:exists_to_in=off" "feed_covering:" "feed_covering:exists_to_in=off" \
               "feed_watermark:" "feed_watermark:exists_to_in=off"; do
  file=$FX/${variant%%:*}.sql
  [[ -f $file ]] || continue
  PLAN_TIMES+=("$(printf '%-16s %-22s %s ms' "${variant%%:*}" "${variant#*:}" "$(plan_ms "$file" "${variant#*:}")")")
done

# --- server ----------------------------------------------------------------------------------------------
port_in_use "$PORT" && die "port $PORT is taken"
"$PY" server.py --port "$PORT" >"$WORK/app.out" 2>"$WORK/app.err" &
APP_PID=$!
BASE="http://127.0.0.1:$PORT"
FEED_URL="$BASE/api/v1/recommendations?limit=10"
SWIPE_URL="$BASE/api/v1/swipes"
wait_for "$BASE/healthz" "$APP_PID" server.py

# --- pre-run: the feed answers 10 unswiped users ------------------------------------------------------------
for _ in $(seq 20); do
  code=$(curl -s -o "$WORK/feed.json" -w '%{http_code}' --max-time 5 -H "Authorization: Bearer $VIEWER_TOKEN" \
         "$FEED_URL" || true)
  [[ $code == 200 ]] || die "pre-run: the feed answered $code: $(head -c 300 "$WORK/feed.json")"
  jq -e '.code == 0 and (.data.items | length) == 10' "$WORK/feed.json" >/dev/null \
    || die "pre-run: the feed did not answer 10 items: $(head -c 300 "$WORK/feed.json")"
done
FEED_IDS=$(jq -r '[.data.items[].id] | join(",")' "$WORK/feed.json")
[[ $FEED_IDS =~ ^[0-9,]+$ ]] || die "pre-run: no ids in the feed"
SWIPED_SHOWN=$(sql "SELECT COUNT(*) FROM swipe WHERE user_id = $VIEWER_ID AND target_id IN ($FEED_IDS)")
[[ $SWIPED_SHOWN == 0 ]] || die "pre-run: the feed showed $SWIPED_SHOWN users the viewer has swiped ($FEED_IDS)"
VIEWER_SWIPED=$(sql "SELECT COUNT(*) FROM swipe WHERE user_id = $VIEWER_ID")
STEPPED=$(sql "SELECT COUNT(*) FROM swipe s JOIN user u ON u.id = s.target_id WHERE s.user_id = $VIEWER_ID AND u.last_active_at >= (SELECT MAX(last_active_at) FROM user WHERE id IN ($FEED_IDS))")
[[ $STEPPED == "$VIEWER_SWIPED" ]] \
  || die "pre-run: only $STEPPED of the viewer's $VIEWER_SWIPED swiped users are ahead of the page (not the worst case)"
echo "pre-run: the feed answers 200 with 10 items ($FEED_IDS), none swiped; the viewer ($VIEWER_ID) has swiped $VIEWER_SWIPED users, $STEPPED of them more recently active than the page" >&2

# --- wrk runs ----------------------------------------------------------------------------------------------
HZ=$(getconf CLK_TCK 2>/dev/null || echo 100)
listener_pid() {  # listener_pid PORT: the process listening on it (there may be other mariadbd/redis-server processes)
  ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'pid=[0-9]*' | head -n 1 | cut -d= -f2 || true
}
MYSQL_PORT=$(sed -E 's#^mysql://[^/]*:([0-9]+)/.*#\1#; t; s#.*#3306#' <<<"$MYSQL_URL")
REDIS_PORT=$(sed -E 's#^redis://[^/]*:([0-9]+)(/.*)?$#\1#; t; s#.*#6379#' <<<"$REDIS_URL")
MYSQLD_PID=$(listener_pid "$MYSQL_PORT")
REDIS_PID=$(listener_pid "$REDIS_PORT")
[[ -n $MYSQLD_PID && -n $REDIS_PID ]] || echo "bench_social.sh: cannot find the MariaDB or Redis process (ss); their CPU reads 0" >&2
cpu_ticks() { [[ -n $1 ]] && awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }  # utime + stime
busy_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }  # all CPUs: not idle, not iowait
NCPU=$(nproc)
wait_quiet() {  # up to WAIT_QUIET seconds for a 2 s window with the CPUs >= 85% idle
  local deadline=$(( SECONDS + WAIT_QUIET )) b0
  (( WAIT_QUIET > 0 )) || return 0
  while (( SECONDS < deadline )); do
    b0=$(busy_ticks)
    sleep 2
    (( ($(busy_ticks) - b0) * 100 <= 15 * 2 * HZ * NCPU )) && return 0
  done
  echo "  (the machine did not go quiet within ${WAIT_QUIET} s; measuring anyway)" >&2
}
LUA=$ROOT/scripts/lua/swipes.lua
ROWS=()  # markdown rows of the table
NOTES=()


# run_wrk NAME SECONDS CONNS THREADS wrk-args...: runs wrk, records the CPU each process used in $WORK/NAME.cpu
run_wrk() {
  local name=$1 secs=$2 conns=$3 threads=$4
  shift 4
  local out=$WORK/wrk-$name.txt a0 b0 c0 t0
  [[ $name == *warm* ]] || wait_quiet
  a0=$(cpu_ticks "$APP_PID"); b0=$(cpu_ticks "$MYSQLD_PID"); c0=$(cpu_ticks "$REDIS_PID"); t0=$(busy_ticks)
  echo "  wrk $name: -t $threads -c $conns -d ${secs}s (load average before: $(cut -d' ' -f1-3 /proc/loadavg))" >&2
  timeout $(( secs + 30 )) wrk -t "$threads" -c "$conns" -d "${secs}s" --latency --timeout 10s "$@" >"$out" 2>&1 \
    || { cat "$out" >&2; die "wrk failed ($name)"; }
  local a b c t
  a=$(( $(cpu_ticks "$APP_PID") - a0 )); b=$(( $(cpu_ticks "$MYSQLD_PID") - b0 )); c=$(( $(cpu_ticks "$REDIS_PID") - c0 ))
  t=$(( $(busy_ticks) - t0 ))
  echo "$a $b $c" >"$WORK/$name.cpu"
  echo "pids $APP_PID $MYSQLD_PID $REDIS_PID; before $a0 $b0 $c0 $t0; after $(cpu_ticks "$APP_PID") $(cpu_ticks "$MYSQLD_PID") $(cpu_ticks "$REDIS_PID") $(busy_ticks)" \
    >"$WORK/$name.ticks"
  awk -v o=$(( t - a - b - c )) -v ok=$(( a >= 0 && b >= 0 && c >= 0 )) -v hz="$HZ" -v n="$NCPU" -v d="$secs" \
    'BEGIN {if (!ok) printf "n/a"; else printf "%.0f%%", (o > 0 ? 100 * o / (hz * n * d) : 0)}' >"$WORK/$name.other"
  kill -0 "$APP_PID" 2>/dev/null || die "server.py died during wrk $name"
}

cpu_text() {  # cpu_text NAME SECONDS: CPU per request of server.py / mariadbd / redis-server
  local n
  n=$(field "$WORK/wrk-$1.txt" requests)
  read -r a b c <"$WORK/$1.cpu"
  awk -v a="$a" -v b="$b" -v c="$c" -v n="$n" -v hz="$HZ" -v d="$2" 'BEGIN {
    # A counter that went backwards (seen once or twice here for mariadbd and redis-server together) reads n/a.
    if (n > 0) printf "server.py %s (%.0f%% of a core), mariadbd %s, redis %s", us(a, n), 100 * a / hz / d,
      us(b, n), us(c, n) }
    function us(t, n) { return t < 0 ? "n/a" : sprintf("%.0f µs", 1e6 * t / hz / n) }'
}

add_row() {  # add_row NAME LABEL CONNS SECONDS
  local f=$WORK/wrk-$1.txt
  ROWS+=("| $2 | $3 | $(field "$f" rps) | $(field "$f" p50) | $(field "$f" p99) | $(field "$f" socket_errors) | $(field "$f" non2xx) | $(cpu_text "$1" "$4") | $(<"$WORK/$1.other") |")
}

# lua_count NAME KEY: a counter from the swipes-lua line of wrk NAME
lua_count() { sed -n "s/.*swipes-lua:.* $2=\([0-9]*\).*/\1/p" "$WORK/wrk-$1.txt"; }

check_swipes() {  # check_swipes NAME ROWS_BEFORE CONNS: new rows vs 2xx answers
  local name=$1 before=$2 conns=$3 after ok non2xx wrapped rows requests diff
  after=$(settled_swipe_rows)
  ok=$(lua_count "$name" ok); non2xx=$(lua_count "$name" non2xx); wrapped=$(lua_count "$name" wrapped)
  [[ -n $ok ]] || { cat "$WORK/wrk-$name.txt" >&2; die "no swipes-lua line in wrk $name"; }
  [[ $wrapped == 0 ]] || die "wrk $name: $wrapped requests repeated a pair (too few targets for this rate × duration)"
  requests=$(field "$WORK/wrk-$name.txt" requests)
  rows=$(( after - before ))
  diff=$(( rows - ok ))
  NOTES+=("swipes $name: wrk counted $requests responses, $ok 2xx with code 0 (Lua), $non2xx non-2xx; new swipe rows in MySQL: $rows (difference $diff$( ((diff >= 0 && diff <= conns)) && echo ": requests in flight when wrk stopped, finished by the server" || echo ": UNEXPECTED")); $(lua_count "$name" generated) pairs generated, one of them by wrk's check of the script, never sent")
}

echo "running wrk ..." >&2
# Feed
FEED_ARGS=(-H "Authorization: Bearer $VIEWER_TOKEN" "$FEED_URL")
if [[ $ONLY != swipes ]]; then
  run_wrk feed-warm "$WARMUP" "$CONNECTIONS" "$THREADS" "${FEED_ARGS[@]}"
  run_wrk feed "$DURATION" "$CONNECTIONS" "$THREADS" "${FEED_ARGS[@]}"
  add_row feed "\`GET /api/v1/recommendations?limit=10\`" "$CONNECTIONS" "$DURATION"
  if [[ $SINGLE == 1 ]]; then
    run_wrk feed-single "$DURATION" 1 1 "${FEED_ARGS[@]}"
    add_row feed-single "\`GET /api/v1/recommendations?limit=10\`" 1 "$DURATION"
  fi
fi
# Swipes
if [[ $ONLY != feed ]]; then
  run_wrk swipe-warm "$WARMUP" "$CONNECTIONS" "$THREADS" -s "$LUA" "$SWIPE_URL" -- "$FX/swipers.tokens" \
    "$FX/targets.ranges" warm "$THREADS"
  [[ $(lua_count swipe-warm non2xx) == 0 && $(lua_count swipe-warm badbody) == 0 && $(lua_count swipe-warm ok) -gt 0 ]] \
    || { cat "$WORK/wrk-swipe-warm.txt" >&2; tail -n 20 "$WORK/app.err" >&2; die "the swipe warm-up had failures"; }
  BEFORE=$(settled_swipe_rows)
  run_wrk swipe "$DURATION" "$CONNECTIONS" "$THREADS" -s "$LUA" "$SWIPE_URL" -- "$FX/swipers.tokens" \
    "$FX/targets.ranges" run "$THREADS"
  add_row swipe "\`POST /api/v1/swipes\`" "$CONNECTIONS" "$DURATION"
  check_swipes swipe "$BEFORE" "$CONNECTIONS"
  if [[ $SINGLE == 1 ]]; then
    BEFORE=$(settled_swipe_rows)
    run_wrk swipe-single "$DURATION" 1 1 -s "$LUA" "$SWIPE_URL" -- "$FX/swipers.tokens" "$FX/targets.ranges" single 1
    add_row swipe-single "\`POST /api/v1/swipes\`" 1 "$DURATION"
    check_swipes swipe-single "$BEFORE" 1
  fi
fi

# --- optional profiles (separate runs, so py-spy's pauses do not touch the table) ---------------------------
summarise_profile() {  # summarise_profile RAWFILE: where the busy samples are, two ways
  "$PY" - "$1" <<'PYEOF'
import re, sys
from collections import Counter
PACKAGES = ("aiomysql", "pymysql", "peewee_async", "redis", "jwt", "tornado", "asyncio", "json", "async_timeout")
def package(frame):
    m = re.search(r"\(([^():]*):\d+\)$", frame)
    path = m.group(1) if m else frame
    if path == "peewee.py":
        return "peewee"
    for name in PACKAGES:
        if path.startswith(name + "/") or path.startswith(name + "."):
            return name
    if path.startswith(("handlers/", "services/", "models/", "conf/")):
        return "swiper code"
    return "other (stdlib: selectors, contextlib, ...)"
stacks = []
for line in open(sys.argv[1], encoding="utf-8", errors="replace"):
    stack, _, count = line.rstrip("\n").rpartition(" ")
    if count.isdigit():
        stacks.append((stack.split(";"), int(count)))
n = sum(c for _, c in stacks) or 1
own, step = Counter(), Counter()
for frames, c in stacks:
    own[package(frames[-1])] += c
    at = next((i for i, f in enumerate(frames) if re.match(r"\w*Handler\.(get|post|prepare) ", f)), None)
    if at is None:
        step["outside the handler (Tornado reading/parsing/writing, event loop)"] += c
    elif at + 1 < len(frames) and package(frames[at + 1]) == "swiper code":
        key = frames[at].split(" ")[0] + " > " + frames[at + 1]
        if at + 2 < len(frames):  # one level deeper: the next Swiper function, or the library it calls
            nxt = frames[at + 2]
            key += " > " + (nxt.split(" ")[0] if package(nxt) == "swiper code" else package(nxt))
        step[key] += c
    else:
        step[frames[at].split(" ")[0] + " (its own code and direct library calls, e.g. finish)"] += c
print("  by package of the innermost frame (self time):")
for name, c in own.most_common():
    print(f"    {100 * c / n:5.1f}%  {name}")
print("  by step of the handler (inclusive; file:line of the call, then what it calls):")
for name, c in step.most_common(16):
    print(f"    {100 * c / n:5.1f}%  {name}")
print(f"  ({n} busy samples)")
PYEOF
}

profile_run() {  # profile_run NAME wrk-args...
  local name=$1
  shift
  local secs=$(( PROFILE + 4 ))
  "$PYSPY" record -r 100 -d "$PROFILE" -p "$APP_PID" -o "$WORK/prof-$name.txt" --format raw \
    >"$WORK/pyspy-$name.log" 2>&1 &
  SPY_PID=$!
  run_wrk "prof-$name" "$secs" "$CONNECTIONS" "$THREADS" "$@"
  wait "$SPY_PID" || { cat "$WORK/pyspy-$name.log" >&2; die "py-spy failed"; }
  SPY_PID=""
}
if (( PROFILE > 0 )); then
  echo "profiling (py-spy, ${PROFILE} s per endpoint) ..." >&2
  [[ $ONLY == swipes ]] || profile_run feed "${FEED_ARGS[@]}"
  if [[ $ONLY != feed ]]; then
    BEFORE=$(settled_swipe_rows)
    profile_run swipe -s "$LUA" "$SWIPE_URL" -- "$FX/swipers.tokens" "$FX/targets.ranges" prof "$THREADS"
    check_swipes prof-swipe "$BEFORE" "$CONNECTIONS"
  fi
fi

# --- report -----------------------------------------------------------------------------------------------
for name in feed feed-single swipe swipe-single; do
  [[ -f $WORK/wrk-$name.txt ]] || continue
  echo "--- wrk: $name ---"
  cat "$WORK/wrk-$name.txt"
done
echo
CPU=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
echo "Machine: $(nproc) cores, ${CPU:-unknown CPU}, $(uname -sr), $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo); $("$PY" -c 'import sys, tornado; print(f"Python {sys.version.split()[0]}, Tornado {tornado.version}")'); $(timeout 10 "${ADMIN[@]}" -N -e 'SELECT VERSION()'); $(redis-cli -v 2>/dev/null || echo redis)"
echo "Date: $(date -u +%Y-%m-%dT%H:%MZ); code: commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown) (plus any uncommitted changes)"
printf 'Command: SWIPER_PYTHON=%q bash scripts/bench_social.sh' "$PY"
(( ${#ORIG_ARGS[@]} )) && printf ' %q' "${ORIG_ARGS[@]}"
echo
echo "  wrk -t $THREADS -c $CONNECTIONS -d ${DURATION}s --latency --timeout 10s -H \"Authorization: Bearer \$VIEWER_TOKEN\" $FEED_URL"
echo "  wrk -t $THREADS -c $CONNECTIONS -d ${DURATION}s --latency --timeout 10s -s scripts/lua/swipes.lua $SWIPE_URL -- swipers.tokens targets.ranges run $THREADS"
echo "  (the $CONNECTIONS-connection runs after a ${WARMUP} s warm-up; 1-connection runs: -t 1 -c 1; one server.py, SWIPER_LOG_LEVEL=$SWIPER_LOG_LEVEL)"
echo "Fixtures: $(<"$FX/summary.txt")"
echo
echo "Feed query plan (viewer $VIEWER_ID, $VIEWER_SWIPED swipes):"
sed 's/^/  EXPLAIN: /' "$WORK/explain.tsv"
echo "  ANALYZE: $PLAN_MAIN; $PLAN_SUB; total ${PLAN_MS} ms"
echo "  one execution: $HANDLER"
echo "  server time per execution (median of 21 ANALYZE runs), query / optimizer_switch change:"
printf '    %s\n' "${PLAN_TIMES[@]}"
echo
echo "| path | conns | req/s | p50 | p99 | errors | non-2xx | CPU per request | other CPU |"
echo "|---|---:|---:|---:|---:|---|---:|---|---:|"
printf '%s\n' "${ROWS[@]}"
echo
echo "CPU per request: CPU time each process used during the run / requests answered (mariadbd and redis-server count"
echo "any other client's work too). other CPU: share of all $NCPU CPUs busy in processes other than those three"
echo "during the run (wrk itself plus anything else running on the machine)."
echo
printf '%s\n' "${NOTES[@]}"
ERR_LINES=$(wc -l <"$WORK/app.err")
echo "server.py stderr: $ERR_LINES lines"
if [[ $ERR_LINES -gt 0 ]]; then
  tail -n 10 "$WORK/app.err"
fi
if (( PROFILE > 0 )); then
  for name in feed swipe; do
    [[ -f $WORK/prof-$name.txt ]] || continue
    echo
    echo "py-spy, $name ($PROFILE s at 100 Hz while wrk -c $CONNECTIONS ran: $(field "$WORK/wrk-prof-$name.txt" rps) req/s):"
    summarise_profile "$WORK/prof-$name.txt"
  done
  echo "(collapsed stacks: $WORK/prof-*.txt)"
fi
