#!/usr/bin/env bash
# Bring Swiper up on this machine: bootstrap, then one server process in the background.
# (A later change replaces the single process by supervisor + nginx.)
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: scripts/up.sh [--help]

Runs scripts/bootstrap.sh, then starts one Swiper server process in the background:
  .venv/bin/python server.py --port $SWIPER_PORT
with its output in var/log/server.log and its pid in var/run/server.pid, and waits until
http://127.0.0.1:$SWIPER_PORT/readyz answers 200. Does nothing if the server is already running.
Stop it with scripts/down.sh.

Environment (defaults in brackets; every other SWIPER_* variable reaches the server as is):
  SWIPER_PORT         [8000]
  SWIPER_ENV          [dev]
  SWIPER_SMS_BACKEND  [console]  the console backend writes login codes to var/log/server.log
EOF
}

for arg in "$@"; do
    case "$arg" in
        -h|--help) usage; exit 0 ;;
        *) echo "up: unknown argument: $arg (see --help)" >&2; exit 2 ;;
    esac
done

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
PORT="${SWIPER_PORT:-8000}"
LOG="$ROOT/var/log/server.log"
PIDFILE="$ROOT/var/run/server.pid"
PORTFILE="$ROOT/var/run/server.port"
export SWIPER_ENV="${SWIPER_ENV:-dev}" SWIPER_SMS_BACKEND="${SWIPER_SMS_BACKEND:-console}" PYTHONUNBUFFERED=1

say() { printf 'up: %s\n' "$*"; }
die() { printf 'up: error: %s\n' "$*" >&2; exit 1; }

if ! [[ $PORT =~ ^[0-9]{1,5}$ ]] || ((10#$PORT < 1 || 10#$PORT > 65535)); then
    die "SWIPER_PORT=$PORT is not a port number"
fi
PORT=$((10#$PORT))
BASE="http://127.0.0.1:$PORT"

# As root in someone else's checkout (e.g. under sudo), the server runs as the repository's owner.
OWNER_UID="$(stat -c %u "$ROOT")"
AS_OWNER=()
if [[ $EUID -eq 0 && $OWNER_UID -ne 0 ]] && OWNER_NAME="$(id -nu "$OWNER_UID" 2>/dev/null)"; then
    AS_OWNER=(runuser -u "$OWNER_NAME" --)
fi

# The pid in the pid file, if that process is alive and is our server.
running_pid() {
    local pid cmdline
    [[ -f $PIDFILE ]] && pid="$(cat "$PIDFILE" 2>/dev/null)" && [[ $pid =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" && [[ $cmdline == *server.py* ]] || return 1
    echo "$pid"
}

if pid="$(running_pid)"; then
    say "already running (pid $pid, http://127.0.0.1:$(cat "$PORTFILE" 2>/dev/null || echo "?")); nothing to do (stop it with scripts/down.sh)"
    exit 0
fi
if timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT" 2>/dev/null; then
    die "something else already listens on 127.0.0.1:$PORT; stop it or choose another SWIPER_PORT"
fi

bash "$ROOT/scripts/bootstrap.sh"

"${AS_OWNER[@]}" mkdir -p "$ROOT/var/log" "$ROOT/var/run"
rm -f "$PIDFILE" "$PORTFILE"
printf '=== %s up.sh: server.py --port %s (SWIPER_ENV=%s, SWIPER_SMS_BACKEND=%s)\n' \
    "$(date '+%F %T')" "$PORT" "$SWIPER_ENV" "$SWIPER_SMS_BACKEND" | "${AS_OWNER[@]}" tee -a "$LOG" >/dev/null
say "starting server.py on port $PORT (log: var/log/server.log)"
# setsid: its own session, so closing this terminal does not stop it; the inner shell records its own pid,
# which exec hands on to python.
cd "$ROOT"
# shellcheck disable=SC2016  # $$, $1 and $@ belong to the inner shell
setsid "${AS_OWNER[@]}" bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$PIDFILE" \
    "$ROOT/.venv/bin/python" server.py --port "$PORT" >>"$LOG" 2>&1 </dev/null &
echo "$PORT" | "${AS_OWNER[@]}" tee "$PORTFILE" >/dev/null

deadline=$((SECONDS + 20))
status=""
while ((SECONDS < deadline)); do
    status="$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$BASE/readyz" || true)"
    [[ $status == 200 ]] && break
    sleep 0.5
    if [[ -f $PIDFILE ]] && ! running_pid >/dev/null; then
        status=exited
        break
    fi
done
if [[ $status != 200 ]]; then
    echo "up: error: $BASE/readyz did not answer 200 within 20 s (last: ${status:-no answer}); last 30 log lines:" >&2
    tail -n 30 "$LOG" >&2
    if running_pid >/dev/null; then
        echo "up: stopping the server that did not become ready" >&2
        bash "$ROOT/scripts/down.sh" >&2
    fi
    rm -f "$PIDFILE" "$PORTFILE"
    exit 1
fi

pid="$(running_pid)"
cat <<EOF
up: Swiper is up at $BASE (pid $pid, SWIPER_ENV=$SWIPER_ENV, SWIPER_SMS_BACKEND=$SWIPER_SMS_BACKEND)

Log in (any mainland mobile number):
  curl -s -X POST $BASE/api/v1/sms-codes -H 'Content-Type: application/json' -d '{"phone": "13800138000"}'
EOF
if [[ $SWIPER_SMS_BACKEND == console ]]; then
    cat <<EOF
  grep 'SMS code for' $LOG | tail -n 1    # the console SMS backend writes the code here
EOF
fi
cat <<EOF
  curl -s -X POST $BASE/api/v1/sessions -H 'Content-Type: application/json' -d '{"phone": "13800138000", "code": "123456"}'
(use the code you received; the answer holds access_token and refresh_token)

Log: $LOG
Stop: scripts/down.sh
EOF
