#!/usr/bin/env bash
# The command supervisord runs for one Swiper process (see supervisor.conf):
#   run-process.sh BASE_PORT PROCESS_NUM
# Loads the operator's env file (SWIPER_ENV_FILE, default conf/swiper.env) afresh at every start, so a rolling
# restart picks up its edits; computes the port BASE_PORT + PROCESS_NUM (supervisor does no arithmetic); then
# replaces itself with server.py, so supervisord's SIGTERM reaches Python directly.
set -euo pipefail
case "${1:-}" in
    -h|--help) sed -n '2,6s/^# \{0,1\}//p' "$0"; exit 0 ;;
esac
[[ $# -eq 2 && $1 =~ ^[0-9]+$ && $2 =~ ^[0-9]+$ ]] || { echo "usage: run-process.sh BASE_PORT PROCESS_NUM" >&2; exit 2; }
# shellcheck source=scripts/lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
load_env_file "$(env_file_path)"
export PYTHONUNBUFFERED=1
cd "$SWIPER_ROOT"
exec "$SWIPER_ROOT/.venv/bin/python" "$SWIPER_ROOT/server.py" --port $(($1 + $2))
