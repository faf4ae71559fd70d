#!/usr/bin/env bash
# The whole test suite on a fresh Debian 12 machine (as root, Python 3.11):
# installs the test bed's packages, makes the virtualenv .venv with Croupier
# and its test tools, starts the test bed (SLURM + slurmdbd, sshd) and runs
# pytest (the unit tests on two workers, then the bed's tests). Extra
# arguments go to one pytest run instead.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
    echo "tests/run.sh: run as root (it installs and starts the test bed)" >&2
    exit 2
fi

bash tests/bed/install.sh

bash scripts/ensure-venv.sh test

bash tests/bed/bed.sh start

if [ "$#" -gt 0 ]; then
    exec .venv/bin/python -m pytest "$@"
fi
# The unit tests need no bed and are independent: on both cores at once. The
# bed's tests share one SLURM, sshd and OpenBao, and count what those saw: one
# at a time.
status=0
.venv/bin/python -m pytest -n 2 tests/unit || status=$?
.venv/bin/python -m pytest tests/integration tests/e2e tests/web || status=$?
exit "$status"
