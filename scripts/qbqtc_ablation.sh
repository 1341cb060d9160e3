#!/usr/bin/env bash
# QBQTC loss ablation (README "Fine-tuning (QBQTC, PCL)"): a small MegatronBERT fine-tuned with ce, label
# smoothing and PCL (two settings), 3 seeds each, from scratch and (when a pretrained checkpoint is given)
# from pretraining; mean +- std of test_public macro-F1 and accuracy of the model selected by held-out macro-F1.
#
#   scripts/qbqtc_ablation.sh [BUILD_DIR]
# Environment: PRETRAINED=DIR (checkpoint of `erlangshen pretrain` with the same model shape; rows skipped when
# unset), OUT=out/ablation, JOBS=2 (runs in parallel, 1 thread each), SEEDS="1 2 3", EPOCHS=1, MODEL="...",
# INITS="scratch pretrained", LOSS_NAMES (subset of the loss settings below). Finished runs are not redone.
#
# To pretrain the small model on ../shared/data/corpus first (what the README's pretrained rows used):
#   erlangshen preprocess --vocab ../shared/data/vocab/vocab.txt --dict ../shared/data/lexicon/jieba_dict.txt \
#     --lexicon entity:../shared/data/lexicon/thuocl/THUOCL_diming.txt \
#     --lexicon entity:../shared/data/lexicon/thuocl/THUOCL_lishimingren.txt --out out/corpus-shards \
#     ../shared/data/corpus/*.txt
#   erlangshen pretrain --config configs/tiny.yaml $MODEL data.shards=out/corpus-shards \
#     data.vocab=../shared/data/vocab/vocab.txt train.steps=N checkpoint.dir=out/pretrain-small
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
BIN=$BUILD/launch/erlangshen
OUT=${OUT:-out/ablation}
JOBS=${JOBS:-2}
SEEDS=${SEEDS:-"1 2 3"}
EPOCHS=${EPOCHS:-1}
MODEL=${MODEL:-"model.hidden=64 model.layers=2 model.heads=2 model.ffn=256"}
PRETRAINED=${PRETRAINED:-}
[ -x "$BIN" ] || { echo "no $BIN (build the erlangshen target first)" >&2; exit 1; }

"$BIN" qbqtc-split --out out/qbqtc >/dev/null  # dev.json minus test_public pairs; 10% held out (seed 1)

declare -A LOSSES=(
  [ce]="loss.type=ce"
  [label_smoothing]="loss.type=label_smoothing loss.eps=0.1"
  [pcl_a0.5_l0.1]="loss.type=pcl loss.eps=0.1 loss.alpha=0.5 loss.lam_plus=0.1 loss.lam_minus=0.1"
  [pcl_a1_l0]="loss.type=pcl loss.eps=0.1 loss.alpha=1.0 loss.lam_plus=0 loss.lam_minus=0"
)
if [ -z "${INITS:-}" ]; then  # INITS="scratch" / "pretrained" runs one group only
  INITS="scratch"
  [ -n "$PRETRAINED" ] && INITS="scratch pretrained"
fi
LOSS_NAMES=${LOSS_NAMES:-"${!LOSSES[*]}"}  # a subset, e.g. LOSS_NAMES="ce pcl_a0.5_l0.1"

jobs_file=$(mktemp)
for init in $INITS; do
  for name in $LOSS_NAMES; do
    for seed in $SEEDS; do
      dir=$OUT/$init/$name/seed$seed
      [ -f "$dir/result.json" ] && continue  # resumable
      mkdir -p "$dir"
      init_arg="checkpoint.init="
      [ "$init" = pretrained ] && init_arg="checkpoint.init=$PRETRAINED"
      echo "$BIN finetune --config configs/finetune-qbqtc-pcl.yaml $MODEL ${LOSSES[$name]} $init_arg \
train.seed=$seed train.epochs=$EPOCHS train.threads=1 train.lr=1e-3 train.warmup_steps=50 train.eval_every=100 \
train.early_stop=0 log.every=100 checkpoint.dir=$dir log.metrics=$dir/metrics.jsonl --output $dir/result.json \
> $dir/log.txt 2>&1 && echo done $init $name seed$seed || echo FAILED $dir" >> "$jobs_file"
    done
  done
done
echo "$(wc -l < "$jobs_file") runs, $JOBS at a time"
xargs -P "$JOBS" -I{} bash -c {} < "$jobs_file"
rm -f "$jobs_file"

# Table: mean +- sample std over seeds.
/usr/bin/python3 - "$OUT" <<'EOF'
import glob, json, os, statistics, sys
out = sys.argv[1]
rows = {}
for path in sorted(glob.glob(os.path.join(out, "*", "*", "seed*", "result.json"))):
    init, name = path.split(os.sep)[-4:-2]
    r = json.load(open(path))
    rows.setdefault((init, name), []).append((r["test"]["macro_f1"], r["test"]["accuracy"], r["dev"]["metrics"]["macro_f1"]))
def ms(v):
    return f"{100*statistics.mean(v):.2f} ± {100*statistics.stdev(v):.2f}" if len(v) > 1 else f"{100*v[0]:.2f}"
lines = ["| init | loss | seeds | held-out macro-F1 | test_public macro-F1 | test_public accuracy |", "|---|---|---|---|---|---|"]
for (init, name), v in sorted(rows.items()):
    lines.append(f"| {init} | {name} | {len(v)} | {ms([x[2] for x in v])} | {ms([x[0] for x in v])} | {ms([x[1] for x in v])} |")
table = "\n".join(lines)
open(os.path.join(out, "table.md"), "w").write(table + "\n")
print(table)
EOF
