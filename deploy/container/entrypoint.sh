#!/bin/sh
# The container images' entrypoint: gridd with the image's settings, as the user grid.
#
# - Run as root (the default), it gives grid the data dir and /run/grid, copies the swarm key named by GRID_SWARM_KEY
#   (a compose secret or a Kubernetes Secret, often unreadable to grid) to /run/grid/swarm.key with mode 0600, and
#   runs gridd as grid through setpriv. Run as any other user, it runs gridd as that user, as it is.
# - BOOTSTRAP_DNS=NAME (Kubernetes: the headless Service): every IPv4 address NAME resolves to, other than this pod's
#   own (POD_IP), becomes a --bootstrap /ip4/ADDR/tcp/BOOTSTRAP_PORT (default 7470), at most BOOTSTRAP_MAX (16) of
#   them, picked at random. When NAME has no other address yet, it asks again every 2 s for up to BOOTSTRAP_WAIT_S
#   (default 60) seconds, then starts gridd without one: the first node of a new cluster, which the others then join.
# - The arguments are gridd's flags; `grid-entrypoint gridctl ...` (or any command) runs that command instead.
set -eu

case "${1:-}" in
  ''|-*) ;;
  *) exec "$@" ;;
esac

if [ -n "${BOOTSTRAP_DNS:-}" ]; then
  port=${BOOTSTRAP_PORT:-7470}
  wait_s=${BOOTSTRAP_WAIT_S:-60}
  max=${BOOTSTRAP_MAX:-16}
  self=${POD_IP:-}
  deadline=$(( $(date +%s) + wait_s ))
  while :; do
    peers=$(getent ahostsv4 "$BOOTSTRAP_DNS" 2>/dev/null | awk '{ print $1 }' | sort -u | grep -v -x -F -e "${self:-none}" | shuf -n "$max" || true)
    if [ -n "$peers" ] || [ "$(date +%s)" -ge "$deadline" ]; then break; fi
    sleep 2
  done
  if [ -z "$peers" ]; then
    echo "grid-entrypoint: $BOOTSTRAP_DNS names no other member after ${wait_s}s; starting as the first node" >&2
  fi
  for ip in $peers; do set -- "$@" --bootstrap "/ip4/$ip/tcp/$port"; done
fi

if [ "$(id -u)" = 0 ]; then
  data=${GRID_DATA_DIR:-/var/lib/grid}
  mkdir -p "$data" /run/grid
  chown grid:grid "$data" /run/grid
  chmod 0700 "$data"
  if [ -n "${GRID_SWARM_KEY:-}" ] && [ -f "$GRID_SWARM_KEY" ] && [ "$GRID_SWARM_KEY" != /run/grid/swarm.key ]; then
    install -m 0600 -o grid -g grid "$GRID_SWARM_KEY" /run/grid/swarm.key
    GRID_SWARM_KEY=/run/grid/swarm.key
    export GRID_SWARM_KEY
  fi
  HOME=$data; export HOME
  exec setpriv --reuid=grid --regid=grid --init-groups -- gridd "$@"
fi
exec gridd "$@"
