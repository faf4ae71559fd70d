#!/usr/bin/env bash
# Croupier's demo on one machine, no cluster: blueprints/hello through the
# embedded engine (install, run_jobs, uninstall) and a summary table.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-venv.sh
exec .venv/bin/croupier run blueprints/hello/blueprint.yaml "$@"
