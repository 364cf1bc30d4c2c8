#!/usr/bin/env bash
# Deploy a release into a target directory (local, or [user@]host:/path over rsync + ssh), migrate, roll it out.
set -euo pipefail

usage() {
    cat <<'EOF_USAGE'
Usage: scripts/deploy.sh [--source DIR] [--no-start] TARGET
       TARGET is a local directory, or [user@]host:/absolute/path (rsync over ssh)

Puts the release in SOURCE (default: this repository's working tree, without what .gitignore lists, .git and
conf/swiper.env) into TARGET without stopping the service:
  1. stages it in TARGET/var/deploy/next/ (rsync; over ssh for host:path), with a .release file naming
     the source, its git commit and the time;
  2. on the target, from the staged release's own copy of this script:
     a. creates TARGET/.venv when missing and installs requirements.txt into it (skipped while
        .venv/.deploy-requirements.sha matches);
     b. runs the staged `scripts/manage.py migrate` with TARGET's env file (TARGET/conf/swiper.env, which must
        exist: copy conf/swiper.env.example there and edit it first);
     c. copies the staged release over TARGET (rsync --delete; TARGET/.venv, TARGET/var and
        TARGET/conf/swiper.env are kept);
     d. TARGET's stack running: scripts/restart.sh (rolling, zero downtime); not running: scripts/start.sh
        (unless --no-start).
  If step a or b fails, TARGET's files are not touched and the running version keeps serving (and a process
  that supervisor restarts meanwhile still runs the old code). One deploy at a time per TARGET (a lock file).

Options:
  --source DIR   the release to deploy (a Swiper tree; default: this repository)
  --no-start     do not start the stack when it is not running (a running one is still restarted)
  -h, --help     this text
Environment:
  SWIPER_DEPLOY_SSH   the remote shell for host:path targets (default: ssh); used by rsync -e and to run step 2
  SWIPER_PYTHON       the interpreter for a new TARGET/.venv (default /usr/bin/python3, must be >= 3.11)
On a real host, TARGET needs bash, rsync, python3 with venv, nginx and curl (scripts/bootstrap.sh installs them).
EOF_USAGE
}

SOURCE=""
NO_START=0
ACTIVATE=0
TARGET=""
while [[ $# -gt 0 ]]; do
    case $1 in
        -h|--help) usage; exit 0 ;;
        --source) [[ -n ${2:-} ]] || { echo "deploy: --source needs a directory" >&2; exit 2; }
                  SOURCE=$2; shift 2 ;;
        --no-start) NO_START=1; shift ;;
        --activate) ACTIVATE=1; shift ;;  # internal: step 2, run on the target from the staged release
        -*) echo "deploy: unknown option: $1 (see --help)" >&2; exit 2 ;;
        *) [[ -z $TARGET ]] || { echo "deploy: one TARGET only (see --help)" >&2; exit 2; }
           TARGET=$1; shift ;;
    esac
done
[[ -n $TARGET ]] || { echo "deploy: TARGET is missing (see --help)" >&2; exit 2; }

PROG=deploy
# shellcheck source=scripts/lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

RSYNC_EXCLUDES=(--exclude=/.git --exclude=/conf/swiper.env --filter=':- .gitignore')
KEEP_ON_TARGET=(--exclude=/.venv --exclude=/var --exclude=/conf/swiper.env)

