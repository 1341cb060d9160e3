#!/usr/bin/env python3
"""Export parity: the exported HF folder must reproduce our forward's MLM and SOP logits.

Reads the folder written by `erlangshen export` and a case file (inputs + the logits our C++ forward computed),
then runs
  1. an independent PyTorch implementation of MegatronBertForPreTraining's forward (float64), reading
     model.safetensors with a parser written here (no safetensors package needed), and
  2. transformers.MegatronBertForPreTraining.from_pretrained (float32), when transformers is importable.
Prints one line per implementation and exits 1 when any logit differs by more than --tol.
"""
import argparse
import json
import math
import struct
import sys

import torch


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", (name, info["dtype"])
        b, e = info["data_offsets"]
        out[name] = torch.frombuffer(bytearray(data[b:e]), dtype=torch.float32).reshape(info["shape"]).double()
    return out


def gelu(x, act):
    if act in ("gelu_new", "gelu_pytorch_tanh"):
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def reference_forward(W, cfg, ids, types, valid):
    """MegatronBertForPreTraining.forward in eval mode, written from the architecture description (pre-LN)."""
    B, T = ids.shape
    C, H = cfg["hidden_size"], cfg["num_attention_heads"]
    D = C // H
    eps = cfg["layer_norm_eps"]

    def lin(x, p):
        return x @ W[p + ".weight"].T + W[p + ".bias"]

    def ln(x, p):
        return torch.nn.functional.layer_norm(x, (C,), W[p + ".weight"], W[p + ".bias"], eps)

    x = (W["bert.embeddings.word_embeddings.weight"][ids] + W["bert.embeddings.position_embeddings.weight"][:T][None]
         + W["bert.embeddings.token_type_embeddings.weight"][types])
    key_mask = (1.0 - valid[:, None, None, :].double()) * -1e9
    for l in range(cfg["num_hidden_layers"]):
        p = "bert.encoder.layer.%d." % l
        h = ln(x, p + "attention.ln")
        q, k, v = (lin(h, p + "attention.self." + n).view(B, T, H, D).transpose(1, 2) for n in ("query", "key", "value"))
        probs = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(D) + key_mask, dim=-1)
        ctx = (probs @ v).transpose(1, 2).reshape(B, T, C)
        x = x + lin(ctx, p + "attention.output.dense")
        h = ln(x, p + "ln")
        x = x + lin(gelu(lin(h, p + "intermediate.dense"), cfg["hidden_act"]), p + "output.dense")
    x = ln(x, "bert.encoder.ln")
    pooled = torch.tanh(lin(x[:, 0], "bert.pooler.dense"))
    sop = lin(pooled, "cls.seq_relationship")
    t = ln(gelu(lin(x, "cls.predictions.transform.dense"), cfg["hidden_act"]), "cls.predictions.transform.LayerNorm")
    mlm = t @ W["cls.predictions.decoder.weight"].T + W["cls.predictions.bias"]
    return mlm, sop


def compare(name, mlm, sop, case, tol):
    B, T = case["B"], case["T"]
    ours_mlm = torch.tensor(case["mlm_logits"], dtype=torch.float64)
    ours_sop = torch.tensor(case["sop_logits"], dtype=torch.float64).view(B, 2)
    pos = case["mlm_positions"]
    theirs_mlm = mlm.reshape(B * T, -1)[pos].double()
    d_mlm = (theirs_mlm - ours_mlm).abs().max().item()
    d_sop = (sop.double() - ours_sop).abs().max().item()
    ok = d_mlm <= tol and d_sop <= tol
    print("%s: max|d| mlm %.3g sop %.3g over %d positions x %d classes: %s"
          % (name, d_mlm, d_sop, len(pos), theirs_mlm.shape[1], "ok" if ok else "FAIL"))
    return ok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--case", required=True)
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--require-transformers", action="store_true")
    a = ap.parse_args()
    case = json.load(open(a.case))
    cfg = json.load(open(a.model + "/config.json"))
    B, T = case["B"], case["T"]
    ids = torch.tensor(case["ids"]).view(B, T)
    types = torch.tensor(case["types"]).view(B, T)
    valid = torch.tensor(case["valid"]).view(B, T)
    W = read_safetensors(a.model + "/model.safetensors")
    assert torch.equal(W["cls.predictions.decoder.weight"], W["bert.embeddings.word_embeddings.weight"])
    ok = True
    with torch.no_grad():
        mlm, sop = reference_forward(W, cfg, ids, types, valid)
        ok &= compare("independent torch (float64)", mlm, sop, case, a.tol)
        try:
            import transformers
        except ImportError:
            print("transformers: not installed, skipped")
            if a.require_transformers:
                return 1
        else:
            model, info = transformers.MegatronBertForPreTraining.from_pretrained(a.model, output_loading_info=True)
            missing = [k for k in info["missing_keys"] if "position_ids" not in k]
            if missing or info["unexpected_keys"] or info["mismatched_keys"]:
                print("transformers: loading info %s: FAIL" % info)
                ok = False
            model.eval()
            out = model(input_ids=ids, token_type_ids=types, attention_mask=valid)
            ok &= compare("transformers %s MegatronBertForPreTraining (float32)" % transformers.__version__,
                          out.prediction_logits, out.seq_relationship_logits, case, a.tol)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
