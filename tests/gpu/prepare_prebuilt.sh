#!/usr/bin/env bash
# Builds the GPU-only project (tests/gpu/standalone) on this machine (x86-64, CUDA 13 nvcc, the Debian -dev
# packages of scripts/setup.sh) and copies its binaries into build-gpu-prebuilt/ (ignored by git), so that a device
# run starts the GPU work at once: run tool command "bash tests/gpu/run_checks.sh", carry [".debs",
# "build-gpu-prebuilt.txz"]. run_checks.sh falls back to building there when the binaries do not load.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
command -v xz >/dev/null || { echo "prepare_prebuilt.sh: needs xz to pack the binaries (apt-get install xz-utils)" >&2; exit 1; }
GEN=(); command -v ninja >/dev/null && GEN=(-G Ninja)
cmake -S tests/gpu/standalone -B build-gpu "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CUDA_COMPILER="$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)" >/dev/null
cmake --build build-gpu -j "$(nproc)"
rm -rf build-gpu-prebuilt && mkdir -p build-gpu-prebuilt/gpu
[[ -x build-gpu/erlangshen ]] && cp build-gpu/erlangshen build-gpu-prebuilt/
for f in build-gpu/gpu/test_* build-gpu/gpu/erlangshen_*; do
  [[ -x "$f" && "$f" != *.cmake ]] && cp "$f" build-gpu-prebuilt/gpu/
done
# Stripped and packed. Each binary links the CUDA backend and its kernels' fatbins statically (~8-17 MiB apiece,
# ~136 MiB for 16), mostly the same bytes: gzip's 32 KiB window cannot see that (46 MiB, 60 of the 64 MiB a device
# call carries with .debs), xz with a dictionary larger than the whole tar stores each repeat as a reference
# (~5 MiB). run_checks.sh unpacks build-gpu-prebuilt.txz (with xz, or Python's lzma where xz is missing) when the
# folder is not there: carry [".debs", "build-gpu-prebuilt.txz"].
strip build-gpu-prebuilt/gpu/* build-gpu-prebuilt/erlangshen 2>/dev/null || true
rm -f build-gpu-prebuilt.tgz
tar cf - build-gpu-prebuilt | xz -T"$(nproc)" -6 --lzma2=dict=256MiB > build-gpu-prebuilt.txz
echo "build-gpu-prebuilt: $(ls build-gpu-prebuilt/gpu | wc -l) GPU binaries, $(du -sh build-gpu-prebuilt | cut -f1)," \
  "packed $(du -sh build-gpu-prebuilt.txz | cut -f1) in build-gpu-prebuilt.txz"