# ---- step 2: on the target ----------------------------------------------------------------------------------
activate() {
    local target=$1 staged="$1/var/deploy/next" env_file venv="$1/.venv" python sha stamp
    [[ -f $staged/server.py ]] || die "nothing staged in $staged"
    exec 9>"$target/var/deploy/lock"
    flock -n 9 || die "another deploy into $target is running"
    env_file="${SWIPER_ENV_FILE:-$target/conf/swiper.env}"
    [[ -f $env_file ]] || die "no env file $env_file: copy conf/swiper.env.example there and edit it (nothing was changed)"
    say "release: $(tr '\n' ' ' <"$staged/.release" 2>/dev/null)"

    # a. the virtualenv
    if [[ ! -x $venv/bin/python ]]; then
        python="${SWIPER_PYTHON:-/usr/bin/python3}"
        [[ -x $python ]] || python="$(command -v python3)" || die "no python3 on the target"
        "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || die "$python is older than 3.11 (set SWIPER_PYTHON)"
        say "creating $venv with $python"
        "$python" -m venv "$venv"
    fi
    stamp="$venv/.deploy-requirements.sha"
    sha="$(sha256sum <"$staged/requirements.txt" | cut -d' ' -f1)"
    if [[ -f $stamp && "$(cat "$stamp")" == "$sha" ]]; then
        say "python packages: up to date"
    else
        say "python packages: pip install -r requirements.txt"
        "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$staged/requirements.txt" </dev/null ||
            die "pip install failed: nothing else was changed, the running version keeps serving"
        printf '%s\n' "$sha" >"$stamp"
    fi

    # b. the schema, by the new release's code, before any process runs it
    say "migrating (scripts/manage.py migrate of the new release, env file $env_file)"
    if ! (load_env_file "$env_file" && cd "$staged" && "$venv/bin/python" scripts/manage.py migrate </dev/null 2>&1 |
            sed 's/^/deploy:   /'; exit "${PIPESTATUS[0]}"); then
        die "migration failed: $target was not changed and the running version keeps serving"
    fi

    # c. the files (rsync --delete: refuse a directory that holds something other than a Swiper deployment)
    if [[ ! -f $target/server.py ]]; then
        local stray
        stray="$(cd "$target" && find . -mindepth 1 -maxdepth 1 ! -name .venv ! -name var ! -name conf -printf '%f ' | head -c 300)"
        [[ -z $stray ]] || die "$target holds other files ($stray) and no Swiper release: choose an empty or Swiper directory"
    fi
    say "installing the release into $target"
    rsync -a --delete "${KEEP_ON_TARGET[@]}" "$staged/" "$target/"

    # d. roll it out
    if [[ -f $target/var/run/supervisord.pid ]] && kill -0 "$(cat "$target/var/run/supervisord.pid")" 2>/dev/null; then
        say "rolling restart"
        SWIPER_ENV_FILE="$env_file" bash "$target/scripts/restart.sh" 9>&- || die "the rolling restart stopped (see above); the new files are in place"
    elif ((NO_START)); then
        say "the stack is not running (--no-start: not starting it)"
    else
        say "the stack is not running: starting it"
        # 9>&-: the daemons started here must not inherit (and hold) the deploy lock
        SWIPER_ENV_FILE="$env_file" bash "$target/scripts/start.sh" 9>&- || die "start failed (see above)"
    fi
    say "deployed $(head -n 1 "$target/.release" 2>/dev/null)"
}

if ((ACTIVATE)); then
    activate "$TARGET"
    exit 0
fi

# ---- step 1: stage the release ------------------------------------------------------------------------------
SOURCE="$(cd "${SOURCE:-$SWIPER_ROOT}" && pwd -P)" || die "no such source directory"
[[ -f $SOURCE/server.py && -f $SOURCE/requirements.txt && -f $SOURCE/scripts/deploy.sh ]] ||
    die "$SOURCE is not a Swiper tree (server.py, requirements.txt, scripts/deploy.sh)"
command -v rsync >/dev/null || die "rsync is missing (apt-get install rsync)"
commit="$(git -C "$SOURCE" rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [[ $commit != unknown && -n "$(git -C "$SOURCE" status --porcelain 2>/dev/null)" ]]; then
    commit+="+uncommitted"
fi
release="$(mktemp)"
trap 'rm -f "$release"' EXIT
printf 'commit %s from %s at %s\n' "$commit" "$SOURCE" "$(date -u '+%FT%TZ')" >"$release"
flags=()
((NO_START)) && flags+=(--no-start)

if [[ $TARGET =~ ^([^/:]+):(/.*)$ ]]; then
    host=${BASH_REMATCH[1]} path=${BASH_REMATCH[2]}
    ssh_cmd="${SWIPER_DEPLOY_SSH:-ssh}"
    read -r -a ssh_argv <<<"$ssh_cmd"
    say "staging $SOURCE ($commit) into $host:$path/var/deploy/next/"
    "${ssh_argv[@]}" "$host" "mkdir -p $(printf '%q' "$path/var/deploy/next")"
    rsync -az --delete -e "$ssh_cmd" "${RSYNC_EXCLUDES[@]}" "$SOURCE/" "$host:$path/var/deploy/next/"
    rsync -az -e "$ssh_cmd" "$release" "$host:$path/var/deploy/next/.release"
    "${ssh_argv[@]}" "$host" "bash $(printf '%q' "$path/var/deploy/next/scripts/deploy.sh") --activate ${flags[*]} $(printf '%q' "$path")"
else
    [[ $TARGET == /* ]] || TARGET="$PWD/$TARGET"
    [[ $TARGET != "$SOURCE" ]] || die "TARGET is the source itself"
    mkdir -p "$TARGET/var/deploy/next"
    TARGET="$(cd "$TARGET" && pwd -P)"
    say "staging $SOURCE ($commit) into $TARGET/var/deploy/next/"
    rsync -a --delete "${RSYNC_EXCLUDES[@]}" "$SOURCE/" "$TARGET/var/deploy/next/"
    cp "$release" "$TARGET/var/deploy/next/.release"
    bash "$TARGET/var/deploy/next/scripts/deploy.sh" --activate "${flags[@]}" "$TARGET"
fi
