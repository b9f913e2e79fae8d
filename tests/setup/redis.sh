#!/usr/bin/env bash
# Installs redis-server (Debian's package) for the scale-out tier (tests/scaleout), when it can.
# Idempotent: does nothing when redis-server is already on PATH. Needs root (or sudo) and apt-get;
# without them it says so and exits 0, and the tier then skips (except under CI=true, where it fails).
# The tier starts its own redis-server on 127.0.0.1 with a free port and no persistence; this script
# only installs the package (Debian's package also starts a system service on 6379 when the machine runs
# systemd; the tier does not use it).
set -euo pipefail
if command -v redis-server >/dev/null 2>&1; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "tests/setup/redis.sh: no apt-get here; install redis-server to run the scale-out tier" >&2
  exit 0
fi
as_root=()
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
  else
    echo "tests/setup/redis.sh: not root and no sudo; install redis-server to run the scale-out tier" >&2
    exit 0
  fi
fi
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" apt-get install -y -qq --no-install-recommends redis-server >/dev/null
command -v redis-server >/dev/null 2>&1 && echo "tests/setup/redis.sh: $(redis-server --version | cut -d' ' -f1-3) installed"
