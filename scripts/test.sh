#!/usr/bin/env bash
# Run Swiper's whole test suite against the local MariaDB and Redis.
set -euo pipefail

case "${1:-}" in
    -h|--help)
        cat <<'EOF'
Usage: scripts/test.sh [PYTEST ARGS...]

Runs `scripts/bootstrap.sh --no-migrate` (packages, MariaDB, Redis, .venv, database user; the tests build
their own database swiper_test_<hex> and drop it), then `.venv/bin/python -m pytest PYTEST ARGS...` from the
repository root. Without arguments (what .ci/run does) it then runs the Redis-dependent tests again against a
local 3-master Redis Cluster the tests start and remove themselves (SWIPER_TEST_REDIS_CLUSTER=1; the files are
REDIS_CLUSTER_TESTS below, covering every service that uses Redis). Exits with pytest's exit code. Examples:
  scripts/test.sh                      # everything, then the Redis tests on a cluster
  scripts/test.sh -x -q tests/handlers # stop at the first failure, one folder
  SWIPER_TEST_REDIS_CLUSTER=1 scripts/test.sh tests/handlers/test_swipes.py   # one file on a cluster
EOF
        exit 0 ;;
esac

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"

bash "$ROOT/scripts/bootstrap.sh" --no-migrate

# As root in someone else's checkout (e.g. under sudo), the tests run as the repository's owner.
OWNER_UID="$(stat -c %u "$ROOT")"
AS_OWNER=()
if [[ $EUID -eq 0 && $OWNER_UID -ne 0 ]] && OWNER_NAME="$(id -nu "$OWNER_UID" 2>/dev/null)"; then
    AS_OWNER=(runuser -u "$OWNER_NAME" --)
fi

# Every service that uses Redis, through its tests: SMS codes, sessions and revocation, the model cache and the
# local caches' pub/sub, quotas, swipes, feeds, rankings, rate limits, location budgets, chat events, sockets and
# tickets (also across server processes), periodic jobs, payment reconciliation, blocks, bans across processes,
# account deletion (which scans Redis for what is left), and the slot checks themselves.
REDIS_CLUSTER_TESTS=(
    tests/services/test_redis_slots.py tests/handlers/test_sms_codes.py tests/handlers/test_sessions.py
    tests/handlers/test_swipes.py tests/handlers/test_chat.py tests/handlers/test_events.py
    tests/handlers/test_social_lists.py tests/handlers/test_location.py tests/handlers/test_profile.py
    tests/handlers/test_vip.py tests/handlers/test_ratelimit.py tests/handlers/test_feed_distance.py
    tests/services/test_feed.py tests/services/test_jobs.py tests/services/test_local_cache.py
    tests/test_chat_processes.py tests/test_social_processes.py tests/payments/test_reconcile.py
    tests/handlers/test_blocks.py tests/handlers/test_account_deletion.py tests/test_bans.py
)

cd "$ROOT"
echo "test: .venv/bin/python -m pytest $*"
if [[ $# -gt 0 ]]; then
    exec "${AS_OWNER[@]}" "$ROOT/.venv/bin/python" -m pytest "$@"
fi
"${AS_OWNER[@]}" "$ROOT/.venv/bin/python" -m pytest
echo "test: SWIPER_TEST_REDIS_CLUSTER=1 .venv/bin/python -m pytest (the Redis tests on a local Redis Cluster)"
exec "${AS_OWNER[@]}" env SWIPER_TEST_REDIS_CLUSTER=1 "$ROOT/.venv/bin/python" -m pytest "${REDIS_CLUSTER_TESTS[@]}"
