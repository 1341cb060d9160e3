"""Independent PyTorch reference for the fine-tuning losses (DESIGN section 5), used by tests/finetune.

Reads one JSON object from stdin: {"logits": [[...]...], "labels": [...], "cases": [{"type", "eps", "alpha",
"lam_plus", "lam_minus", "propensities"}...]} and prints {"results": [{"loss", "grad"}...]}, the mean loss over
the batch and its gradient with respect to the logits from autograd, in float64.

pcl_reference follows the description of the authors' released competition code: label smoothing plus, for
each of the first C samples of the batch, eps / 0.32447699714575207 when argmax + label >= 2, divided by C.
"""
import json
import sys

import torch


def label_smoothing(z, y, eps):
    logp = torch.log_softmax(z, dim=-1)
    c = z.shape[-1]
    nll = -logp.gather(1, y[:, None])[:, 0]
    return (1 - eps) * nll + eps / c * (-logp).sum(dim=-1)  # per sample


def pcl(z, y, eps, alpha, lam_plus, lam_minus, pi):
    c = z.shape[-1]
    pi = torch.tensor(pi, dtype=torch.float64)
    pi = pi / pi.sum()
    w = pi ** (-alpha)
    w = w / (pi * w).sum()
    p = torch.softmax(z, dim=-1)
    k = torch.arange(c, dtype=torch.float64)[None, :]
    d = k - y[:, None].double()
    cost = torch.where(d > 0, lam_plus * d, torch.where(d < 0, lam_minus * (-d), torch.zeros_like(d)))
    return w[y] * label_smoothing(z, y, eps) + (p * cost).sum(dim=-1)


def pcl_reference(z, y, eps):
    c = z.shape[-1]
    loss = label_smoothing(z, y, eps).mean()
    yhat = torch.argmax(z, dim=1)
    corr = 0.0
    for i in range(min(c, z.shape[0])):
        if int(yhat[i]) + int(y[i]) >= 2:
            corr += eps / 0.32447699714575207
    return loss + corr / c


def main():
    req = json.load(sys.stdin)
    results = []
    for case in req["cases"]:
        z = torch.tensor(req["logits"], dtype=torch.float64, requires_grad=True)
        y = torch.tensor(req["labels"], dtype=torch.long)
        t = case["type"]
        if t == "ce":
            loss = torch.nn.functional.cross_entropy(z, y)
        elif t == "label_smoothing":
            loss = label_smoothing(z, y, case["eps"]).mean()
        elif t == "pcl":
            loss = pcl(z, y, case["eps"], case["alpha"], case["lam_plus"], case["lam_minus"], case["propensities"]).mean()
        elif t == "pcl_reference":
            loss = pcl_reference(z, y, case["eps"])
        else:
            raise SystemExit("unknown loss type " + t)
        loss.backward()
        results.append({"loss": float(loss), "grad": z.grad.tolist()})
    json.dump({"results": results}, sys.stdout)


if __name__ == "__main__":
    main()
