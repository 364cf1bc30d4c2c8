#!/usr/bin/env bash
# Start the production stack: supervisord with N server processes, then nginx in front of them.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: scripts/start.sh [--bootstrap] [--timeout S] [--help]

Starts Swiper's production stack from this directory's own config files and waits until it serves:
  1. runs scripts/bootstrap.sh when .venv, nginx or rsync is missing (or with --bootstrap), with the env
     file's variables, so a first run installs what is missing, creates the database and migrates it;
  2. starts supervisord (supervisor.conf): SWIPER_PROCS processes, process N on 127.0.0.1:(SWIPER_BASE_PORT+N);
     each process reads the env file itself at every (re)start (scripts/lib/run-process.sh);
  3. waits until every process answers 200 on /readyz (MySQL and Redis reachable);
  4. renders nginx.conf into var/nginx/nginx.conf and starts nginx (-p var/nginx/) on
     SWIPER_LISTEN_ADDR:SWIPER_HTTP_PORT (and SWIPER_HTTPS_PORT with SWIPER_TLS=on), then checks that a
     request goes through it.
Already running: says so and exits 0 (scripts/restart.sh restarts, scripts/status.sh shows).
A process not ready within the timeout: the stack is left running (it recovers by itself once MySQL/Redis
answer), the last log lines are shown, and the exit status is 1.

Options:
  --bootstrap   run scripts/bootstrap.sh even if everything seems installed
  --timeout S   seconds to wait for the processes' /readyz (default 60)
  -h, --help    this text

Settings come from the env file SWIPER_ENV_FILE (default conf/swiper.env; see conf/swiper.env.example).
The layout may also be given in the environment, which wins over the file:
  SWIPER_PROCS        [number of cores]  server processes
  SWIPER_BASE_PORT    [9000]             process N listens on 127.0.0.1:(BASE+N)
  SWIPER_LISTEN_ADDR  [127.0.0.1]        nginx's address ('*' = every address)
  SWIPER_HTTP_PORT    [8080]             nginx's HTTP port
  SWIPER_HTTPS_PORT   [8443]             nginx's HTTPS port, with SWIPER_TLS=on
  SWIPER_TLS          [off]              on: HTTPS with SWIPER_TLS_CERT + SWIPER_TLS_KEY, HTTP redirects to it
  SWIPER_SERVER_NAME  [_]                nginx server_name
Everything it writes is under var/: var/run (sockets, pids, layout.env), var/log (supervisord.log,
swiper_NN.out.log / .err.log per process), var/nginx (config, logs/swiper.access.log, temp).
EOF
}

BOOTSTRAP=0
TIMEOUT=60
while [[ $# -gt 0 ]]; do
    case $1 in
        -h|--help) usage; exit 0 ;;
        --bootstrap) BOOTSTRAP=1; shift ;;
        --timeout) [[ ${2:-} =~ ^[0-9]+$ ]] || { echo "start: --timeout needs seconds" >&2; exit 2; }
                   TIMEOUT=$2; shift 2 ;;
        *) echo "start: unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
done

# shellcheck source=scripts/lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
# shellcheck source=scripts/lib/nginx.sh
. "$SWIPER_ROOT/scripts/lib/nginx.sh"

if pid="$(supervisord_pid)"; then
    load_layout || true
    say "already running (supervisord pid $pid); see scripts/status.sh, restart with scripts/restart.sh"
    exit 0
fi

resolve_layout
if [[ ! -f $SWIPER_ENV_FILE ]]; then
    warn "no env file $SWIPER_ENV_FILE: the processes run with the defaults (development settings);" \
         "copy conf/swiper.env.example to it and edit it for anything else"
fi

if ((BOOTSTRAP)) || [[ ! -x $SWIPER_ROOT/.venv/bin/supervisord ]] || [[ -z "$(nginx_bin)" ]] || ! command -v rsync >/dev/null; then
    say "running scripts/bootstrap.sh"
    (load_env_file "$SWIPER_ENV_FILE" && bash "$SWIPER_ROOT/scripts/bootstrap.sh")
fi
[[ -x $SWIPER_ROOT/.venv/bin/supervisord ]] || die "no .venv/bin/supervisord (run scripts/bootstrap.sh)"
[[ -n "$(nginx_bin)" ]] || die "no nginx binary (apt-get install nginx-light, or run scripts/bootstrap.sh)"

