# shellcheck shell=bash
# Shared by scripts/{start,stop,status,restart,deploy}.sh and scripts/lib/*.sh: paths, messages, the operator's
# env file, the layout of the running stack, HTTP checks and supervisorctl. Source it; it defines functions only
# (and SWIPER_ROOT / PROG), it runs nothing.

SWIPER_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)"
PROG="${PROG:-$(basename "$0" .sh)}"
SUPERVISOR_CONF="$SWIPER_ROOT/supervisor.conf"
VAR="$SWIPER_ROOT/var"
LAYOUT_FILE="$VAR/run/layout.env"

say() { printf '%s: %s\n' "$PROG" "$*"; }
warn() { printf '%s: warning: %s\n' "$PROG" "$*" >&2; }
die() { printf '%s: error: %s\n' "$PROG" "$*" >&2; exit 1; }

# As root in someone else's checkout (e.g. under sudo) the stack runs as the repository's owner, like up.sh.
OWNER_UID="$(stat -c %u "$SWIPER_ROOT")"
AS_OWNER=()
if [[ $EUID -eq 0 && $OWNER_UID -ne 0 ]] && OWNER_NAME="$(id -nu "$OWNER_UID" 2>/dev/null)"; then
    AS_OWNER=(runuser -u "$OWNER_NAME" --)
fi
as_owner() { "${AS_OWNER[@]}" "$@"; }

# ---- the operator's env file --------------------------------------------------------------------------------
# KEY=VALUE lines (systemd EnvironmentFile style, never executed by a shell): blank lines and lines starting with
# '#' are skipped, an optional leading "export " is allowed, a value wrapped in one pair of '...' or "..." is
# unwrapped, everything else is taken literally ($, spaces and # inside a value included).
env_file_path() { printf '%s\n' "${SWIPER_ENV_FILE:-$SWIPER_ROOT/conf/swiper.env}"; }

