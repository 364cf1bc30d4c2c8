#!/usr/bin/env bash
# Make this (Debian 12) machine ready to run and test Swiper. Safe to run again: it installs only what is
# missing, starts MariaDB/Redis only if they do not answer, and leaves running services alone.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: scripts/bootstrap.sh [--no-migrate] [--help]

Makes a Debian 12 machine ready to run and test Swiper; every step is skipped when already done:
  1. apt-get installs what is missing: python3, python3-venv, python3-dev, curl, build-essential (no C
     compiler), mariadb-server + mariadb-client (no MariaDB on 127.0.0.1:3306 and no mariadbd binary),
     redis-server (no Redis on 127.0.0.1:6379 and no redis-server binary), nginx-light, wrk and rsync
     (no nginx, wrk or rsync binary; scripts/start.sh, restart.sh, deploy.sh and the benchmarks use them).
  2. starts MariaDB and Redis if they do not answer on 127.0.0.1:3306 / 127.0.0.1:6379.
  3. creates or reuses the virtualenv <repo>/.venv and installs requirements-dev.txt into it
     (skipped while .venv/.requirements.sha matches the requirements files).
  4. creates the database and its user (from SWIPER_MYSQL_URL) and grants that user the test
     databases (<test db>_*, from SWIPER_TEST_MYSQL_URL).
  5. runs `scripts/manage.py migrate`.

Options:
  --no-migrate   skip step 5 (the tests build their own schema)
  -h, --help     show this help

Environment:
  SWIPER_MYSQL_URL       mysql://user:pass@host:port/db  (default mysql://swiper:swiper@127.0.0.1:3306/swiper)
  SWIPER_TEST_MYSQL_URL  the tests' server and database-name prefix (default .../swiper_test)
  SWIPER_DB_ADMIN_ARGS   mariadb client arguments for an admin login (default: try `-uroot` over the
                         socket, then `-h127.0.0.1 -uroot` with an empty password)
  SWIPER_NO_DEV=1        install only requirements.txt (no test tools)
  SWIPER_PYTHON          interpreter for a new .venv (default /usr/bin/python3; must be >= 3.11)

Run as root or with sudo (needed only when something must be installed or started). Under sudo, .venv and
the migration run as the owner of the repository.
EOF
}

MIGRATE=1
for arg in "$@"; do
    case "$arg" in
        -h|--help) usage; exit 0 ;;
        --no-migrate) MIGRATE=0 ;;
        *) echo "bootstrap: unknown argument: $arg (see --help)" >&2; exit 2 ;;
    esac
done

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
VENV="$ROOT/.venv"
export DEBIAN_FRONTEND=noninteractive

say() { printf 'bootstrap: %s\n' "$*"; }
die() { printf 'bootstrap: error: %s\n' "$*" >&2; exit 1; }