check_port_range
port_busy() { timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }
for ((n = 1; n <= SWIPER_PROCS; n++)); do
    port_busy "$(process_port "$n")" && die "127.0.0.1:$(process_port "$n") is already in use (SWIPER_BASE_PORT=$SWIPER_BASE_PORT)"
done
if ! nginx_pid >/dev/null; then
    probe_addr=$SWIPER_LISTEN_ADDR
    [[ -z $probe_addr || $probe_addr == '*' ]] && probe_addr=127.0.0.1
    timeout 1 bash -c "exec 3<>/dev/tcp/$probe_addr/$SWIPER_HTTP_PORT" 2>/dev/null &&
        die "$probe_addr:$SWIPER_HTTP_PORT is already in use (SWIPER_HTTP_PORT=$SWIPER_HTTP_PORT)"
fi

as_owner mkdir -p "$VAR/log" "$VAR/run"
save_layout
say "starting supervisord: $SWIPER_PROCS processes on 127.0.0.1:$((SWIPER_BASE_PORT + 1))..$((SWIPER_BASE_PORT + SWIPER_PROCS)) (env file $SWIPER_ENV_FILE)"
# A clean environment: the processes get exactly the env file (read by run-process.sh), not this shell's.
as_owner env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME="${HOME:-/}" \
    LANG=C.UTF-8 SWIPER_PROCS="$SWIPER_PROCS" SWIPER_BASE_PORT="$SWIPER_BASE_PORT" \
    SWIPER_ENV_FILE="$SWIPER_ENV_FILE" \
    "$SWIPER_ROOT/.venv/bin/supervisord" -c "$SUPERVISOR_CONF" </dev/null
wait_until 15 supervisord_pid >/dev/null || die "supervisord did not start (see var/log/supervisord.log)"
wait_until 15 sup status >/dev/null 2>&1 || true

all_ready() {
    local n
    for ((n = 1; n <= SWIPER_PROCS; n++)); do
        [[ "$(ready_code "$n")" == 200 ]] || return 1
    done
}
started=$SECONDS
if ! wait_until "$TIMEOUT" all_ready; then
    warn "not every process answered 200 on /readyz within ${TIMEOUT} s:"
    sup status >&2 || true
    for ((n = 1; n <= SWIPER_PROCS; n++)); do
        printf '  %s 127.0.0.1:%s /readyz: %s\n' "$(process_name "$n")" "$(process_port "$n")" "$(ready_code "$n")" >&2
    done
    tail -n 15 "$VAR"/log/swiper_01.err.log >&2 2>/dev/null || true
    die "the stack is left running (it recovers by itself when MySQL/Redis answer); scripts/stop.sh stops it"
fi
say "all $SWIPER_PROCS processes ready in $((SECONDS - started)) s"

write_nginx_conf
nginx_ctl -t -q || die "nginx rejected var/nginx/nginx.conf (see above)"
if pid="$(nginx_pid)"; then
    say "nginx already running (pid $pid): reloading"
    nginx_ctl -s reload
else
    nginx_ctl
    wait_until 10 nginx_pid >/dev/null || die "nginx did not start (see var/nginx/logs/error.log)"
fi
addr=$SWIPER_LISTEN_ADDR
[[ -z $addr || $addr == '*' ]] && addr=127.0.0.1
scheme=http port=$SWIPER_HTTP_PORT curl_args=()
if [[ $SWIPER_TLS == on ]]; then
    scheme=https port=$SWIPER_HTTPS_PORT curl_args=(-k)
fi
base="$scheme://$addr:$port"
nginx_serves() { [[ "$(http_code "$base/healthz" "${curl_args[@]}")" == 200 ]]; }
wait_until 10 nginx_serves ||
    die "nginx runs but $base/healthz does not answer 200 (see var/nginx/logs/error.log)"
say "Swiper serves at $base (nginx pid $(nginx_pid); $SWIPER_PROCS processes under supervisord pid $(supervisord_pid))"
say "status: scripts/status.sh   rolling restart: scripts/restart.sh   stop: scripts/stop.sh"
