#!/usr/bin/env bash
# Run Swiper's whole test suite against the local MariaDB and Redis.
set -euo pipefail

case "${1:-}" in
    -h|--help)
        cat <<'EOF'
Usage: scripts/test.sh [PYTEST ARGS...]

Runs `scripts/bootstrap.sh --no-migrate` (packages, MariaDB, Redis, .venv, database user; the tests build
their own database swiper_test_<hex> and drop it), then `.venv/bin/python -m pytest PYTEST ARGS...` from the
repository root. Exits with pytest's exit code. Examples:
  scripts/test.sh                      # everything
  scripts/test.sh -x -q tests/handlers # stop at the first failure, one folder
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

echo "test: .venv/bin/python -m pytest $*"
cd "$ROOT"
exec "${AS_OWNER[@]}" "$ROOT/.venv/bin/python" -m pytest "$@"
