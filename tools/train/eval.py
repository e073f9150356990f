#!/usr/bin/python3
"""Evaluate the chest-xray-pneumonia model on a folder split, for cross-checking `radflow eval`.

    /usr/bin/python3 tools/train/eval.py --data DIR [--model models/chest-xray-pneumonia/1]
        [--threshold T] [--predictions out.csv] [--json out.json]

DIR holds NORMAL/ and PNEUMONIA/ sub-folders of 8-bit JPEG/PNG images. Each
file goes through the full preprocessing contract (preprocess.preprocess_file,
including the resize for sizes other than 224x224) and the PyTorch weights
model.pt (the same network as model.onnx). The threshold defaults to
config.yaml decision.threshold. Prints the metrics of metrics.binary_metrics
as JSON (n, accuracy, sensitivity, specificity, precision, f1,
balanced_accuracy, roc_auc, confusion {tp, fn, fp, tn}).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys

import numpy as np
import torch
import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import data  # noqa: E402
import metrics  # noqa: E402
import preprocess  # noqa: E402
from model import LABELS, RadNet  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="folder with NORMAL/ and PNEUMONIA/ sub-folders")
    ap.add_argument("--model", default="models/chest-xray-pneumonia/1")
    ap.add_argument("--threshold", type=float, default=None, help="default: config.yaml decision.threshold")
    ap.add_argument("--predictions", default=None, help="write per-file CSV: path,label,p_pneumonia,predicted")
    ap.add_argument("--json", default=None, help="also write the metrics JSON here")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    with open(os.path.join(args.model, "config.yaml")) as f:
        cfg = yaml.safe_load(f)
    if cfg["labels"] != LABELS:
        raise SystemExit(f"config labels {cfg['labels']} != {LABELS}")
    thr = args.threshold if args.threshold is not None else float(cfg["decision"]["threshold"])
    net = RadNet()
    net.load_state_dict(torch.load(os.path.join(args.model, "model.pt"), map_location="cpu"))
    net.eval()

    items = data.list_split(args.data)
    if not items:
        raise SystemExit(f"no images under {args.data}/{{NORMAL,PNEUMONIA}}")
    y = np.array([it[1] for it in items])
    probs = []
    with torch.no_grad():
        for i in range(0, len(items), args.batch):
            x = np.concatenate([preprocess.preprocess_file(it[0]) for it in items[i : i + args.batch]])
            probs.append(torch.softmax(net(torch.from_numpy(x)), dim=1)[:, 1].double().numpy())
    p = np.concatenate(probs)
    res = metrics.binary_metrics(y, p, thr)
    res["data"] = args.data
    print(json.dumps(res, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)
            f.write("\n")
    if args.predictions:
        with open(args.predictions, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["path", "label", "p_pneumonia", "predicted"])
            for it, pi in zip(items, p):
                w.writerow([it[0], LABELS[it[1]], f"{pi:.6f}", LABELS[int(pi >= thr)]])
    return 0


if __name__ == "__main__":
    sys.exit(main())
