#!/usr/bin/env bash
# The Hayhooks environment for the tests/hayhooks tier and bench/bench_hayhooks.py: its own venv,
# .venv-hayhooks at the repository root, apart from Open WebUI's pins (hayhooks and haystack-ai
# bring their own fastapi, starlette and openai versions). A stamp file in the venv makes a second
# run install nothing; `pip check` must be clean.
#
# VENV overrides the venv location, PYTHON the interpreter that makes it (3.10 or newer).
#
# haystack-ai 3.4.1 declares certifi>=2026.10.19. If the package index offers no such certifi, the
# install falls back to haystack-ai 3.4.0 (which has no certifi pin) and then adds 3.4.1 without its
# dependencies; `pip check` then names certifi, and the script says so instead of failing.
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=${VENV:-.venv-hayhooks}
PY=${PYTHON:-python3}
REQS=(hayhooks==2.1.0 haystack-ai==3.4.1)
stamp=$(printf '%s\n' "${REQS[@]}" | sha256sum | cut -c1-16)

if [ -f "$VENV/.stamp-$stamp" ]; then
  echo "hayhooks environment ($VENV) is up to date"
  exit 0
fi

start=$(date +%s)
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
# a venv ignores itself (as Python 3.13's venv does), so git and ruff skip it
[ -f "$VENV/.gitignore" ] || echo '*' >"$VENV/.gitignore"
quiet() { grep -v "is ignored: it is neither a file nor a directory" || true; }
fallback=0
if ! "$VENV/bin/pip" install -q "${REQS[@]}" 2>&1 | quiet; then
  echo "tests/setup/hayhooks.sh: ${REQS[*]} did not resolve; trying haystack-ai 3.4.0, then 3.4.1 without" \
    "its dependencies (haystack-ai 3.4.1 needs certifi>=2026.10.19, which the package index may lack)" >&2
  "$VENV/bin/pip" install -q hayhooks==2.1.0 haystack-ai==3.4.0 2>&1 | quiet
  "$VENV/bin/pip" install -q --no-deps haystack-ai==3.4.1 2>&1 | quiet
  fallback=1
fi
if ! check=$("$VENV/bin/pip" check 2>&1 | quiet; exit "${PIPESTATUS[0]}"); then
  if [ "$fallback" = 1 ] && ! grep -qv certifi <<<"$check"; then
    echo "tests/setup/hayhooks.sh: pip check reports only the certifi pin of haystack-ai 3.4.1:" >&2
    echo "$check" >&2
  else
    echo "$check" >&2
    exit 1
  fi
fi
rm -f "$VENV"/.stamp-*
touch "$VENV/.stamp-$stamp"
echo "hayhooks environment ($VENV) installed in $(( $(date +%s) - start )) s"
