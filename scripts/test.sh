#!/usr/bin/env bash
# Builds erlangshen and runs the whole test suite (unit, reference parity, multi-rank, integration).
# Tests that need ../shared/data or a GPU skip when those are absent.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh "$@"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
ctest --test-dir build --output-on-failure --timeout 900
