# Sourced by the Slurm batch scripts after the job step ends with status $rc: exit code 85 means "stopped by a
# preemption signal after writing a checkpoint", so the job requeues itself and resumes from checkpoint.dir's
# latest when it runs again. Any other status ends the job with that status.
requeue_or_exit() {
  local rc=$1
  if [ "$rc" = 85 ]; then
    echo "[$(date +%H:%M:%S)] job ${SLURM_JOB_ID:-?}: checkpoint written (exit 85); requeueing (restart ${SLURM_RESTART_COUNT:-0})" >&2
    if scontrol requeue "$SLURM_JOB_ID"; then exit 0; fi
    echo "scontrol requeue failed; resubmit this script to resume" >&2
    exit 85
  fi
  exit "$rc"
}
