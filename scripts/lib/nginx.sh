#!/usr/bin/env bash
# Render the repository's nginx.conf template, for the local instance or for a real host's /etc/nginx.
# Sourced by start.sh and restart.sh (render_nginx); run directly it prints a rendering (see --help).

# render_nginx MODE: prints nginx.conf rendered for MODE, from the layout variables
# (SWIPER_PROCS, SWIPER_BASE_PORT, SWIPER_LISTEN_ADDR, SWIPER_HTTP_PORT, SWIPER_HTTPS_PORT, SWIPER_TLS,
# SWIPER_TLS_CERT, SWIPER_TLS_KEY, SWIPER_SERVER_NAME). MODE "local": the whole file, paths under the prefix
# var/nginx/. MODE "site": only the part between the site markers, logging to /var/log/nginx.
render_nginx() {
    local mode=$1
    local template="$SWIPER_ROOT/nginx.conf" text servers="" n port listen_http listen_https suffix log_dir
    text="$(cat "$template")"
    for ((n = 1; n <= SWIPER_PROCS; n++)); do
        port=$((SWIPER_BASE_PORT + n))
        servers+="        server 127.0.0.1:$port max_fails=0;"$'\n'
    done
    if [[ -z $SWIPER_LISTEN_ADDR || $SWIPER_LISTEN_ADDR == '*' ]]; then
        listen_http=$SWIPER_HTTP_PORT listen_https=$SWIPER_HTTPS_PORT
    else
        listen_http="$SWIPER_LISTEN_ADDR:$SWIPER_HTTP_PORT" listen_https="$SWIPER_LISTEN_ADDR:$SWIPER_HTTPS_PORT"
    fi
    suffix=":$SWIPER_HTTPS_PORT"
    [[ $SWIPER_HTTPS_PORT == 443 ]] && suffix=""
    log_dir=logs
    [[ $mode == site ]] && log_dir=/var/log/nginx
    text=${text//@@UPSTREAM_SERVERS@@/${servers%$'\n'}}
    text=${text//@@HTTP_LISTEN@@/$listen_http}
    text=${text//@@HTTPS_LISTEN@@/$listen_https}
    text=${text//@@HTTPS_PORT_SUFFIX@@/$suffix}
    text=${text//@@SERVER_NAME@@/$SWIPER_SERVER_NAME}
    text=${text//@@LOG_DIR@@/$log_dir}
    text=${text//@@MEDIA_DIR@@/${SWIPER_MEDIA_DIR:-$SWIPER_ROOT/var/media}}
    text=${text//@@TLS_CERT@@/${SWIPER_TLS_CERT:-/path/to/fullchain.pem}}
    text=${text//@@TLS_KEY@@/${SWIPER_TLS_KEY:-/path/to/privkey.pem}}
    if [[ $SWIPER_TLS == on ]]; then
        text="$(sed -E 's/^([[:space:]]*)#@tls /\1/' <<<"$text")"
    fi
    if [[ $mode == site ]]; then
        printf '# Swiper: rendered from %s by scripts/lib/nginx.sh site (%s)\n' "nginx.conf" "$(date '+%F %T')"
        sed -n '/# >>> site/,/# <<< site/{/# >>> site/d;/# <<< site/d;s/^    //;p}' <<<"$text"
    else
        printf '%s\n' "$text"
    fi
}

# write_nginx_conf: renders the local instance's config into var/nginx/nginx.conf (atomically)
# and creates the prefix's directories.
write_nginx_conf() {
    as_owner mkdir -p "$NGINX_PREFIX"/{run,logs,temp}
    render_nginx local | as_owner tee "$NGINX_CONF.tmp" >/dev/null
    as_owner mv -f "$NGINX_CONF.tmp" "$NGINX_CONF"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    set -euo pipefail
    # shellcheck source=scripts/lib/common.sh
    . "$(dirname "${BASH_SOURCE[0]}")/common.sh"
    case "${1:-}" in
        local|site)
            resolve_layout
            render_nginx "$1" ;;
        -h|--help|"")
            cat <<'USAGE'
Usage: bash scripts/lib/nginx.sh local|site

Prints the repository's nginx.conf rendered with the layout variables (environment > env file > defaults):
  local  the whole file as scripts/start.sh writes it to var/nginx/nginx.conf
  site   only the http-level part, for /etc/nginx/conf.d/swiper.conf on a real host, logging to /var/log/nginx
Variables: SWIPER_PROCS [cores], SWIPER_BASE_PORT [9000], SWIPER_LISTEN_ADDR [127.0.0.1; '*' = every address],
SWIPER_HTTP_PORT [8080], SWIPER_HTTPS_PORT [8443], SWIPER_TLS [off], SWIPER_TLS_CERT, SWIPER_TLS_KEY,
SWIPER_SERVER_NAME [_]. Example for a host with a certificate:
  SWIPER_LISTEN_ADDR='*' SWIPER_HTTP_PORT=80 SWIPER_HTTPS_PORT=443 SWIPER_TLS=on \
  SWIPER_TLS_CERT=/etc/letsencrypt/live/api.example.com/fullchain.pem \
  SWIPER_TLS_KEY=/etc/letsencrypt/live/api.example.com/privkey.pem SWIPER_SERVER_NAME=api.example.com \
  bash scripts/lib/nginx.sh site | sudo tee /etc/nginx/conf.d/swiper.conf && sudo nginx -t && sudo nginx -s reload
USAGE
            ;;
        *) echo "nginx.sh: unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
fi
