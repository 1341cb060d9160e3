#!/usr/bin/env python3
"""Peer benchmark: HF transformers MegatronBertForPreTraining training step, PyTorch eager, bf16 autocast with
fp32 master weights and AdamW -- the same shape, batch and mixed-precision recipe as erlangshen_gpu_bench.

    python3 tests/bench/hf_megatron_bert_bench.py --model 1.3b --seq 512 --batch 16 --steps 5

Prints tokens/s, model TFLOP/s (the same FLOP formula as the CUDA bench: 3 x forward GEMM FLOPs with the MLM
decoder on the masked 15% of tokens; HF computes logits on every position, so its real work is larger), MFU
against the dense bf16 peak by device name, and peak memory; last line `BENCH_JSON {...}`. On out-of-memory it
halves the batch and says so; with --refine K it then bisects between the batch that ran and the one that did not
(K more tries at most) and ends with the fastest run's BENCH_JSON, so the peer is timed near its own largest batch.
"""
import gc
import argparse
import json
import time

import torch

MODELS = {
    # hidden, layers, heads, ffn, activation
    "1.3b": ("erlangshen-1.3b", 2048, 24, 8, 8192, "gelu_new"),
    "base": ("bert-base", 768, 12, 12, 3072, "gelu"),
}
PEAKS = [("H100 PCIe", 756), ("H100 NVL", 835), ("H100", 989), ("H200", 989), ("H800", 989), ("GH200", 989),
         ("A100", 312), ("L40S", 362), ("A10", 125)]
VOCAB = 21248


def dense_peak(name):
    for key, tflops in PEAKS:
        if key in name:
            return tflops
    return 0.0


def model_flops(C, L, NH, F, V, B, T):
    N, M, HS = B * T, max(1, int(0.15 * B * T)), C // NH
    fwd = L * (2.0 * N * C * 3 * C + 2.0 * N * C * C + 4.0 * N * C * F + 4.0 * B * NH * T * T * HS)
    fwd += 2.0 * M * C * C + 2.0 * M * C * V
    return 3.0 * fwd


def run(args, batch):
    from transformers import MegatronBertConfig, MegatronBertForPreTraining

    name, C, L, NH, F, act = MODELS[args.model]
    cfg = MegatronBertConfig(vocab_size=VOCAB, hidden_size=C, num_hidden_layers=L, num_attention_heads=NH,
                             intermediate_size=F, hidden_act=act, max_position_embeddings=512, type_vocab_size=2,
                             layer_norm_eps=1e-12, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
    cfg._attn_implementation = "eager"
    torch.manual_seed(0)
    model = MegatronBertForPreTraining(cfg).cuda().train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
    T = args.seq
    ids = torch.randint(0, 21128, (batch, T), device="cuda")
    types = (torch.arange(T, device="cuda") >= T // 2).long().expand(batch, T).contiguous()
    labels = torch.full((batch, T), -100, dtype=torch.long, device="cuda")
    masked = torch.rand(batch, T, device="cuda") < 0.15
    labels[masked] = torch.randint(0, 21128, (int(masked.sum()),), device="cuda")
    sop = torch.randint(0, 2, (batch,), device="cuda")

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = model(input_ids=ids, token_type_ids=types, labels=labels, next_sentence_label=sop)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(args.warmup):
        step()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step()
    torch.cuda.synchronize()
    secs = (time.perf_counter() - t0) / args.steps
    dev = torch.cuda.get_device_name(0)
    tflops = model_flops(C, L, NH, F, VOCAB, batch, T) / secs / 1e12
    peak = dense_peak(dev)
    mem = torch.cuda.max_memory_allocated() / 2**30
    mfu = f"{100 * tflops / peak:.1f}%" if peak else "unknown"
    print(f"device: {dev}\nmodel: HF MegatronBertForPreTraining ({name}, eager, bf16 autocast)  seq: {T}  "
          f"micro_batch: {batch}")
    print(f"step: {secs * 1e3:.1f} ms  tokens/s: {batch * T / secs:.0f}  model TFLOP/s: {tflops:.1f}  MFU: {mfu}  "
          f"peak memory: {mem:.2f} GiB")
    result = {"impl": "hf-transformers-eager", "model": name, "device": dev, "seq": T, "batch": batch,
              "step_ms": secs * 1e3, "tokens_per_s": batch * T / secs, "tflops": tflops,
              "mfu": tflops / peak if peak else None, "mem_gib": mem}
    print("BENCH_JSON " + json.dumps(result))
    return result


def out_of_memory(e):
    """Whether e is PyTorch's CUDA out-of-memory error (torch.OutOfMemoryError where it exists)."""
    oom = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", None)
    return (oom is not None and isinstance(e, oom)) or "out of memory" in str(e)


def try_run(args, batch):
    """run() at `batch`, or None when it runs out of memory (the memory is released for the next try)."""
    try:
        return run(args, batch)
    except RuntimeError as e:
        if not out_of_memory(e):
            raise
        print(f"out of memory at micro_batch {batch}")
        gc.collect()
        torch.cuda.empty_cache()
        return None


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=sorted(MODELS), default="1.3b")
    p.add_argument("--seq", type=int, default=512)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--refine", type=int, default=0,
                   help="after halving past an out-of-memory batch, up to this many bisection tries above it")
    args = p.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("hf_megatron_bert_bench: no CUDA GPU visible")
    batch, too_big, results = args.batch, None, []
    while batch >= 1:
        r = try_run(args, batch)
        if r is not None:
            results.append(r)
            break
        too_big, batch = batch, batch // 2
    if not results:
        raise SystemExit("hf_megatron_bert_bench: even micro_batch 1 does not fit")
    fits = batch
    for _ in range(args.refine):
        if too_big is None or too_big - fits <= max(1, fits // 8):
            break
        mid = (fits + too_big) // 2
        r = try_run(args, mid)
        if r is None:
            too_big = mid
        else:
            results.append(r)
            fits = mid
    if len(results) > 1:
        best = max(results, key=lambda r: r["tokens_per_s"])
        print(f"fastest of micro-batches {sorted(r['batch'] for r in results)}: {best['batch']}")
        print("BENCH_JSON " + json.dumps(best))


if __name__ == "__main__":
    main()
