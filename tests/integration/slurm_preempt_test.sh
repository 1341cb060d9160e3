#!/usr/bin/env bash
# Real Slurm preemption test (issue 6). Starts a private one-node Slurm (munged, slurmctld, slurmd with a config
# under a temporary directory and its own ports, so a system Slurm is never touched), submits the project's
# batch script launch/slurm/pretrain-mpirun.sbatch with 2 tasks on a small config, sends
# `scancel --signal=USR1 --batch` mid-run and checks that
#   - the ranks wrote a checkpoint and exited 85,
#   - the job requeued itself (Restarts=1) and ran to completion,
#   - its final loss equals an uninterrupted run's (bit for bit: resume is exact).
# Exits 77 (ctest: skipped) when not root or when Slurm/munge are not installed or cannot start; stops every
# daemon it started.
#   usage: slurm_preempt_test.sh ERLANGSHEN_BINARY SOURCE_DIR [WORK_DIR]
set -uo pipefail
bin=${1:?erlangshen binary}
src=${2:?source dir}
work=${3:-$(mktemp -d /tmp/erlangshen-slurm.XXXXXX)}
skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*"; [ -f "$work/job.out" ] && { echo "--- job output"; tail -40 "$work/job.out"; }; exit 1; }

[ "$(id -u)" = 0 ] || skip "needs root to run slurmctld/slurmd"
for c in slurmctld slurmd sbatch scancel scontrol squeue sinfo munged munge unmunge mpirun; do
  command -v "$c" >/dev/null 2>&1 || skip "$c not installed (scripts/setup.sh --slurm)"
done
[ -x "$bin" ] || fail "no binary $bin"

rm -rf "$work" && mkdir -p "$work"/{state,spool,log,run} || fail "cannot create $work"
host=$(hostname -s)
cpus=$(nproc)
export SLURM_CONF="$work/slurm.conf"
started_munged=""
passed=0
daemon_pids() { cat "$work/run/slurmctld.pid" "$work/run/slurmd.pid" 2>/dev/null; }
cleanup() {
  local pids
  pids=$(daemon_pids)
  [ -n "${job:-}" ] && scancel --quiet --full "$job" 2>/dev/null
  scontrol shutdown >/dev/null 2>&1
  for i in $(seq 40); do  # up to 10 s for a clean shutdown, then force
    alive=""
    for p in $pids; do kill -0 "$p" 2>/dev/null && alive="$alive $p"; done
    [ -z "$alive" ] && break
    sleep 0.25
  done
  for p in $alive; do kill -9 "$p" 2>/dev/null; done
  [ -n "$started_munged" ] && kill "$started_munged" 2>/dev/null
  [ "$passed" = 1 ] && rm -rf "$work"
  return 0
}
trap cleanup EXIT

# munge (shared with a running munged if there is one)
if ! (munge -n | unmunge) >/dev/null 2>&1; then
  if [ ! -f /etc/munge/munge.key ]; then
    mkdir -p /etc/munge && dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 2>/dev/null
    chown munge:munge /etc/munge/munge.key 2>/dev/null; chmod 400 /etc/munge/munge.key
  fi
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge 2>/dev/null
  su -s /bin/sh munge -c /usr/sbin/munged >/dev/null 2>&1 || skip "munged does not start"
  sleep 1
  started_munged=$(cat /run/munge/munged.pid 2>/dev/null)
  (munge -n | unmunge) >/dev/null 2>&1 || skip "munge does not work"
fi

port=$((20000 + RANDOM % 20000))  # private ports: never collide with a system Slurm or a lingering test
cat > "$SLURM_CONF" <<CONF
ClusterName=erltest
SlurmctldHost=$host
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/run/slurmctld.pid
SlurmdPidFile=$work/run/slurmd.pid
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
JobRequeue=1
MinJobAge=600
SlurmctldLogFile=$work/log/slurmctld.log
SlurmdLogFile=$work/log/slurmd.log
NodeName=$host CPUs=$cpus State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
CONF
slurmctld -f "$SLURM_CONF" >/dev/null 2>&1 || skip "slurmctld does not start"
for i in $(seq 40); do scontrol ping >/dev/null 2>&1 && break; sleep 0.25; done
scontrol ping >/dev/null 2>&1 || skip "slurmctld does not answer ($(tail -2 "$work/log/slurmctld.log" 2>/dev/null))"
slurmd -f "$SLURM_CONF" >/dev/null 2>&1 || skip "slurmd does not start"
for i in $(seq 60); do
  sinfo -h -o %t 2>/dev/null | grep -q idle && break
  sleep 0.5
done
sinfo -h -o %t 2>/dev/null | grep -q idle || skip "the Slurm node never became idle ($(tail -3 "$work/log/slurmctld.log" 2>/dev/null))"
echo "slurm up on $host ($cpus CPUs), config $SLURM_CONF"

