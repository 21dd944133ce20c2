#!/usr/bin/env bash
# Runs a command with Node.js >= 22 first on PATH.
#
# Grid needs Node 22 or later (24 LTS is the target). When the node on PATH is older, this
# fetches the official binary that the npm registry's `node` package ships (node@24) into
# GRID_NODE_HOME (default ~/.cache/grid/node), once, and puts it first on PATH for the command
# and everything it starts. Usage: deploy/with-node.sh CMD [ARGS...]
set -euo pipefail

NODE_MAJOR_MIN=22
NODE_PACKAGE=${GRID_NODE_PACKAGE:-node@24}
NODE_HOME=${GRID_NODE_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/grid/node}

node_major() { "$1" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }

current=$(command -v node || true)
if [ -z "$current" ] || [ "$(node_major "$current")" -lt "$NODE_MAJOR_MIN" ]; then
  local_bin="$NODE_HOME/node_modules/node/bin"
  if [ ! -x "$local_bin/node" ] || [ "$(node_major "$local_bin/node")" -lt "$NODE_MAJOR_MIN" ]; then
    found=missing; [ -n "$current" ] && found="$("$current" --version) at $current"
    echo "with-node: node on PATH is $found; installing $NODE_PACKAGE into $NODE_HOME" >&2
    mkdir -p "$NODE_HOME"
    [ -f "$NODE_HOME/package.json" ] || echo '{"name":"grid-node-runtime","private":true}' > "$NODE_HOME/package.json"
    npm install --prefix "$NODE_HOME" --no-audit --no-fund --loglevel=error "$NODE_PACKAGE" >&2
    if [ ! -x "$local_bin/node" ]; then
      echo "with-node: could not install $NODE_PACKAGE (no $local_bin/node); install Node >= $NODE_MAJOR_MIN yourself" >&2
      exit 1
    fi
  fi
  export PATH="$local_bin:$PATH"
fi
exec "$@"
