#!/usr/bin/python3
"""Train the chest-xray-pneumonia reference model (NORMAL vs PNEUMONIA).

Reproducible and seeded; run from the repository root (this is `make train`):

    /usr/bin/python3 tools/train/train.py \
        --data ../shared/data/chest-xray-pneumonia/train \
        --out models/chest-xray-pneumonia/1

Steps: list the training split, carve a patient-grouped, class-stratified
validation split (seeded), load every image once into a uint8 tensor
(preprocessing contract of preprocess.py), train RadNet on 2 CPU threads
with augmentation, select the epoch by validation AUC (clean validation
images and fixed acquisition-like shifts of them), choose the decision
threshold on validation only, export ONNX, write config.yaml, metrics.json,
split.json, model.pt, MODEL_CARD.md and the Go parity fixtures.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import augment  # noqa: E402
import card  # noqa: E402
import data  # noqa: E402
import export  # noqa: E402
import fixtures  # noqa: E402
import metrics  # noqa: E402
import preprocess  # noqa: E402
from model import LABELS, RadNet  # noqa: E402

THRESHOLD_METHOD = "youden_j_on_validation_clean_plus_shifts"


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data/chest-xray-pneumonia/train")
    ap.add_argument("--out", default="models/chest-xray-pneumonia/1")
    ap.add_argument("--seed", type=int, default=20240)
    ap.add_argument("--val-frac", type=float, default=0.17)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--weight-decay", type=float, default=5e-4)
    ap.add_argument("--ema", type=float, default=0.993)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-minutes", type=float, default=27.0,
                    help="safety stop: end training early (keeping the best epoch so far) past this wall time")
    ap.add_argument("--no-fixtures", action="store_true", help="do not rewrite the Go parity fixtures")
    ap.add_argument("--repo-root", default=".", help="where internal/*/testdata lives")
    return ap.parse_args(argv)


def to_input(u8: torch.Tensor) -> torch.Tensor:
    """uint8 [N,H,W] -> float32 [N,1,H,W] in [0,1] (contract step 1)."""
    return u8.unsqueeze(1).float().div_(255.0)


def normalize(x: torch.Tensor) -> torch.Tensor:
    """Contract step 3."""
    return (x - preprocess.MEAN) / preprocess.STD


@torch.no_grad()
def predict(net, u8: torch.Tensor, shift: str = "clean", batch: int = 128) -> np.ndarray:
    """P(PNEUMONIA) for every image, after a fixed shift of the [0,1] image."""
    net.eval()
    out = []
    for i in range(0, len(u8), batch):
        x = augment.apply_shift(to_input(u8[i : i + batch]), shift)
        out.append(torch.softmax(net(normalize(x)), dim=1)[:, 1])
    return torch.cat(out).numpy().astype(np.float64)


class EMA:
    """Exponential moving average of all parameters and buffers (BN statistics)."""

    def __init__(self, net, decay: float):
        self.decay = decay
        self.model = copy.deepcopy(net).eval()
        self.steps = 0

    @torch.no_grad()
    def update(self, net):
        self.steps += 1
        d = min(self.decay, (1 + self.steps) / (10 + self.steps))
        src = net.state_dict()
        for k, v in self.model.state_dict().items():
            if v.dtype.is_floating_point:
                v.mul_(d).add_(src[k], alpha=1 - d)
            else:
                v.copy_(src[k])


def main(argv=None) -> int:
    args = parse_args(argv)
    t0 = time.time()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    os.makedirs(args.out, exist_ok=True)

    items = data.list_split(args.data)
    tr_idx, va_idx = data.grouped_split(items, args.val_frac, args.seed)
    assert not ({items[i][2] for i in tr_idx} & {items[i][2] for i in va_idx}), "patient leak"
    y_all = np.array([it[1] for it in items])
    print(f"images {len(items)}  train {len(tr_idx)}  val {len(va_idx)}  "
          f"val per class {np.bincount(y_all[va_idx]).tolist()}  "
          f"val patients {len({items[i][2] for i in va_idx})}", flush=True)

    u8 = data.load_images_u8([it[0] for it in items])
    print(f"loaded {tuple(u8.shape)} uint8 in {time.time() - t0:.1f}s", flush=True)
    xtr, ytr = u8[tr_idx], torch.from_numpy(y_all[tr_idx])
    xva, yva = u8[va_idx], y_all[va_idx]
    del u8

    counts = torch.bincount(ytr, minlength=2).float()
    class_w = counts.sum() / (2 * counts)
    net = RadNet()
    nparams = sum(p.numel() for p in net.parameters())
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    steps_per_epoch = len(xtr) // args.batch
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=args.lr, epochs=args.epochs, steps_per_epoch=steps_per_epoch, pct_start=0.2)
    ema = EMA(net, args.ema)
    gen = torch.Generator().manual_seed(args.seed)

    history, best = [], None
    train_start = time.time()
    for epoch in range(args.epochs):
        net.train()
        perm = torch.randperm(len(xtr), generator=gen)
        run_loss = 0.0
        for s in range(steps_per_epoch):
            idx = perm[s * args.batch : (s + 1) * args.batch]
            x = normalize(augment.random_augment(to_input(xtr[idx]), gen))
            loss = F.cross_entropy(net(x), ytr[idx], weight=class_w, label_smoothing=0.05)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            ema.update(net)
            run_loss += loss.item()
        rec = {"epoch": epoch + 1, "loss": run_loss / steps_per_epoch}
        # Validation (selection candidates) only in the second half of the
        # schedule, where the EMA weights can be the best; saves CPU time.
        if epoch + 1 > args.epochs // 2 or epoch + 1 == args.epochs:
            aucs = {sh: metrics.roc_auc(yva, predict(ema.model, xva, sh)) for sh in augment.SHIFTS}
            score = float(np.mean(list(aucs.values())))
            rec.update({"val_auc": aucs, "score": score})
            if best is None or score > best[0]:
                best = (score, epoch + 1, copy.deepcopy(ema.model.state_dict()))
        rec["elapsed_s"] = round(time.time() - t0, 1)
        history.append(rec)
        print(json.dumps(rec), flush=True)
        if (time.time() - t0) / 60 > args.max_minutes:
            print("max-minutes reached: stopping early", flush=True)
            break
    if best is None:  # stopped before any validation: take the current EMA weights
        best = (float("nan"), len(history), copy.deepcopy(ema.model.state_dict()))
    train_s = time.time() - train_start

    net = RadNet()
    net.load_state_dict(best[2])
    net.eval()
    probs = {sh: predict(net, xva, sh) for sh in augment.SHIFTS}
    pooled_y = np.concatenate([yva] * len(augment.SHIFTS))
    pooled_p = np.concatenate([probs[sh] for sh in augment.SHIFTS])
    thr = metrics.choose_threshold_youden(pooled_y, pooled_p)
    val = {sh: metrics.binary_metrics(yva, probs[sh], thr) for sh in augment.SHIFTS}
    val_at_half = metrics.binary_metrics(yva, probs["clean"], 0.5)
    print(f"best epoch {best[1]}  threshold {thr}", flush=True)
    print(json.dumps(val["clean"]), flush=True)

    torch.save(net.state_dict(), os.path.join(args.out, "model.pt"))
    onnx_path = os.path.join(args.out, "model.onnx")
    export.export_onnx(net, onnx_path)
    sha = export.sha256_file(onnx_path)
    size = os.path.getsize(onnx_path)
    export.write_config(os.path.join(args.out, "config.yaml"), version=1, threshold=thr,
                        threshold_method=THRESHOLD_METHOD, sha256=sha, size_bytes=size)
    with open(os.path.join(args.out, "split.json"), "w") as f:
        json.dump({"seed": args.seed, "val_frac": args.val_frac,
                   "method": "patient-grouped, class-stratified (tools/train/data.py grouped_split)",
                   "train_n": len(tr_idx), "val_n": len(va_idx),
                   "val_files": [os.path.relpath(items[i][0], args.data) for i in va_idx]}, f, indent=0)
        f.write("\n")
    total_s = time.time() - t0
    summary = {
        "seed": args.seed, "epochs_run": len(history), "best_epoch": best[1], "params": nparams,
        "onnx_bytes": size, "onnx_sha256": sha, "threshold": thr, "threshold_method": THRESHOLD_METHOD,
        "train_n": len(tr_idx), "val_n": len(va_idx), "train_class_counts": counts.int().tolist(),
        "threads": args.threads, "train_seconds": round(train_s, 1), "total_seconds": round(total_s, 1),
        "validation": val, "validation_clean_at_0.5": val_at_half, "history": history,
        "args": vars(args),
    }
    with open(os.path.join(args.out, "metrics.json"), "w") as f:
        json.dump(summary, f, indent=1)
        f.write("\n")
    card.write_card(os.path.join(args.out, "MODEL_CARD.md"), summary)
    if not args.no_fixtures:
        fixtures.write_all(net, args.data, args.repo_root)
    print(f"done in {total_s / 60:.1f} min; model {size} bytes sha256 {sha}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
