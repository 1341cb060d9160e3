#!/usr/bin/env bash
# Per-rank launcher shim: binds one GPU per rank by local rank and sizes the CPU thread pool, then execs the
# command. Used by erlangshen-mpirun.sh and the Slurm batch scripts:  bind-local-rank.sh erlangshen pretrain ...
#   local rank: OMPI_COMM_WORLD_LOCAL_RANK (mpirun), SLURM_LOCALID (srun), MPI_LOCALRANKID, PMI_LOCAL_RANK
#   GPUs:       the node's GPUs (CUDA_VISIBLE_DEVICES as given, else nvidia-smi's list); rank i gets GPU i mod n,
#               exported as the only visible device (the program then uses device 0)
#   threads:    OMP_NUM_THREADS = cores / local ranks unless already set
set -euo pipefail
local_rank=${OMPI_COMM_WORLD_LOCAL_RANK:-${SLURM_LOCALID:-${MPI_LOCALRANKID:-${PMI_LOCAL_RANK:-0}}}}
local_size=${OMPI_COMM_WORLD_LOCAL_SIZE:-${SLURM_NTASKS_PER_NODE:-${MPI_LOCALNRANKS:-1}}}
local_size=${local_size%%(*}  # SLURM_NTASKS_PER_NODE may read "2(x3)"

gpus=()
if [ -n "${CUDA_VISIBLE_DEVICES:-}" ] && [ "${CUDA_VISIBLE_DEVICES}" != "NoDevFiles" ]; then
  IFS=',' read -r -a gpus <<< "$CUDA_VISIBLE_DEVICES"
elif command -v nvidia-smi >/dev/null 2>&1; then
  mapfile -t gpus < <(nvidia-smi --query-gpu=index --format=csv,noheader 2>/dev/null || true)
fi
if [ "${#gpus[@]}" -gt 0 ]; then
  export CUDA_VISIBLE_DEVICES="${gpus[$((local_rank % ${#gpus[@]}))]}"
fi
if [ -z "${OMP_NUM_THREADS:-}" ]; then
  cores=$(nproc)
  per=$((cores / (local_size > 0 ? local_size : 1)))
  export OMP_NUM_THREADS=$((per > 0 ? per : 1))
fi
export ERLANGSHEN_LOCAL_RANK="$local_rank"
exec "$@"
