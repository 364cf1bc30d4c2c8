#!/usr/bin/env bash
# A stand-in for ssh in tests: `fake_ssh.sh HOST COMMAND...` runs COMMAND here, the way sshd would run it on HOST
# (one string for a shell). Lets the tests drive deploy.sh's user@host:path path, rsync -e included, with no sshd.
set -euo pipefail
[[ $# -ge 2 ]] || { echo "usage: fake_ssh.sh HOST COMMAND..." >&2; exit 2; }
shift
exec bash -c "$*"
