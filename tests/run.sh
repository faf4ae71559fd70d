#!/usr/bin/env bash
# The whole test suite on a fresh Debian 12 machine (as root, Python 3.11):
# installs the test bed's packages, makes the virtualenv .venv with Croupier
# and its test tools, starts the test bed (SLURM + slurmdbd, sshd) and runs
# ruff and mypy, then pytest (the unit tests beside the bed's tests). Extra
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
# The package's lint (ruff.toml: type hints and docstrings on every function)
# and the core's type check (mypy.ini), before the tests; a finding fails the
# run, after the tests.
lint_status=0
.venv/bin/ruff check croupier_plugin || lint_status=$?
.venv/bin/mypy || lint_status=$?
# The unit tests need no bed and mostly use the CPU (Cloudify's blueprint
# parser); the bed's tests mostly wait for SLURM, and share one SLURM, sshd
# and OpenBao and count what those saw, so they run one at a time. The two
# phases run side by side, one core each: the unit tests in the background with
# a home of their own (nothing they write reaches the bed's tests), their
# output shown when both are done.
unit_home="$(mktemp -d)"
unit_log="$unit_home/unit-tests.log"
HOME="$unit_home" CROUPIER_HOME="$unit_home/.croupier" \
    .venv/bin/python -m pytest -p no:cacheprovider tests/unit >"$unit_log" 2>&1 &
unit_pid=$!
bed_status=0
.venv/bin/python -m pytest tests/integration tests/e2e tests/web || bed_status=$?
unit_status=0
wait "$unit_pid" || unit_status=$?
echo "== unit tests (run beside the bed's tests above) =="
cat "$unit_log"
rm -rf "$unit_home"
if [ "$bed_status" != 0 ]; then
    exit "$bed_status"
fi
if [ "$unit_status" != 0 ]; then
    exit "$unit_status"
fi
exit "$lint_status"
