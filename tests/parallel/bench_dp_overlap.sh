#!/usr/bin/env bash
# DP=2 over MPI on the tiny config vs one process on half the global batch, one thread per process
# (issue 4's overlap benchmark). Runs the two alternately ROUNDS times and prints medians over the steps after
# the first two of every run: step time, ratio, and from rank 0's counters the exposed and hidden DP
# communication and the overlap = hidden / (hidden + exposed).
#   usage: tests/parallel/bench_dp_overlap.sh [BUILD_DIR=build-par] [STEPS=12] [ROUNDS=3] [extra key=value ...]
# Every process (the single one and each rank) runs in its own session (setsid), hence its own scheduler
# autogroup: on a machine shared with other work each then gets the same CPU share, instead of the two ranks
# splitting one share between them. Neither run is pinned to a core.
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build-par}; steps=${2:-12}; rounds=${3:-3}; shift $(( $# < 3 ? $# : 3 ))
bin=$build/launch/erlangshen
own_session=(setsid -w)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
tmp=$(mktemp -d)
common=(--config configs/tiny.yaml train.threads=1 train.steps=$steps train.warmup_steps=2 log.every=1 "$@")
# CPU seconds (user + sys of the whole run, all processes) as well: unlike wall time it does not depend on
# how busy the machine is, so cpu(DP=2) / (2 x cpu(one process)) is the work that DP adds per sample.
TIMEFORMAT='%U %S'
for r in $(seq "$rounds"); do
  { time "${own_session[@]}" "$bin" pretrain "${common[@]}" log.metrics="$tmp/single_$r.jsonl" > /dev/null 2>&1 ; } \
    2>> "$tmp/cpu_single"
  { time mpirun -np 2 --bind-to none "${own_session[@]}" "$bin" pretrain "${common[@]}" parallel.dp=2 \
      parallel.bucket_mb=1 log.metrics="$tmp/dp2_$r.jsonl" > /dev/null 2>&1 ; } 2>> "$tmp/cpu_dp2"
done
echo "load average during the runs: $(cut -d' ' -f1-3 /proc/loadavg) (2 cores)"
python3 - "$tmp" "$rounds" <<'PY'
import json, statistics, sys
tmp, rounds = sys.argv[1], int(sys.argv[2])
def load(kind):
    rows = []
    for r in range(1, rounds + 1):
        rows += [json.loads(l) for l in open(f"{tmp}/{kind}_{r}.jsonl")][2:]
    return rows
single, dp2 = load("single"), load("dp2")
med = lambda rows, k: statistics.median(x[k] for x in rows)
s, d = med(single, "step_seconds"), med(dp2, "step_seconds")
exposed, hidden = med(dp2, "comm_seconds"), med(dp2, "comm_hidden_seconds")
print(f"one process, micro_batch 16 (half the global batch): step {s:.4f} s (median of {len(single)} steps)")
print(f"DP=2 over MPI, micro_batch 16 per rank:              step {d:.4f} s (median of {len(dp2)} steps)")
print(f"ratio DP=2 / one process: {d / s:.3f}x (target <= 1.15x)")
cpu = lambda kind: sum(sum(map(float, l.split())) for l in open(f"{tmp}/cpu_{kind}"))
print(f"CPU seconds per run: one process {cpu('single') / rounds:.1f}, DP=2 (both ranks) {cpu('dp2') / rounds:.1f}; "
      f"per sample DP=2 / one process: {cpu('dp2') / (2 * cpu('single')):.3f}x")
print(f"DP communication per step (rank 0): exposed {exposed * 1e3:.1f} ms, hidden {hidden * 1e3:.1f} ms, "
      f"overlap {hidden / max(1e-12, hidden + exposed):.0%} (median of per-step overlap {med(dp2, 'overlap'):.0%})")
PY
rm -rf "$tmp"
