#!/usr/bin/env bash
# Sets up everything and runs the whole test suite: dependencies (apt-get),
# a warnings-as-errors build, every CTest test (unit, plugin loader, the
# out-of-tree SDK example, the CLI, equivalence tests, soak), 2 parallel jobs;
# then the sanitizer job (tools/sanitize.sh). Arguments go to the first ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
cmake --preset default >/dev/null
cmake --build --preset default
# Tests are small; each caps its threads so two can share the two cores.
OMP_NUM_THREADS=1 ctest --preset default -j2 "$@"
# The sanitizer job: ASan + UBSan over the quick tests and short multi-process runs.
tools/sanitize.sh
