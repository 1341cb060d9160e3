#!/usr/bin/env bash
# mpirun wrapper for erlangshen jobs on one or more nodes.
#   launch/erlangshen-mpirun.sh -n 8 [-H node1:4,node2:4] [--hostfile FILE] -- pretrain --config C.yaml k=v ...
# Each rank runs through bind-local-rank.sh (one GPU per local rank, OMP threads per rank). SIGTERM and SIGUSR1
# sent to this script reach every rank as SIGUSR1 (mpirun itself would kill the ranks on SIGTERM): they finish
# the step, write a checkpoint and exit with 85, which this script returns.
# Environment: ERLANGSHEN_BIN (default: build/launch/erlangshen), MPIRUN (default: mpirun), MPIRUN_ARGS (extra).
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
bin=${ERLANGSHEN_BIN:-$root/build/launch/erlangshen}
np=1
mpi_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    -n|-np) np=$2; shift 2 ;;
    -H|--host) mpi_args+=(--host "$2"); shift 2 ;;
    --hostfile) mpi_args+=(--hostfile "$2"); shift 2 ;;
    --) shift; break ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) break ;;
  esac
done
[ $# -gt 0 ] || { echo "usage: $0 -n NP [-H hosts] -- SUBCOMMAND ARGS..." >&2; exit 1; }
[ -x "$bin" ] || { echo "erlangshen-mpirun: $bin not found (build first or set ERLANGSHEN_BIN)" >&2; exit 1; }
if [ "$(id -u)" = 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
# More ranks than cores (CPU tests): allow it.
if [ "$np" -gt "$(nproc)" ] && [ ${#mpi_args[@]} -eq 0 ]; then mpi_args+=(--oversubscribe); fi

${MPIRUN:-mpirun} -np "$np" "${mpi_args[@]}" --bind-to none -x OMP_NUM_THREADS \
  ${CUDA_VISIBLE_DEVICES:+-x CUDA_VISIBLE_DEVICES} ${MPIRUN_ARGS:-} "$here/bind-local-rank.sh" "$bin" "$@" &
pid=$!
source "$here/slurm/forward-stop.sh"
wait_forwarding "$pid"
exit "$rc"
