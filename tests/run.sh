#!/usr/bin/env bash
# The whole test suite from a fresh clone: makes the venv (CPU torch, open-webui==$OWUI_VERSION,
# every plugin's requirements, test tools; one resolver run so open-webui's pins hold), then runs
# pytest with it. Arguments go to pytest.
#
# OWUI_VERSION picks the Open WebUI the host tier runs against (default 0.12.4, in .venv); any other
# version gets its own venv, .venv-owui-<version>. The unit tier is written for 0.12.4, so with
# another version run the host tier only:  OWUI_VERSION=0.6.43 bash tests/run.sh tests/host
# VENV overrides the venv location, TORCH the torch requirement (default: the 2.13.0 CPU build,
# which pip must be able to find). A stamp file in the venv makes a second run install nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
OWUI_VERSION=${OWUI_VERSION:-0.12.4}
if [ "$OWUI_VERSION" = 0.12.4 ]; then
  VENV=${VENV:-.venv}
else
  VENV=${VENV:-.venv-owui-$OWUI_VERSION}
fi
PY=${PYTHON:-python3}
TORCH=${TORCH:-torch==2.13.0+cpu}

plugin_reqs=$("$PY" -c 'import json; print("\n".join(sorted({r for p in json.load(open("manifest.json"))["plugins"] for r in p["requirements"]})))')
stamp=$(printf '%s\n' "$TORCH" "open-webui==$OWUI_VERSION" "$plugin_reqs" "$(cat tests/requirements.txt)" | sha256sum | cut -c1-16)

if [ ! -f "$VENV/.stamp-$stamp" ]; then
  start=$(date +%s)
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
  # a venv ignores itself (as Python 3.13's venv does), so git and ruff skip .venv-owui-<version> too
  [ -f "$VENV/.gitignore" ] || echo '*' >"$VENV/.gitignore"
  quiet() { grep -v "is ignored: it is neither a file nor a directory" || true; }
  # CPU torch first and pinned by constraint: open-webui's dependencies would otherwise
  # pull the newest torch with several GB of CUDA packages.
  if ! "$VENV/bin/pip" install -q "$TORCH" 2>&1 | quiet; then
    echo "tests/run.sh: could not install $TORCH, a CPU build of torch. Make one reachable for pip" \
      "(PIP_EXTRA_INDEX_URL pointing at PyTorch's CPU wheel index, or PIP_FIND_LINKS at a folder holding" \
      "the wheel), or set TORCH to another CPU build, e.g. TORCH='torch==2.13.0+cpu'." >&2
    exit 1
  fi
  # shellcheck disable=SC2086
  "$VENV/bin/pip" install -q -c <(echo "$TORCH") "open-webui==$OWUI_VERSION" $plugin_reqs -r tests/requirements.txt 2>&1 | quiet
  "$VENV/bin/pip" check 2>&1 | quiet
  rm -f "$VENV"/.stamp-*
  touch "$VENV/.stamp-$stamp"
  echo "open-webui $OWUI_VERSION environment ($VENV) installed in $(( $(date +%s) - start )) s"
fi

# The tiers beside the host tier run on 0.12.4 only; each set-up script is idempotent and says what
# it installed. Hayhooks gets its own venv (.venv-hayhooks: hayhooks and haystack-ai pin their own
# fastapi/starlette/openai); redis-server (scale-out tier) and chromium (browser tier) come from apt
# when this runs as root with apt-get, otherwise those tiers skip with a line saying how to enable them
# (under CI=true a skipped tier fails the run).
if [ "$OWUI_VERSION" = 0.12.4 ]; then
  bash tests/setup/hayhooks.sh
  bash tests/setup/redis.sh
  VENV="$VENV" bash tests/setup/browser.sh
fi

exec "$VENV/bin/python" -m pytest "$@"
