#!/usr/bin/env python3
"""Training-step throughput: erlangshen (C++) vs the PyTorch reference model, same config, same threads.

Both run full forward + backward + AdamW on batches of the same shape (random tokens, 15% masked, full
length). PyTorch computes the MLM logits over every position, as HF's MegatronBertForPreTraining does.
Prints medians over several runs and the ratio.

  tests/bench/train_step_vs_pytorch.py --config configs/tiny.yaml [--threads 2] [--steps 10] [--runs 3]
      [--set train.micro_batch=8 ...]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))


def load_yaml_config(path, overrides):
    out = subprocess.run([os.path.join(ROOT, "build", "launch", "erlangshen"), "print-config", "--config", path,
                          *overrides], check=True, capture_output=True, text=True).stdout
    cfg = {}
    for line in out.splitlines():
        k, v = line.split(": ", 1)
        cfg[k] = v
    return cfg


def torch_step_time(cfg, threads, steps):
    import torch
    from megatron_bert_reference import forward
    torch.set_num_threads(threads)
    C, L, H, Fd = (int(cfg[k]) for k in ("model.hidden", "model.layers", "model.heads", "model.ffn"))
    V = -(-int(cfg["model.vocab_size"]) // 128) * 128
    B, T = int(cfg["train.micro_batch"]), int(cfg["train.seq_len"])
    P = int(cfg["model.max_positions"])
    g = torch.Generator().manual_seed(0)
    p = {"bert.embeddings.word_embeddings.weight": (V, C), "bert.embeddings.position_embeddings.weight": (P, C),
         "bert.embeddings.token_type_embeddings.weight": (2, C)}
    for l in range(L):
        pre = f"bert.encoder.layer.{l}."
        for n in ("attention.ln", "ln"):
            p[pre + n + ".weight"] = (C,); p[pre + n + ".bias"] = (C,)
        for n in ("query", "key", "value"):
            p[pre + f"attention.self.{n}.weight"] = (C, C); p[pre + f"attention.self.{n}.bias"] = (C,)
        p[pre + "attention.output.dense.weight"] = (C, C); p[pre + "attention.output.dense.bias"] = (C,)
        p[pre + "intermediate.dense.weight"] = (Fd, C); p[pre + "intermediate.dense.bias"] = (Fd,)
        p[pre + "output.dense.weight"] = (C, Fd); p[pre + "output.dense.bias"] = (C,)
    for n in ("bert.encoder.ln", "cls.predictions.transform.LayerNorm"):
        p[n + ".weight"] = (C,); p[n + ".bias"] = (C,)
    p.update({"bert.pooler.dense.weight": (C, C), "bert.pooler.dense.bias": (C,),
              "cls.predictions.transform.dense.weight": (C, C), "cls.predictions.transform.dense.bias": (C,),
              "cls.predictions.bias": (V,), "cls.seq_relationship.weight": (2, C), "cls.seq_relationship.bias": (2,)})
    params = {k: (torch.randn(*s, generator=g) * 0.02).requires_grad_() for k, s in p.items()}
    opt = torch.optim.AdamW(params.values(), lr=1e-4)
    ids = torch.randint(104, int(cfg["model.vocab_size"]), (B * T,), generator=g)
    masked = torch.nonzero(torch.rand(B * T, generator=g) < 0.15).view(-1)
    batch = {"B": B, "T": T, "input_ids": ids.tolist(), "token_types": [0] * (B * T),
             "attention_mask": [1] * (B * T), "mlm_positions": masked.tolist(),
             "mlm_labels": ids[masked].tolist(), "sop_labels": [0, 1] * (B // 2) + [0] * (B % 2)}
    cfgd = {"hidden": C, "layers": L, "heads": H, "layernorm_eps": 1e-12, "vocab_size": int(cfg["model.vocab_size"]),
            "activation": "gelu_tanh" if cfg["model.activation"] == "gelu_tanh" else "gelu"}
    times = []
    for i in range(steps + 2):
        t0 = time.perf_counter()
        opt.zero_grad()
        mlm, sop, _, _ = forward(cfgd, params, batch)
        (mlm + sop).backward()
        torch.nn.utils.clip_grad_norm_(list(params.values()), 1.0)
        opt.step()
        if i >= 2:
            times.append(time.perf_counter() - t0)
    return statistics.median(times), B * T


def reexec_with_torch():
    """`python3` on PATH may be a pyenv/venv interpreter without torch: use Debian's, which has python3-torch."""
    try:
        import torch  # noqa: F401
    except ImportError:
        debian = "/usr/bin/python3"
        if os.path.realpath(sys.executable) != os.path.realpath(debian) and os.path.exists(debian):
            os.execv(debian, [debian] + sys.argv)
        sys.exit("PyTorch is not installed: apt-get install python3-torch (scripts/setup.sh does)")


def main():
    reexec_with_torch()
    # Debian's OpenBLAS 0.3.21 falls back to generic SSE3 kernels on CPUs newer than itself; erlangshen then
    # picks a kernel family itself (runtime/blas_select.h). Give PyTorch (which also calls OpenBLAS) the same.
    if "OPENBLAS_CORETYPE" not in os.environ:
        out = subprocess.run([os.path.join(ROOT, "build", "launch", "erlangshen"), "bench", "--config",
                              os.path.join(ROOT, "configs", "tiny.yaml"), "--steps", "1", "--warmup", "0", "--json",
                              "train.micro_batch=1", "train.seq_len=8"], check=True, capture_output=True, text=True)
        os.environ["OPENBLAS_CORETYPE"] = json.loads(out.stdout.strip().splitlines()[-1])["blas"]
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--set", nargs="*", default=[])
    a = ap.parse_args()
    cfg = load_yaml_config(a.config, a.set)
    ours, theirs = [], []
    for r in range(a.runs):
        out = subprocess.run([os.path.join(ROOT, "build", "launch", "erlangshen"), "bench", "--config", a.config,
                              "--steps", str(a.steps), "--json", f"train.threads={a.threads}", *a.set],
                             check=True, capture_output=True, text=True).stdout
        rec = json.loads(out.strip().splitlines()[-1])
        ours.append(rec["tokens_per_s"])
        t, tokens = torch_step_time(cfg, a.threads, a.steps)
        theirs.append(tokens / t)
        print(f"run {r + 1}: erlangshen {rec['tokens_per_s']:.0f} tok/s (MFU vs SGEMM {100 * rec['mfu_vs_sgemm']:.1f}%, "
              f"peak RSS {rec['peak_rss_mib']:.0f} MiB), pytorch {tokens / t:.0f} tok/s", flush=True)
    mo, mt = statistics.median(ours), statistics.median(theirs)
    print(f"median: erlangshen {mo:.0f} tok/s, pytorch {mt:.0f} tok/s, ratio {mo / mt:.2f}x "
          f"({a.config} {' '.join(a.set)}, {a.threads} threads, OPENBLAS_CORETYPE={os.environ['OPENBLAS_CORETYPE']})")


if __name__ == "__main__":
    main()
