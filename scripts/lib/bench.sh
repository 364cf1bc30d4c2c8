#!/usr/bin/env bash
# What the benchmark scripts share: stopping what they started, waiting for a server, the bench database.
# Sourced by scripts/bench.sh (the full stack) and scripts/bench_social.sh (one process); only functions, which
# read die(), BENCH_NAME, WORK, KEEP_LOGS and MYSQL_URL from the script when they are called.

stop_pid() {  # stop_pid PID NAME: SIGTERM, wait up to 5 s, then SIGKILL
  local pid=$1 name=$2
  [[ -n $pid ]] || return 0
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "$BENCH_NAME: $name (pid $pid) ignored SIGTERM for 5 s; killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

finish_bench() {  # finish_bench RC: on failure show server.py's last errors; keep or remove the work directory
  local rc=$1
  if [[ $rc -ne 0 && -s $WORK/app.err ]]; then
    echo "--- server.py stderr (last 20 lines) ---" >&2
    tail -n 20 "$WORK/app.err" >&2
  fi
  if [[ $KEEP_LOGS == 1 ]]; then
    echo "logs kept in $WORK" >&2
  else
    rm -rf "$WORK"
  fi
}

field() {  # field WRK_OUTPUT WHAT: rps | requests | p50 | p99 | socket_errors | non2xx | errors (both kinds)
  case $2 in
    rps) awk '/^Requests\/sec:/ {print $2}' "$1" ;;
    requests) awk '/ requests in / {print $1}' "$1" ;;
    p50) awk '$1 == "50%" {print $2}' "$1" ;;
    p99) awk '$1 == "99%" {print $2}' "$1" ;;
    socket_errors)
      awk '/Socket errors:/ {gsub(",", ""); for (i = 3; i < NF; i += 2) if ($(i+1) > 0) e = e sprintf("%s%s %s", e ? ", " : "", $i, $(i+1))}
           END {print e ? e : "0"}' "$1" ;;
    non2xx) awk '/Non-2xx or 3xx responses:/ {n = $NF} END {print n ? n : 0}' "$1" ;;
    errors)
      awk '/Socket errors:/ {gsub(",", ""); for (i = 3; i < NF; i += 2) if ($(i+1) > 0) e = e sprintf("%s%s %s", e ? ", " : "", $i, $(i+1))}
           /Non-2xx or 3xx responses:/ {e = e sprintf("%snon-2xx %s", e ? ", " : "", $NF)}
           END {print e ? e : "0"}' "$1" ;;
  esac
}

sql() { timeout 60 "${ADMIN[@]}" -N -B "$DB_NAME" -e "$1"; }  # sql QUERY: tab-separated rows, no header (after ensure_bench_database)

swipe_rows() { sql "SELECT COUNT(*) FROM swipe WHERE user_id IN ($SWIPER_IDS)"; }  # the bench swipers' rows
settled_swipe_rows() {  # the swipers' row count once the server has finished what wrk left in flight
  local last now
  last=$(swipe_rows)
  for _ in $(seq 40); do
    sleep 0.5
    now=$(swipe_rows)
    [[ $now == "$last" ]] && { echo "$now"; return 0; }
    last=$now
  done
  die "the swipe count did not settle within 20 s"
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() {  # wait_for URL PID NAME: up to 20 s for a 200
  local url=$1 pid=$2 name=$3
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || die "$name exited during start-up"
    [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$url" || true) == 200 ]] && return 0
    sleep 0.2
  done
  die "$name did not answer 200 on $url within 20 s"
}

ensure_bench_database() {  # creates MYSQL_URL's database if missing and grants it to its user; sets DB_NAME, ADMIN
  local db_user host
  DB_NAME=${MYSQL_URL##*/}
  db_user=${MYSQL_URL#mysql://}
  db_user=${db_user%%[:@]*}
  [[ $DB_NAME =~ ^[A-Za-z0-9_]+$ ]] || die "bad database name in SWIPER_BENCH_MYSQL_URL: '$DB_NAME'"
  [[ $db_user =~ ^[A-Za-z0-9_]+$ ]] || die "bad user in SWIPER_BENCH_MYSQL_URL: '$db_user'"
  read -r -a ADMIN <<<"${SWIPER_BENCH_MYSQL_ADMIN:-mariadb -uroot}"
  command -v "${ADMIN[0]}" >/dev/null || die "${ADMIN[0]} not found (set SWIPER_BENCH_MYSQL_ADMIN)"
  timeout 30 "${ADMIN[@]}" -e "CREATE DATABASE IF NOT EXISTS \`$DB_NAME\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci" \
    || die "cannot create database $DB_NAME as '${ADMIN[*]}'"
  if [[ $db_user != root ]]; then
    for host in $(timeout 30 "${ADMIN[@]}" -N -e "SELECT host FROM mysql.user WHERE user='$db_user'"); do
      timeout 30 "${ADMIN[@]}" -e "GRANT ALL PRIVILEGES ON \`$DB_NAME\`.* TO '$db_user'@'$host'"
    done
  fi
}

prepare_bench_database() {  # the database (see ensure_bench_database) and its schema; needs PY, ROOT, WORK
  ensure_bench_database
  timeout 120 "$PY" "$ROOT/scripts/manage.py" migrate >"$WORK/migrate.out" 2>&1 \
    || { cat "$WORK/migrate.out" >&2; die "manage.py migrate failed"; }
}
