#!/usr/bin/env python3
"""Independent PyTorch implementation of MegatronBERT pretraining (DESIGN §3), used as the reference for
the C++ model: same weights and batch in, logits / losses / every parameter gradient out, then N AdamW steps.

Written from the model definition (HF MegatronBertForPreTraining semantics: pre-LN layers, no embedding
LayerNorm, final LayerNorm, MLM head dense -> GeLU -> LayerNorm -> tied decoder + bias over the FULL
sequence, pooler tanh, SOP linear), with torch autograd for gradients; it shares no code with the C++ side.

Usage: megatron_bert_reference.py DIR
  DIR/meta.json    {"config": {...}, "tensors": [{"name", "shape", "offset"}...], "total": N,
                    "batch": {"B", "T", "input_ids", "token_types", "attention_mask", "mlm_positions",
                              "mlm_labels", "sop_labels"}, "adam_steps": K, "train": {...}}
  DIR/params.bin   float32 flat parameter buffer (offsets from meta)
Writes DIR/grads.bin (float32, same layout), DIR/result.json {"mlm_loss", "sop_loss", "mlm_logits_sample",
"sop_logits", "losses": [...], "final_params_file": "params_after.bin"}.
"""
import json
import math
import sys

import numpy as np
import torch
import torch.nn.functional as F


def load(dirname):
    meta = json.load(open(f"{dirname}/meta.json"))
    flat = np.fromfile(f"{dirname}/params.bin", dtype=np.float32)
    params = {}
    for t in meta["tensors"]:
        n = int(np.prod(t["shape"]))
        arr = flat[t["offset"]:t["offset"] + n].reshape(t["shape"])
        params[t["name"]] = torch.tensor(arr, dtype=torch.float32, requires_grad=True)
    return meta, params


def forward(cfg, p, batch):
    B, T = batch["B"], batch["T"]
    C, H = cfg["hidden"], cfg["heads"]
    hs = C // H
    eps = cfg["layernorm_eps"]
    act = (lambda x: F.gelu(x, approximate="tanh")) if cfg["activation"] == "gelu_tanh" else F.gelu
    ids = torch.tensor(batch["input_ids"], dtype=torch.long).view(B, T)
    types = torch.tensor(batch["token_types"], dtype=torch.long).view(B, T)
    valid = torch.tensor(batch["attention_mask"], dtype=torch.bool).view(B, T)

    x = (p["bert.embeddings.word_embeddings.weight"][ids]
         + p["bert.embeddings.position_embeddings.weight"][:T].unsqueeze(0)
         + p["bert.embeddings.token_type_embeddings.weight"][types])
    mask = torch.zeros(B, 1, 1, T)
    mask[~valid.view(B, 1, 1, T)] = float("-inf")
    for l in range(cfg["layers"]):
        pre = f"bert.encoder.layer.{l}."
        h = F.layer_norm(x, (C,), p[pre + "attention.ln.weight"], p[pre + "attention.ln.bias"], eps)
        q = F.linear(h, p[pre + "attention.self.query.weight"], p[pre + "attention.self.query.bias"])
        k = F.linear(h, p[pre + "attention.self.key.weight"], p[pre + "attention.self.key.bias"])
        v = F.linear(h, p[pre + "attention.self.value.weight"], p[pre + "attention.self.value.bias"])
        split = lambda t: t.view(B, T, H, hs).permute(0, 2, 1, 3)
        scores = split(q) @ split(k).transpose(-1, -2) / math.sqrt(hs) + mask
        ctx = (torch.softmax(scores, dim=-1) @ split(v)).permute(0, 2, 1, 3).reshape(B, T, C)
        x = x + F.linear(ctx, p[pre + "attention.output.dense.weight"], p[pre + "attention.output.dense.bias"])
        h = F.layer_norm(x, (C,), p[pre + "ln.weight"], p[pre + "ln.bias"], eps)
        h = act(F.linear(h, p[pre + "intermediate.dense.weight"], p[pre + "intermediate.dense.bias"]))
        x = x + F.linear(h, p[pre + "output.dense.weight"], p[pre + "output.dense.bias"])
    hidden = F.layer_norm(x, (C,), p["bert.encoder.ln.weight"], p["bert.encoder.ln.bias"], eps)

    # MLM over every position (as HF does), loss on the masked ones only
    t = act(F.linear(hidden, p["cls.predictions.transform.dense.weight"], p["cls.predictions.transform.dense.bias"]))
    t = F.layer_norm(t, (C,), p["cls.predictions.transform.LayerNorm.weight"],
                     p["cls.predictions.transform.LayerNorm.bias"], eps)
    logits = F.linear(t, p["bert.embeddings.word_embeddings.weight"], p["cls.predictions.bias"])  # (B, T, V)
    labels = torch.full((B * T,), -100, dtype=torch.long)
    labels[torch.tensor(batch["mlm_positions"], dtype=torch.long)] = torch.tensor(batch["mlm_labels"], dtype=torch.long)
    # the softmax runs over the real vocabulary; embedding rows padded beyond vocab_size are not classes
    mlm_loss = F.cross_entropy(logits.view(B * T, -1)[:, :cfg["vocab_size"]], labels, ignore_index=-100)

    pooled = torch.tanh(F.linear(hidden[:, 0], p["bert.pooler.dense.weight"], p["bert.pooler.dense.bias"]))
    sop_logits = F.linear(pooled, p["cls.seq_relationship.weight"], p["cls.seq_relationship.bias"])
    sop_loss = F.cross_entropy(sop_logits, torch.tensor(batch["sop_labels"], dtype=torch.long))
    return mlm_loss, sop_loss, logits.view(B * T, -1), sop_logits


