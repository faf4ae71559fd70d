#!/usr/bin/env bash
# The whole test suite on a fresh Debian 12 machine (as root, Python 3.11):
# installs the test bed's packages, makes the virtualenv .venv with Croupier
# and its test tools, starts the test bed (SLURM + slurmdbd, sshd) and runs
# pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
    echo "tests/run.sh: run as root (it installs and starts the test bed)" >&2
    exit 2
fi

bash tests/bed/install.sh

bash scripts/ensure-venv.sh test

bash tests/bed/bed.sh start

exec .venv/bin/python -m pytest "$@"
