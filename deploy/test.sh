#!/usr/bin/env bash
# The test command: installs and builds everything the tests need (idempotent), then runs the
# unit and integration suites against real NATS, Consul, QuestDB and ffmpeg. Each integration
# test file starts and stops its own stack on free loopback ports. Ends with "N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/install.sh
node deploy/scripts/run-tests.mjs "$@"
