#!/usr/bin/env bash
# Prints the directory holding a Node.js >= 22 binary, provisioning one when needed.
# A Node on PATH that is new enough is used as it is; otherwise node@24 is installed
# from the npm registry into .tools/node (ignored by git) and reused from then on.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
required_major=22
local_dir="$root/.tools/node"

major_of() { "$1" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }

if [ -x "$local_dir/node_modules/node/bin/node" ]; then
  echo "$local_dir/node_modules/node/bin"
  exit 0
fi
if command -v node >/dev/null 2>&1 && [ "$(major_of node)" -ge "$required_major" ]; then
  dirname "$(command -v node)"
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "toolchain: Node.js >= $required_major is required and npm is not available to install it" >&2
  exit 1
fi
echo "toolchain: installing node@24 into $local_dir" >&2
mkdir -p "$local_dir"
npm install --prefix "$local_dir" --no-save --no-audit --no-fund --loglevel=error node@24 >&2
if [ ! -x "$local_dir/node_modules/node/bin/node" ]; then
  echo "toolchain: node@24 did not install into $local_dir" >&2
  exit 1
fi
echo "$local_dir/node_modules/node/bin"
