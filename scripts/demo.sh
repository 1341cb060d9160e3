#!/usr/bin/env bash
# The main job on the embedded default, no download and no GPU: build, preprocess the shipped original
# corpus (examples/demo) into HDF5 shards, pretrain the tiny MegatronBERT on it with KDM masking for 300
# steps (checkpoint every 100, resumes if interrupted), then ask the model to fill a mask.
# Extra arguments are config overrides, e.g. scripts/demo.sh train.steps=100
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
bin=build/launch/erlangshen
mkdir -p build/demo
if [ ! -f build/demo/shards/shard_00000.h5 ]; then
  "$bin" preprocess --vocab examples/demo/vocab.txt --dict examples/demo/dict.txt \
    --lexicon entity:examples/demo/entities.txt --lexicon event:examples/demo/events.txt \
    --out build/demo/shards examples/demo/corpus.txt
fi
"$bin" pretrain --config configs/demo.yaml "$@"
echo "metrics: build/demo/metrics.jsonl   checkpoints: build/demo/checkpoints"
if "$bin" --help 2>/dev/null | grep -q fill-mask; then
  "$bin" fill-mask --checkpoint build/demo/checkpoints --vocab examples/demo/vocab.txt "今天天气很[MASK]。" || true
fi