# parse_env_file FILE: prints NUL-separated KEY, VALUE pairs; exits non-zero naming a bad line.
parse_env_file() {
    local file=$1 line key value n=0
    while IFS= read -r line || [[ -n $line ]]; do
        n=$((n + 1))
        line="${line%$'\r'}"
        [[ $line =~ ^[[:space:]]*(#|$) ]] && continue
        [[ $line =~ ^[[:space:]]*(export[[:space:]]+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$ ]] ||
            { printf '%s: error: %s line %d is not KEY=VALUE: %s\n' "$PROG" "$file" "$n" "$line" >&2; return 1; }
        key=${BASH_REMATCH[2]} value=${BASH_REMATCH[3]}
        if [[ $value =~ ^\'(.*)\'[[:space:]]*$ || $value =~ ^\"(.*)\"[[:space:]]*$ ]]; then
            value=${BASH_REMATCH[1]}
        else
            value="${value%"${value##*[![:space:]]}"}"  # trailing blanks
        fi
        printf '%s\0%s\0' "$key" "$value"
    done <"$file"
}

# load_env_file FILE: exports every KEY=VALUE of FILE (a missing file is not an error: defaults apply).
load_env_file() {
    local file=$1 pairs i
    [[ -f $file ]] || return 0
    [[ -r $file ]] || die "cannot read $file"
    mapfile -d '' -t pairs < <(parse_env_file "$file"; printf 'rc=%s\0' "$?")
    [[ ${pairs[-1]} == rc=0 ]] || exit 1
    unset 'pairs[-1]'
    for ((i = 0; i < ${#pairs[@]}; i += 2)); do
        export "${pairs[i]}=${pairs[i + 1]}"
    done
}

# env_file_value FILE KEY: the value of KEY in FILE (the last one wins), or nothing.
env_file_value() {
    local file=$1 want=$2 pairs i found=""
    [[ -f $file ]] || return 0
    mapfile -d '' -t pairs < <(parse_env_file "$file")
    for ((i = 0; i < ${#pairs[@]}; i += 2)); do
        [[ ${pairs[i]} == "$want" ]] && found=${pairs[i + 1]}
    done
    printf '%s' "$found"
}

# ---- the layout: how many processes, which ports --------------------------------------------------------------
# Read by start.sh from the environment first, then the env file, then the defaults; written to
# var/run/layout.env for the other scripts, so they act on what is running even if the file changed since.
LAYOUT_VARS=(SWIPER_PROCS SWIPER_BASE_PORT SWIPER_LISTEN_ADDR SWIPER_HTTP_PORT SWIPER_HTTPS_PORT SWIPER_TLS
             SWIPER_TLS_CERT SWIPER_TLS_KEY SWIPER_SERVER_NAME SWIPER_ENV_FILE)

layout_default() {
    case $1 in
        SWIPER_PROCS) nproc 2>/dev/null || echo 2 ;;
        SWIPER_BASE_PORT) echo 9000 ;;
        SWIPER_LISTEN_ADDR) echo 127.0.0.1 ;;
        SWIPER_HTTP_PORT) echo 8080 ;;
        SWIPER_HTTPS_PORT) echo 8443 ;;
        SWIPER_TLS) echo off ;;
        SWIPER_SERVER_NAME) echo _ ;;
        SWIPER_ENV_FILE) env_file_path ;;
        *) echo "" ;;
    esac
}

is_port() { [[ $1 =~ ^[0-9]{1,5}$ ]] && ((10#$1 >= 1 && 10#$1 <= 65535)); }

# resolve_layout: sets every LAYOUT_VARS name (environment > env file > default) and checks the values.
resolve_layout() {
    local file name value
    file="$(env_file_path)"
    SWIPER_ENV_FILE="$file"
    for name in "${LAYOUT_VARS[@]}"; do
        value="${!name:-}"
        [[ -n $value ]] || value="$(env_file_value "$file" "$name")"
        [[ -n $value ]] || value="$(layout_default "$name")"
        printf -v "$name" '%s' "$value"
    done
    # shellcheck disable=SC2015  # either check failing is the error
    [[ $SWIPER_PROCS =~ ^[0-9]+$ ]] && ((SWIPER_PROCS >= 1 && SWIPER_PROCS <= 64)) ||
        die "SWIPER_PROCS=$SWIPER_PROCS: expected 1..64"
    # shellcheck disable=SC2015
    is_port "$SWIPER_BASE_PORT" && ((SWIPER_BASE_PORT + SWIPER_PROCS <= 65535)) ||
        die "SWIPER_BASE_PORT=$SWIPER_BASE_PORT: expected a port (process N listens on BASE+N)"
    is_port "$SWIPER_HTTP_PORT" || die "SWIPER_HTTP_PORT=$SWIPER_HTTP_PORT is not a port"
    is_port "$SWIPER_HTTPS_PORT" || die "SWIPER_HTTPS_PORT=$SWIPER_HTTPS_PORT is not a port"
    case $SWIPER_TLS in
        on|off) ;;
        *) die "SWIPER_TLS=$SWIPER_TLS: expected on or off" ;;
    esac
    if [[ $SWIPER_TLS == on ]]; then
        [[ -r $SWIPER_TLS_CERT && -r $SWIPER_TLS_KEY ]] ||
            die "SWIPER_TLS=on needs readable SWIPER_TLS_CERT and SWIPER_TLS_KEY (got '$SWIPER_TLS_CERT', '$SWIPER_TLS_KEY')"
    fi
}

# check_port_range: the processes' ports must lie outside the kernel's ephemeral range (the local ports of
# outgoing connections) unless reserved (net.ipv4.ip_local_reserved_ports). Otherwise, while a process restarts,
# an outgoing connection (nginx's, the app's) can take its port: the process cannot bind it again, or nginx's
# connection to it meets itself (a TCP self-connect). The ops harness hit both with ports in that range.
check_port_range() {
    local low high reserved="" port first=$((SWIPER_BASE_PORT + 1)) last=$((SWIPER_BASE_PORT + SWIPER_PROCS))
    read -r low high </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || return 0
    reserved="$(cat /proc/sys/net/ipv4/ip_local_reserved_ports 2>/dev/null || true)"
    for ((port = first; port <= last; port++)); do
        ((port < low || port > high)) && continue
        port_reserved "$port" "$reserved" && continue
        die "process port $port (SWIPER_BASE_PORT=$SWIPER_BASE_PORT) is inside the ephemeral port range $low-$high," \
            "where outgoing connections can take it while the process restarts: choose a base below $((low - SWIPER_PROCS))" \
            "or reserve the ports (sysctl -w net.ipv4.ip_local_reserved_ports=$first-$last)"
    done
}

port_reserved() {
    local port=$1 item a b
    local IFS=,
    for item in $2; do
        a=${item%-*} b=${item#*-}
        [[ $a =~ ^[0-9]+$ && $b =~ ^[0-9]+$ ]] || continue
        ((port >= a && port <= b)) && return 0
    done
    return 1
}

save_layout() {
    local name
    as_owner mkdir -p "$VAR/run"
    for name in "${LAYOUT_VARS[@]}"; do
        printf '%s=%s\n' "$name" "${!name}"
    done | as_owner tee "$LAYOUT_FILE.tmp" >/dev/null
    as_owner mv -f "$LAYOUT_FILE.tmp" "$LAYOUT_FILE"
}

# load_layout: the layout of the running stack (from var/run/layout.env); fails when nothing was started.
load_layout() {
    [[ -f $LAYOUT_FILE ]] || return 1
    local pairs i
    mapfile -d '' -t pairs < <(parse_env_file "$LAYOUT_FILE")
    for ((i = 0; i < ${#pairs[@]}; i += 2)); do
        printf -v "${pairs[i]}" '%s' "${pairs[i + 1]}"
    done
}

process_name() { printf 'swiper:swiper_%02d' "$1"; }
process_port() { echo $((SWIPER_BASE_PORT + $1)); }

# ---- HTTP ---------------------------------------------------------------------------------------------------
# http_code URL [CURL ARGS...]: the status code, or 000 when nothing answered within 2 s.
http_code() {
    local url=$1; shift
    curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$@" "$url" 2>/dev/null || true
}

ready_code() { http_code "http://127.0.0.1:$(process_port "$1")/readyz"; }

# ---- supervisor ---------------------------------------------------------------------------------------------
sup() { as_owner "$SWIPER_ROOT/.venv/bin/supervisorctl" -c "$SUPERVISOR_CONF" "$@"; }

supervisord_pid() {
    local pid
    pid="$(cat "$VAR/run/supervisord.pid" 2>/dev/null)" && [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null &&
        [[ "$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" == *supervisord* ]] || return 1
    echo "$pid"
}

# ---- nginx --------------------------------------------------------------------------------------------------
NGINX_PREFIX="$VAR/nginx"
NGINX_CONF="$NGINX_PREFIX/nginx.conf"
nginx_bin() { command -v nginx 2>/dev/null || { [[ -x /usr/sbin/nginx ]] && echo /usr/sbin/nginx; }; }

nginx_pid() {
    local pid
    pid="$(cat "$NGINX_PREFIX/run/nginx.pid" 2>/dev/null)" && [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null &&
        [[ "$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" == *nginx* ]] || return 1
    echo "$pid"
}

nginx_ctl() { as_owner "$(nginx_bin)" -p "$NGINX_PREFIX/" -c "$NGINX_CONF" "$@"; }

# wait_until SECONDS CHECK...: poll CHECK every 0.2 s until it succeeds or time runs out.
wait_until() {
    local deadline=$((SECONDS + $1)); shift
    until "$@"; do
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
}
