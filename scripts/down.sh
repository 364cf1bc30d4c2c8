#!/usr/bin/env bash
# Stop the server that scripts/up.sh started.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: scripts/down.sh [--help]

Stops the Swiper server that scripts/up.sh started (pid in var/run/server.pid): SIGTERM, then up to 15 s
for it to finish in-flight requests and exit (SIGKILL after that), then removes the pid file.
Says so and exits 0 when nothing is running. MariaDB and Redis are left running.
EOF
}

for arg in "$@"; do
    case "$arg" in
        -h|--help) usage; exit 0 ;;
        *) echo "down: unknown argument: $arg (see --help)" >&2; exit 2 ;;
    esac
done

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
PIDFILE="$ROOT/var/run/server.pid"
PORTFILE="$ROOT/var/run/server.port"

say() { printf 'down: %s\n' "$*"; }

# The pid in the pid file, if that process is alive and is our server.
running_pid() {
    local pid cmdline
    [[ -f $PIDFILE ]] && pid="$(cat "$PIDFILE" 2>/dev/null)" && [[ $pid =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" && [[ $cmdline == *server.py* ]] || return 1
    echo "$pid"
}

if ! pid="$(running_pid)"; then
    if [[ -f $PIDFILE ]]; then
        say "not running (removed the stale pid file)"
    else
        say "not running"
    fi
    rm -f "$PIDFILE" "$PORTFILE"
    exit 0
fi

say "stopping server.py (pid $pid): SIGTERM, waiting up to 15 s"
kill -TERM "$pid"
deadline=$((SECONDS + 15))
while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
    sleep 0.2
done
if kill -0 "$pid" 2>/dev/null; then
    say "still running after 15 s: sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.5
fi
rm -f "$PIDFILE" "$PORTFILE"
say "stopped"
