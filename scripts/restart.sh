#!/usr/bin/env bash
# Rolling, zero-downtime restart: one server process at a time, each drained, restarted and ready before the next.
set -euo pipefail

usage() {
    cat <<'EOF_USAGE'
Usage: scripts/restart.sh [--timeout S] [--help]

Restarts every server process of the running stack, one at a time; clients see no failed request:
  for each process N (127.0.0.1:BASE+N):
    1. checks that every other process answers 200 on /readyz (else aborts: restarting now would leave
       too few to serve);
    2. `supervisorctl restart swiper:swiper_NN`: SIGTERM, the process drains (stops accepting, so nginx sends
       new requests to the others; finishes in-flight requests; answers `Connection: close` on the
       connections nginx still uses and waits for nginx to close its idle ones), exits 0, is started again;
    3. waits until it answers 200 on /readyz, then goes on to the next.
  A process that is not ready again within the timeout stops the restart: the report names it, shows
  supervisor's status and its last log lines, and the processes not yet restarted are left as they were.
  Finally, if nginx.conf (the template) changed since nginx was started, the rendered config is tested and
  nginx reloaded (a reload may close a few idle client keep-alive connections: only then).
nginx keeps every process in its upstream throughout: a restarting process refuses connections and nginx
passes those requests to another process (proxy_next_upstream error; max_fails=0 so it is used again as soon
as it is back). Taking it out of the upstream with an nginx reload instead was tried and loses requests;
OPERATIONS.md has the figures.
Settings in the env file (SWIPER_ENV_FILE) are read again by every restarted process. The number of processes
and the ports are not: change those with scripts/stop.sh && scripts/start.sh.

Options:
  --timeout S   seconds for one process to be ready again (default 60)
  -h, --help    this text
Exit status: 0 all restarted; 1 aborted (the report says where); 3 the stack is not running.
EOF_USAGE
}

TIMEOUT=60
while [[ $# -gt 0 ]]; do
    case $1 in
        -h|--help) usage; exit 0 ;;
        --timeout) [[ ${2:-} =~ ^[0-9]+$ ]] || { echo "restart: --timeout needs seconds" >&2; exit 2; }
                   TIMEOUT=$2; shift 2 ;;
        *) echo "restart: unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
done

# shellcheck source=scripts/lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
# shellcheck source=scripts/lib/nginx.sh
. "$SWIPER_ROOT/scripts/lib/nginx.sh"

supervisord_pid >/dev/null || { say "not running (scripts/start.sh starts it)"; exit 3; }
load_layout || die "var/run/layout.env is missing: restart the stack with scripts/stop.sh && scripts/start.sh"

abort() {
    local n=$1; shift
    printf '%s: ABORTED at %s (127.0.0.1:%s): %s\n' "$PROG" "$(process_name "$n")" "$(process_port "$n")" "$*" >&2
    echo "supervisor:" >&2
    sup status 2>&1 | sed 's/^/  /' >&2 || true
    local log
    log="$VAR/log/swiper_$(printf '%02d' "$n").err.log"
    if [[ -f $log ]]; then
        echo "last lines of $log:" >&2
        tail -n 20 "$log" | sed 's/^/  /' >&2
    fi
    echo "$PROG: processes restarted before it: ${done_list:-none}; not restarted: the rest. Fix the cause, then run scripts/restart.sh again." >&2
    exit 1
}

started=$SECONDS
done_list=""
say "rolling restart of $SWIPER_PROCS processes"
for ((n = 1; n <= SWIPER_PROCS; n++)); do
    name="$(process_name "$n")"
    port="$(process_port "$n")"
    for ((m = 1; m <= SWIPER_PROCS; m++)); do
        ((m == n)) && continue
        code="$(ready_code "$m")"
        [[ $code == 200 ]] || abort "$n" "$(process_name "$m") is not ready (/readyz: $code): restarting $name now would leave too few processes"
    done
    step=$SECONDS
    old_pid="$(sup pid "$name" 2>/dev/null || true)"
    out="$(sup restart "$name" 2>&1)" || abort "$n" "supervisorctl restart failed: $out"
    [[ $out == *"$name: started"* ]] || abort "$n" "supervisorctl restart said: $out"
    ready_now() { [[ "$(ready_code "$n")" == 200 ]]; }
    wait_until "$TIMEOUT" ready_now || abort "$n" "/readyz is $(ready_code "$n") ${TIMEOUT} s after the restart"
    new_pid="$(sup pid "$name" 2>/dev/null || true)"
    say "$name (127.0.0.1:$port) restarted and ready in $((SECONDS - step)) s (pid $old_pid -> $new_pid)"
    done_list+="${done_list:+ }$name"
done
say "done: $SWIPER_PROCS processes restarted in $((SECONDS - started)) s"

# A deploy may bring a new nginx.conf: reload nginx only when the rendering differs from what it runs.
if npid="$(nginx_pid)" && ! cmp -s <(render_nginx local) "$NGINX_CONF"; then
    render_nginx local | as_owner tee "$NGINX_CONF.new" >/dev/null
    if as_owner "$(nginx_bin)" -p "$NGINX_PREFIX/" -c "$NGINX_CONF.new" -t -q; then
        as_owner mv -f "$NGINX_CONF.new" "$NGINX_CONF"
        nginx_ctl -s reload
        say "nginx.conf changed: nginx (pid $npid) reloaded"
    else
        die "the new nginx.conf is rejected by nginx -t (see above; it is in $NGINX_CONF.new); nginx keeps running the previous one"
    fi
fi