# Commands that need root: directly as root, else through sudo.
as_root() {
    if [[ $EUID -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -- "$@"
    else
        die "root is needed for: $* (re-run as root or with sudo)"
    fi
}

# Files inside the repository belong to its owner: as root (e.g. under sudo) in someone else's checkout, run
# those steps as that owner.
OWNER_UID="$(stat -c %u "$ROOT")"
AS_OWNER=()
if [[ $EUID -eq 0 && $OWNER_UID -ne 0 ]] && OWNER_NAME="$(id -nu "$OWNER_UID" 2>/dev/null)"; then
    AS_OWNER=(runuser -u "$OWNER_NAME" --)
fi
as_owner() { "${AS_OWNER[@]}" "$@"; }

pkg_installed() { [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == 'install ok installed' ]]; }
have() { local path; path="$(type -P "$1")" && [[ -x $path ]]; }  # type -P alone may name a non-executable file
mysql_client() { command -v mariadb 2>/dev/null || command -v mysql 2>/dev/null; }
have_mariadbd() { [[ -x /usr/sbin/mariadbd || -x /usr/sbin/mysqld ]] || have mariadbd || have mysqld; }
have_redis_server() { [[ -x /usr/bin/redis-server ]] || have redis-server; }

# "Answers" = the server speaks its protocol on the port, not merely that something listens.
# MariaDB greets first: a packet whose 5th byte is 0a (handshake) or ff (an error such as "host not allowed",
# still a server that answers). Reading the greeting needs no account, unlike `mariadb-admin ping`.
mysql_answers() {
    local out
    local -a bytes
    out="$(timeout 3 bash -c 'exec 3<>/dev/tcp/127.0.0.1/3306 && head -c 5 <&3 | od -An -tx1' 2>/dev/null)" || return 1
    read -r -a bytes <<<"$out"
    [[ ${#bytes[@]} -eq 5 && ( ${bytes[4]} == 0a || ${bytes[4]} == ff ) ]]
}
redis_answers() {
    local reply
    reply="$(timeout 3 bash -c 'exec 3<>/dev/tcp/127.0.0.1/6379 && printf "PING\r\n" >&3 && head -n 1 <&3' \
        2>/dev/null)" || return 1
    [[ $reply == +PONG* || $reply == -NOAUTH* ]]
}

# wait_until SECONDS CHECK...: poll CHECK every half second until it succeeds or time runs out.
wait_until() {
    local deadline=$((SECONDS + $1)); shift
    until "$@"; do
        ((SECONDS < deadline)) || return 1
        sleep 0.5
    done
}

systemd_is_pid1() { [[ "$(cat /proc/1/comm 2>/dev/null)" == systemd ]]; }

# 1. System packages -----------------------------------------------------------------------------------------
install_packages() {
    local want=() pkg
    for pkg in python3 python3-venv python3-dev curl; do
        pkg_installed "$pkg" || want+=("$pkg")
    done
    { have cc || have gcc; } && have make || want+=(build-essential)
    if ! mysql_answers && ! have_mariadbd; then
        want+=(mariadb-server mariadb-client)
    elif ! mysql_client >/dev/null; then
        want+=(mariadb-client)  # the database step below needs the client
    fi
    if ! redis_answers && ! have_redis_server; then
        want+=(redis-server)
    fi
    # The production stack (scripts/start.sh, restart.sh, deploy.sh) and the benchmarks.
    [[ -x /usr/sbin/nginx ]] || have nginx || want+=(nginx-light)
    have wrk || want+=(wrk)
    have rsync || want+=(rsync)
    if ((${#want[@]} == 0)); then
        say "system packages: all present"
        return
    fi
    have apt-get || die "missing ${want[*]} and no apt-get here: install them by hand"
    local log
    log="$(mktemp /tmp/swiper-bootstrap-apt.XXXXXX)"
    say "installing with apt-get: ${want[*]} (log: $log)"
    if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >"$log" 2>&1 </dev/null ||
       ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
            -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
            "${want[@]}" >>"$log" 2>&1 </dev/null; then
        tail -n 20 "$log" >&2
        die "apt-get failed (full log: $log)"
    fi
    rm -f "$log"
    say "system packages: installed ${want[*]}"
}

# 2. Services ------------------------------------------------------------------------------------------------
start_mariadb() {
    if mysql_answers; then
        say "MariaDB answers on 127.0.0.1:3306: leaving it alone"
        return
    fi
    if systemd_is_pid1; then
        say "MariaDB not answering: systemctl start mariadb"
        as_root systemctl start mariadb || die "systemctl start mariadb failed (see: journalctl -u mariadb)"
        wait_until 60 mysql_answers || die "MariaDB did not answer on 127.0.0.1:3306 within 60 s (journalctl -u mariadb)"
    else
        if [[ -x /etc/init.d/mariadb ]] && have service; then
            say "MariaDB not answering: service mariadb start"
            local wait=30
            as_root service mariadb start >/dev/null 2>&1 </dev/null || wait=5  # its own check may fail on a server that answers
            if wait_until "$wait" mysql_answers; then
                say "MariaDB started"
                return
            fi
        fi
        local daemon log=/var/log/mysql/swiper-bootstrap.log
        daemon="$(for d in /usr/sbin/mariadbd /usr/sbin/mysqld; do [[ -x $d ]] && echo "$d" && break; done)" ||
            daemon="$(command -v mariadbd || command -v mysqld)" || die "no mariadbd binary found"
        say "MariaDB not answering: starting $daemon with start-stop-daemon (output: $log)"
        as_root install -d -m 755 /var/log/mysql
        if id mysql >/dev/null 2>&1; then
            as_root install -d -o mysql -g mysql -m 755 /run/mysqld
        fi
        as_root start-stop-daemon --start --oknodo --background --output "$log" --exec "$daemon" </dev/null ||
            die "could not start $daemon (see $log)"
        wait_until 60 mysql_answers || die "MariaDB did not answer on 127.0.0.1:3306 within 60 s (see $log)"
    fi
    say "MariaDB started"
}

start_redis() {
    if redis_answers; then
        say "Redis answers on 127.0.0.1:6379: leaving it alone"
        return
    fi
    if systemd_is_pid1; then
        say "Redis not answering: systemctl start redis-server"
        as_root systemctl start redis-server || die "systemctl start redis-server failed (see: journalctl -u redis-server)"
        wait_until 30 redis_answers || die "Redis did not answer on 127.0.0.1:6379 within 30 s (journalctl -u redis-server)"
    else
        if [[ -x /etc/init.d/redis-server ]] && have service; then
            say "Redis not answering: service redis-server start"
            local wait=15
            as_root service redis-server start >/dev/null 2>&1 </dev/null || wait=3
            if wait_until "$wait" redis_answers; then
                say "Redis started"
                return
            fi
        fi
        # No service manager: run it directly as this machine kind's own set-up does (no persistence).
        local server log=/var/log/redis/swiper-bootstrap.log
        server="$(command -v redis-server || echo /usr/bin/redis-server)"
        say "Redis not answering: starting $server --daemonize yes (log: $log)"
        as_root install -d -m 755 /var/log/redis /var/lib/redis
        as_root "$server" --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
            --dir /var/lib/redis --logfile "$log" </dev/null || die "could not start redis-server (see $log)"
        wait_until 30 redis_answers || die "Redis did not answer on 127.0.0.1:6379 within 30 s (see $log)"
    fi
    say "Redis started"
}

# 3. Virtualenv ----------------------------------------------------------------------------------------------
setup_venv() {
    local python="${SWIPER_PYTHON:-}"
    if [[ -z $python ]]; then
        python=/usr/bin/python3
        [[ -x $python ]] || python="$(command -v python3)" || die "no python3 found"
    fi
    local version_ok='import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'
    if [[ -x $VENV/bin/python ]] && "$VENV/bin/python" -c "$version_ok" 2>/dev/null; then
        say "virtualenv: reusing .venv ($("$VENV/bin/python" -V 2>&1))"
    else
        "$python" -c "$version_ok" || die "$python is $("$python" -V 2>&1); Swiper needs Python >= 3.11 (set SWIPER_PYTHON)"
        if [[ -e $VENV ]]; then
            say "virtualenv: .venv does not run a Python >= 3.11; recreating it"
            rm -rf "$VENV"
        fi
        say "virtualenv: creating .venv with $python ($("$python" -V 2>&1))"
        as_owner "$python" -m venv "$VENV"
    fi

    local reqs=requirements-dev.txt mode=dev
    if [[ ${SWIPER_NO_DEV:-0} == 1 ]]; then
        reqs=requirements.txt mode=runtime
    fi
    local stamp="$VENV/.requirements.sha" sha
    sha="$( { echo "$mode"; cat "$ROOT/requirements.txt" "$ROOT/requirements-dev.txt"; } | sha256sum | cut -d' ' -f1)"
    if [[ -f $stamp && "$(cat "$stamp")" == "$sha" ]]; then
        say "python packages: up to date ($reqs)"
        return
    fi
    say "python packages: installing $reqs (a minute on a new .venv)"
    as_owner "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip </dev/null
    as_owner "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$ROOT/$reqs" </dev/null
    printf '%s\n' "$sha" | as_owner tee "$stamp" >/dev/null
    say "python packages: installed"
}

# 4. Database and user ---------------------------------------------------------------------------------------
# parse_url URL -> host, port, user, password, database (NUL-separated), as conf.parse_mysql_url reads it.
parse_url() {
    "$VENV/bin/python" - "$1" <<'PY'
import sys
from urllib.parse import unquote, urlsplit
p = urlsplit(sys.argv[1])
if p.scheme != "mysql" or not p.hostname or not p.path.strip("/"):
    sys.exit("expected mysql://user:pass@host:port/db")
fields = [p.hostname, str(p.port or 3306), unquote(p.username or "root"), unquote(p.password or ""), p.path.strip("/")]
sys.stdout.write("\0".join(fields) + "\0")
PY
}

sql_str() { local s=${1//\\/\\\\}; s=${s//\'/\'\'}; printf "'%s'" "$s"; }
# shellcheck disable=SC2016  # literal backquotes
sql_ident() { printf '`%s`' "${1//\`/\`\`}"; }
sql_like() { local s=${1//\\/\\\\}; s=${s//_/\\_}; printf '%s' "${s//%/\\%}"; }  # a literal name in a GRANT

ADMIN=()
admin_sql() { "${ADMIN[@]}" --batch --skip-column-names "$@"; }

find_admin() {
    local client
    client="$(mysql_client)" || die "no mariadb/mysql client found"
    if [[ -n ${SWIPER_DB_ADMIN_ARGS:-} ]]; then
        local args
        read -r -a args <<<"$SWIPER_DB_ADMIN_ARGS"
        ADMIN=("$client" "${args[@]}")
        admin_sql -e 'SELECT 1' >/dev/null </dev/null || die "cannot log in with SWIPER_DB_ADMIN_ARGS=$SWIPER_DB_ADMIN_ARGS"
        return
    fi
    local tries=("$client -uroot" "$client -h127.0.0.1 -P3306 -uroot")
    [[ $EUID -ne 0 ]] && have sudo && tries+=("sudo $client -uroot")
    local try
    for try in "${tries[@]}"; do
        read -r -a ADMIN <<<"$try"
        if admin_sql -e 'SELECT 1' >/dev/null 2>&1 </dev/null; then
            return
        fi
    done
    die "cannot log in to MariaDB as an admin (tried: ${tries[*]}); set SWIPER_DB_ADMIN_ARGS, e.g. '-uroot -pSECRET'"
}

# ensure_account USER PASSWORD DB-PATTERN...: the user at localhost and 127.0.0.1, with ALL on each pattern.
ensure_account() {
    local user=$1 password=$2; shift 2
    if [[ $user == root ]]; then
        say "database user root: managed by the admin, not by this script"
        return
    fi
    local existing sql="" host pattern
    existing="$(admin_sql -e "SELECT COUNT(*) FROM mysql.user WHERE User = $(sql_str "$user") AND Host IN ('localhost', '127.0.0.1')" </dev/null)"
    if [[ $existing == 2 ]]; then
        say "database user '$user': exists"
    else
        say "database user '$user': creating"
    fi
    for host in localhost 127.0.0.1; do
        sql+="CREATE USER IF NOT EXISTS $(sql_str "$user")@$(sql_str "$host") IDENTIFIED BY $(sql_str "$password");"$'\n'
        for pattern in "$@"; do
            sql+="GRANT ALL PRIVILEGES ON $(sql_ident "$pattern").* TO $(sql_str "$user")@$(sql_str "$host");"$'\n'
        done
    done
    admin_sql <<<"$sql" >/dev/null
}

setup_database() {
    local app tdb test_url
    mapfile -d '' -t app < <(parse_url "${SWIPER_MYSQL_URL:-mysql://swiper:swiper@127.0.0.1:3306/swiper}")
    ((${#app[@]} == 5)) || die "SWIPER_MYSQL_URL: expected mysql://user:pass@host:port/db"
    test_url="${SWIPER_TEST_MYSQL_URL:-mysql://swiper:swiper@127.0.0.1:3306/swiper_test}"
    mapfile -d '' -t tdb < <(parse_url "$test_url")
    ((${#tdb[@]} == 5)) || die "SWIPER_TEST_MYSQL_URL: expected mysql://user:pass@host:port/db"
    local db=${app[4]} user=${app[2]} password=${app[3]}
    local test_pattern
    test_pattern="$(sql_like "${tdb[4]}")\\_%"  # the tests create <test db>_<hex> and drop it afterwards

    find_admin
    if [[ "$(admin_sql -e "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = $(sql_str "$db")" </dev/null)" == 1 ]]; then
        say "database '$db': exists"
    else
        say "database '$db': creating (utf8mb4, utf8mb4_unicode_ci)"
        admin_sql -e "CREATE DATABASE IF NOT EXISTS $(sql_ident "$db") CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci" </dev/null
    fi
    if [[ ${tdb[2]} == "$user" ]]; then
        ensure_account "$user" "$password" "$(sql_like "$db")" "$test_pattern"
    else
        ensure_account "$user" "$password" "$(sql_like "$db")"
        ensure_account "${tdb[2]}" "${tdb[3]}" "$test_pattern"
    fi
    say "grants: ALL on '$db' and on '$test_pattern' (test databases)"

    # The app's own login must work with the URL's password (CREATE USER IF NOT EXISTS keeps an old one).
    if ! MYSQL_PWD="$password" "$(mysql_client)" --protocol=tcp -h"${app[0]}" -P"${app[1]}" -u"$user" \
            -e 'SELECT 1' "$db" >/dev/null 2>&1 </dev/null; then
        die "user '$user' cannot log in to '$db' on ${app[0]}:${app[1]} with the password from SWIPER_MYSQL_URL (an older password? ALTER USER '$user'@'127.0.0.1' IDENTIFIED BY '...')"
    fi
}

# 5. Schema --------------------------------------------------------------------------------------------------
run_migrate() {
    if ((MIGRATE == 0)); then
        say "schema: skipped (--no-migrate)"
        return
    fi
    say "schema: scripts/manage.py migrate"
    (cd "$ROOT" && as_owner "$VENV/bin/python" scripts/manage.py migrate </dev/null) | sed 's/^/bootstrap:   /'
}

install_packages
start_mariadb
start_redis
setup_venv
setup_database
run_migrate
say "done"