def lr_at(train, step):
    if train["warmup_steps"] > 0 and step <= train["warmup_steps"]:
        return train["lr"] * step / train["warmup_steps"]
    decay_steps = max(1, train["steps"] - train["warmup_steps"])
    progress = min(max((step - train["warmup_steps"]) / decay_steps, 0.0), 1.0)
    return train["min_lr"] + (train["lr"] - train["min_lr"]) * (1.0 - progress)


def main():
    dirname = sys.argv[1]
    meta, params = load(dirname)
    cfg, batch, train = meta["config"], meta["batch"], meta["train"]
    names = [t["name"] for t in meta["tensors"]]

    mlm_loss, sop_loss, logits, sop_logits = forward(cfg, params, batch)
    (mlm_loss + sop_loss).backward()
    grads = np.zeros(meta["total"], dtype=np.float32)
    for t in meta["tensors"]:
        g = params[t["name"]].grad.detach().numpy().reshape(-1)
        grads[t["offset"]:t["offset"] + g.size] = g
    grads.tofile(f"{dirname}/grads.bin")
    pos = batch["mlm_positions"]
    result = {"mlm_loss": mlm_loss.item(), "sop_loss": sop_loss.item(),
              "mlm_logits": logits[pos].detach().numpy().reshape(-1).tolist(),
              "sop_logits": sop_logits.detach().numpy().reshape(-1).tolist()}

    # K AdamW steps on the same batch: decay on weights only (not biases / LayerNorm), clip by global norm.
    is_norm = lambda n: n.split(".")[-2] in ("ln", "LayerNorm")
    decay_names = [n for n in names if n.endswith(".weight") and not is_norm(n)]
    decay = [params[n] for n in decay_names]
    no_decay = [params[n] for n in names if n not in decay_names]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": train["weight_decay"]},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=train["lr"], betas=(train["beta1"], train["beta2"]), eps=train["adam_eps"])
    losses = []
    for step in range(1, meta["adam_steps"] + 1):
        for group in opt.param_groups:
            group["lr"] = lr_at(train, step)
        opt.zero_grad()
        mlm, sop, _, _ = forward(cfg, params, batch)
        (mlm + sop).backward()
        losses.append((mlm + sop).item())
        if train["clip_grad"] > 0:
            torch.nn.utils.clip_grad_norm_(list(params.values()), train["clip_grad"])
        opt.step()
    result["losses"] = losses
    after = np.zeros(meta["total"], dtype=np.float32)
    for t in meta["tensors"]:
        a = params[t["name"]].detach().numpy().reshape(-1)
        after[t["offset"]:t["offset"] + a.size] = a
    after.tofile(f"{dirname}/params_after.bin")
    json.dump(result, open(f"{dirname}/result.json", "w"))


if __name__ == "__main__":
    main()
