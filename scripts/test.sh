#!/usr/bin/env bash
# Builds erlangshen and runs the whole test suite (unit, reference parity, multi-rank, integration).
# Tests that need ../shared/data or a GPU skip when those are absent.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh "$@"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
ctest --test-dir build --output-on-failure --timeout 900

# The GPU tests once more on the CPU emulation of CUDA (tests/cuda_emulation): the CUDA backend's own kernels and
# its cuBLASLt calls run on the host against the CPU backend. Needs only the CUDA headers; skipped without them.
jobs=${JOBS:-$(nproc)}
if [ -f "${CUDA_HOME:-/usr/local/cuda}/include/cuda_runtime.h" ]; then
  cmake -S tests/gpu/standalone -B build-emu -DCMAKE_BUILD_TYPE=Release -DERLANGSHEN_CUDA_EMULATION=ON >/dev/null
  cmake --build build-emu -j"$jobs"
  ctest --test-dir build-emu --output-on-failure --timeout 900 -j"$jobs"
else
  echo "test.sh: no CUDA headers (${CUDA_HOME:-/usr/local/cuda}/include): GPU tests on the CUDA emulation skipped"
fi
