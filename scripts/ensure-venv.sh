#!/usr/bin/env bash
# Creates .venv (Python 3.11) with Croupier installed in it, if it is not there.
# Usage: scripts/ensure-venv.sh [EXTRAS]   e.g. "test"
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
extras="${1:-}"
if [ ! -x .venv/bin/python ]; then
    if ! "$PY" -c 'import venv, ensurepip' 2>/dev/null; then
        # Debian's python3 ships venv support separately
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3-venv
        else
            echo "ensure-venv: $PY cannot create virtualenvs; install python3-venv" >&2
            exit 2
        fi
    fi
    "$PY" -m venv .venv
fi
spec='.'
if [ -n "$extras" ]; then spec=".[$extras]"; fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e "$spec"