# The job: 2 ranks (DP=2), small model, long enough to be interrupted mid-run (~12 ms a step here: 1000 steps
# leave the watcher below seconds to notice the first steps even on a loaded machine).
steps=1000
args=(--config "$src/configs/tiny.yaml" model.hidden=128 model.layers=2 model.heads=4 model.ffn=256
      model.vocab_size=1000 train.micro_batch=4 train.seq_len=64 train.steps=$steps train.warmup_steps=10
      train.threads=1 log.every=1 parallel.dp=2)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_mpi_yield_when_idle=1 OMP_NUM_THREADS=1

# Reference: the same run without interruption (plain mpirun).
mpirun --oversubscribe -np 2 "$bin" pretrain "${args[@]}" log.metrics="$work/ref.jsonl" > "$work/ref.log" 2>&1 ||
  fail "reference run failed: $(tail -5 "$work/ref.log")"
ref_loss=$(tail -1 "$work/ref.jsonl" | sed -E 's/.*"loss":([^,]*),.*/\1/')

# Submitted held and released just before the watcher starts: on a loaded machine sbatch's reply can come seconds
# after the job started (seen in CI: the watcher's first look found 945 of 1000 steps done, too late to preempt).
job=$(sbatch --parsable --hold --ntasks=2 --cpus-per-task=1 --chdir="$work" --output="$work/job.out" \
      --export=ALL,ERLANGSHEN_HOME="$src",ERLANGSHEN_BIN="$bin" \
      "$src/launch/slurm/pretrain-mpirun.sbatch" "${args[@]}" checkpoint.dir="$work/ckpt" checkpoint.every=1000 \
      log.metrics="$work/job.jsonl") || fail "sbatch failed"
echo "submitted job $job (held)"
scontrol release "$job" || fail "scontrol release failed"
for i in $(seq 2400); do  # wait until it has trained a few steps
  [ -f "$work/job.jsonl" ] && [ "$(wc -l < "$work/job.jsonl")" -ge 5 ] && break
  sleep 0.05
done
[ -f "$work/job.jsonl" ] || fail "the job never started training"
steps_before=$(wc -l < "$work/job.jsonl")
scancel --signal=USR1 --batch "$job" || fail "scancel --signal failed"
echo "sent USR1 to the batch script after $steps_before steps"
# A machine so loaded that the watcher saw the job only late cannot test preemption (the signal's way through
# slurmctld, slurmd and the batch script takes up to seconds): skip, do not fail, unless half the run remains.
[ "$steps_before" -lt "$((steps / 2))" ] || skip "the job trained $steps_before of $steps steps before the watcher ran"
for i in $(seq 900); do  # requeue + completion
  state=$(scontrol show job "$job" 2>/dev/null | sed -nE 's/.*JobState=([A-Z_]+).*/\1/p')
  restarts=$(scontrol show job "$job" 2>/dev/null | sed -nE 's/.*Restarts=([0-9]+).*/\1/p')
  [ "$state" = COMPLETED ] && break
  case "$state" in FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY) fail "job ended $state";; esac
  # Slurm holds a requeued batch job for about two minutes (Reason=BeginTime); an admin may start it sooner. Not in
  # the same second as the requeue: Slurm revoked the first run's credential then, with one-second resolution, and
  # refuses a launch whose credential dates from that second ("Killing non-startable batch job: Job credential
  # revoked", which ends the job FAILED). Seen in CI; so wait 2 s of PENDING first.
  if [ "$state" = PENDING ] && [ "${restarts:-0}" -ge 1 ] && [ -z "${hurried:-}" ]; then
    pending_polls=$((${pending_polls:-0} + 1))
    if [ "$pending_polls" -ge 4 ]; then scontrol update JobId="$job" StartTime=now >/dev/null 2>&1 && hurried=1; fi
  fi
  sleep 0.5
done
[ "$state" = COMPLETED ] || fail "job did not complete (state $state)"
[ "${restarts:-0}" -ge 1 ] || fail "job was not requeued (Restarts=${restarts:-0})"
grep -q "exit 85" "$work/job.out" || fail "no preemption checkpoint (exit 85) in the job output"
stopped=$(grep -oE "stopped by a signal after step [0-9]+" "$work/job.out" | head -1 | grep -oE "[0-9]+$")
[ -n "$stopped" ] && [ "$stopped" -lt "$steps" ] || fail "the run was not stopped mid-way"
[ -f "$work/ckpt/step_$(printf %08d "$stopped")/COMPLETE" ] || fail "no checkpoint of step $stopped"
grep -q "resume: step $stopped" "$work/job.out" || fail "the requeued job did not resume from step $stopped"
job_loss=$(tail -1 "$work/job.jsonl" | sed -E 's/.*"loss":([^,]*),.*/\1/')
last_step=$(tail -1 "$work/job.jsonl" | sed -E 's/.*"step":([0-9]+).*/\1/')
[ "$last_step" = "$steps" ] || fail "the job ended at step $last_step"
[ "$job_loss" = "$ref_loss" ] || fail "final loss $job_loss differs from the uninterrupted run's $ref_loss"
echo "PASS: stopped at step $stopped (checkpoint, exit 85), requeued (Restarts=$restarts), completed step $steps with loss $job_loss == uninterrupted $ref_loss"
passed=1
exit 0
