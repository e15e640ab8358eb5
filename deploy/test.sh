#!/usr/bin/env bash
# The test command: installs everything the tests need (idempotent), builds, and runs the unit
# and integration suites against real NATS, Consul, QuestDB and ffmpeg. Each integration test
# starts and stops its own stack on free loopback ports.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/install.sh
npm run build --silent
node deploy/scripts/run-tests.mjs "$@"
