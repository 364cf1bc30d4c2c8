#!/usr/bin/env bash
# Show the production stack: supervisor's view, each process's /readyz, nginx.
set -euo pipefail

usage() {
    cat <<'EOF_USAGE'
Usage: scripts/status.sh [--help]

Prints, for the stack scripts/start.sh started in this directory:
  - `supervisorctl -c supervisor.conf status` (state, pid, uptime of every process);
  - each process's port and its GET /readyz answer (200 {"mysql": "ok", "redis": "ok"}, or 503 naming what
    is down, or 000 when nothing answers);
  - nginx: its pid, where it listens, and the status of GET /healthz through it.
Exit status: 0 everything serves; 1 something is down or not ready; 3 the stack is not running.
EOF_USAGE
}

for arg in "$@"; do
    case $arg in
        -h|--help) usage; exit 0 ;;
        *) echo "status: unknown argument: $arg (see --help)" >&2; exit 2 ;;
    esac
done

# shellcheck source=scripts/lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

if ! pid="$(supervisord_pid)"; then
    if nginx_pid >/dev/null; then
        say "supervisord is not running, but nginx is (pid $(nginx_pid)): scripts/stop.sh, then scripts/start.sh"
        exit 1
    fi
    say "not running (scripts/start.sh starts it)"
    exit 3
fi
load_layout || die "supervisord runs (pid $pid) but var/run/layout.env is missing: restart with scripts/stop.sh && scripts/start.sh"

healthy=1
echo "supervisord (pid $pid, env file $SWIPER_ENV_FILE):"
sup status | sed 's/^/  /' || healthy=0

echo "processes:"
for ((n = 1; n <= SWIPER_PROCS; n++)); do
    port="$(process_port "$n")"
    body="$(curl -s --max-time 3 -w ' %{http_code}' "http://127.0.0.1:$port/readyz" 2>/dev/null || true)"
    code="${body##* }"
    [[ $code =~ ^[0-9]{3}$ ]] || code=000
    [[ $code == 200 ]] || healthy=0
    printf '  %-18s 127.0.0.1:%-5s readyz %s %s\n' "$(process_name "$n")" "$port" "$code" "${body% *}"
done

echo "nginx:"
if npid="$(nginx_pid)"; then
    addr=$SWIPER_LISTEN_ADDR
    [[ -z $addr || $addr == '*' ]] && addr=127.0.0.1
    code="$(http_code "http://$addr:$SWIPER_HTTP_PORT/healthz")"
    line="  pid $npid, http://$addr:$SWIPER_HTTP_PORT (GET /healthz through nginx: $code"
    expect=200
    if [[ $SWIPER_TLS == on ]]; then
        expect=308
        line+=", a redirect while TLS is on; https://$addr:$SWIPER_HTTPS_PORT: $(http_code "https://$addr:$SWIPER_HTTPS_PORT/healthz" -k)"
        [[ "$(http_code "https://$addr:$SWIPER_HTTPS_PORT/healthz" -k)" == 200 ]] || healthy=0
    fi
    echo "$line)"
    [[ $code == "$expect" ]] || healthy=0
else
    echo "  not running"
    healthy=0
fi

if ((healthy)); then
    echo "status: serving"
    exit 0
fi
echo "status: DEGRADED (see above; logs in var/log/ and var/nginx/logs/)"
exit 1
