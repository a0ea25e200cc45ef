#!/usr/bin/env bash
# Sets up everything and trains the default job (configs/default.toml) on the CPU.
# Extra arguments go to dfm-run, e.g. tools/run.sh --set train.steps=50
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
cmake --preset default >/dev/null
cmake --build --preset default
exec build/bin/dfm-run configs/default.toml "$@"
