#!/usr/bin/env bash
# Set-up for the browser tier (tests/browser): Playwright for Python from PyPI into the suite's venv
# (made by tests/run.sh), and Debian's chromium with apt-get when running as root with apt. Idempotent:
# a second run installs nothing. Playwright's own browser download is never used (it cannot work
# offline): the tier launches Debian's Chromium through `executable_path`.
#   VENV        the suite's venv (default .venv, as tests/run.sh)
#   PLAYWRIGHT  the pinned requirement (default playwright==1.65.2, which drives Chromium 156)
# Exit status 0 also when Chromium cannot be installed here (the tier then skips, saying so); 1 when
# the venv is missing or pip fails.
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=${VENV:-.venv}
PLAYWRIGHT=${PLAYWRIGHT:-playwright==1.65.2}

if [ ! -x "$VENV/bin/python" ]; then
  echo "tests/setup/browser.sh: the venv $VENV is missing; run bash tests/run.sh first (it makes it)." >&2
  exit 1
fi

wanted=${PLAYWRIGHT#playwright==}
have=$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("playwright"))' 2>/dev/null || true)
if [ "$have" != "$wanted" ]; then
  if ! out=$("$VENV/bin/pip" install -q "$PLAYWRIGHT" 2>&1); then
    echo "$out" >&2
    echo "tests/setup/browser.sh: pip could not install $PLAYWRIGHT into $VENV." >&2
    exit 1
  fi
  echo "browser tier: $PLAYWRIGHT installed into $VENV"
fi

if [ -n "${BROWSER_CHROMIUM:-}" ] || command -v chromium >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1; then
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends chromium >/dev/null
  fi
  echo "browser tier: Debian's chromium installed ($(chromium --version 2>/dev/null | head -1))"
else
  echo "browser tier: no Chromium here and no root apt-get to install it; install Debian's chromium" \
    "(apt-get install chromium) or set BROWSER_CHROMIUM to a Chromium binary. The tier is skipped until then."
fi
