#!/usr/bin/env bash
# Stop the production stack started by scripts/start.sh: drain the processes, then stop supervisord and nginx.
set -euo pipefail

usage() {
    cat <<'EOF_USAGE'
Usage: scripts/stop.sh [--help]

Stops what scripts/start.sh started in this directory:
  1. `supervisorctl stop swiper:*`: every process gets SIGTERM and drains (finishes in-flight requests, lets
     nginx drop its keep-alive connections, exits 0) within SWIPER_DRAIN_TIMEOUT; supervisord SIGKILLs one that
     is still there after stopwaitsecs (30 s). Meanwhile nginx answers new requests 503 `unavailable`;
  2. shuts supervisord down;
  3. `nginx -s quit` (graceful), SIGKILL after 30 s.
Nothing running: says so and exits 0. MariaDB and Redis are left alone.
EOF_USAGE
}

for arg in "$@"; do
    case $arg in
        -h|--help) usage; exit 0 ;;
        *) echo "stop: unknown argument: $arg (see --help)" >&2; exit 2 ;;
    esac
done

# shellcheck source=scripts/lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

stopped_something=0
if pid="$(supervisord_pid)"; then
    stopped_something=1
    say "stopping the server processes (each drains first)"
    sup stop 'swiper:*' || warn "supervisorctl stop reported a problem (see var/log/supervisord.log)"
    say "shutting down supervisord (pid $pid)"
    sup shutdown >/dev/null || kill -TERM "$pid" 2>/dev/null || true
    if ! wait_until 40 bash -c "! kill -0 $pid 2>/dev/null"; then
        warn "supervisord still running after 40 s: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
fi

if pid="$(nginx_pid)"; then
    stopped_something=1
    say "stopping nginx (pid $pid): graceful quit"
    nginx_ctl -s quit 2>/dev/null || kill -QUIT "$pid" 2>/dev/null || true
    if ! wait_until 30 bash -c "! kill -0 $pid 2>/dev/null"; then
        warn "nginx still running after 30 s: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
fi

rm -f "$LAYOUT_FILE"
if ((stopped_something)); then
    say "stopped"
else
    say "not running"
fi
