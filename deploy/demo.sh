#!/usr/bin/env bash
# The main job: installs what is needed (idempotent), brings up the local stack, runs a local
# cluster (one coordinator, two agents each granted its own cores) through a demo batch of real
# encodes, prints predicted vs actual usage, and stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/install.sh
exec node dist/coordinator/cli/main.js demo "$@"
