"""Parity fixtures for the Go side (internal/inference, internal/transform).

Writes, relative to the repository root:
- internal/inference/testdata/parity/tensors.json: model outputs for inputs
  given by a formula (no files needed).
- internal/transform/testdata/parity/images.json: preprocessing summaries and
  model outputs for a few training images, plus resize checks against Pillow.
"""

from __future__ import annotations

import json
import os

import numpy as np
import torch

import preprocess
from model import LABELS

# Fixed flat indices (row-major) at which tensor values are recorded.
PROBE_224 = [0, 1, 223, 224, 12345, 25088, 25200, 37631, 40000, 50175]
REPO_DATA = "../shared/data/chest-xray-pneumonia/train"


def _stats(a: np.ndarray) -> dict:
    a64 = a.astype(np.float64).ravel()
    return {"mean": float(a64.mean()), "std": float(a64.std()), "min": float(a64.min()),
            "max": float(a64.max())}


def _probe(a: np.ndarray, idx) -> list:
    flat = a.ravel()
    return [[int(i), float(flat[i])] for i in idx]


def _probe_idx(h: int, w: int) -> list:
    n = h * w
    return sorted({0, 1, w - 1, w, n // 3, n // 2, (2 * n) // 3, n - w, n - 1})


def formula_tensor(k: int) -> np.ndarray:
    """x[i] = float32(sin(0.001 * i * (k + 1))) in float64 then rounded, i = flat index in [1,1,224,224]."""
    i = np.arange(preprocess.HEIGHT * preprocess.WIDTH, dtype=np.float64)
    return np.sin(0.001 * i * (k + 1)).astype(np.float32).reshape(1, 1, preprocess.HEIGHT, preprocess.WIDTH)


def synthetic_image() -> np.ndarray:
    """x[r, c] = float32(((r * 7 + c * 13) % 256) / 255) on 224x224 (exact in both languages)."""
    r = np.arange(224)[:, None]
    c = np.arange(224)[None, :]
    return (((r * 7 + c * 13) % 256).astype(np.float64) / 255.0).astype(np.float32)


def _run(net, x: np.ndarray):
    with torch.no_grad():
        logits = net(torch.from_numpy(x))
        probs = torch.softmax(logits, dim=1)
    return logits[0].double().tolist(), probs[0].double().tolist()


def write_tensors(net, path: str) -> None:
    # k = 0, 1, 2 plus the 3 values of k in [3, 64) whose P(PNEUMONIA) is
    # closest to 0.5, so that the comparison is not only of saturated outputs.
    runs = {k: _run(net, formula_tensor(k)) for k in range(64)}
    extra = sorted(range(3, 64), key=lambda k: abs(runs[k][1][1] - 0.5))[:3]
    cases = []
    for k in [0, 1, 2] + sorted(extra):
        logits, probs = runs[k]
        cases.append({"k": k, "input_sum": float(formula_tensor(k).astype(np.float64).sum()),
                      "logits": logits, "probabilities": probs})
    doc = {
        "description": "PyTorch outputs of models/chest-xray-pneumonia/1 for formula-defined inputs",
        "model": "models/chest-xray-pneumonia/1/model.onnx",
        "input_name": "image",
        "output_name": "probabilities",
        "shape": [1, 1, preprocess.HEIGHT, preprocess.WIDTH],
        "formula": "x[i] = float32(sin(0.001 * float64(i) * float64(k+1))) for flat row-major index i in [0, 50176), computed in float64 then rounded to float32",
        "labels": LABELS,
        "tolerance": 1e-4,
        "cases": cases,
    }
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


def pick_images(data_root: str, per_class: int = 4):
    """Deterministic pick: evenly spaced files from each class's sorted listing."""
    out = []
    for lab in LABELS:
        files = sorted(os.listdir(os.path.join(data_root, lab)))
        step = len(files) // per_class
        out += [f"{lab}/{files[j * step + step // 2]}" for j in range(per_class)]
    return out


def _resize_case(img: np.ndarray, h: int, w: int) -> dict:
    r = preprocess.resize(img, h, w)
    return {"height": h, "width": w, **_stats(r), "values": _probe(r, _probe_idx(h, w))}


def write_images(net, data_root: str, path: str) -> None:
    images = []
    for n, rel in enumerate(pick_images(data_root)):
        src = os.path.join(data_root, rel)
        u8 = preprocess.load_gray_u8(src)
        gray = preprocess.to_unit(u8)
        x = preprocess.layout(preprocess.normalize(preprocess.resize(gray)))
        logits, probs = _run(net, x)
        entry = {
            "path": f"{REPO_DATA}/{rel}",
            "label": rel.split("/")[0],
            "source_size": [int(u8.shape[0]), int(u8.shape[1])],
            "gray_u8_sum": int(u8.astype(np.int64).sum()),
            "gray_values": _probe(gray, PROBE_224),
            "tensor": {"shape": list(x.shape), **_stats(x), "values": _probe(x, PROBE_224)},
            "logits": logits,
            "probabilities": probs,
        }
        if n in (0, 4):  # one NORMAL, one PNEUMONIA
            entry["resize"] = [_resize_case(gray, 160, 160), _resize_case(gray, 200, 300)]
        images.append(entry)
    syn = synthetic_image()
    doc = {
        "description": "Reference preprocessing (tools/train/preprocess.py, Pillow) and PyTorch outputs",
        "paths_relative_to": "repository root",
        "pipeline": "gray = PIL convert('L') / 255; resize 224x224 (Pillow BILINEAR on mode F; identity at 224); x = (gray - 0.5) / 0.25; NCHW [1,1,224,224]",
        "stats": "mean/std are population statistics over all values, computed in float64",
        "values": "[flat row-major index, value] pairs",
        "tolerance_note": "JPEG decoders may differ by 1-2 grey levels from libjpeg; compare with a tolerance",
        "images": images,
        "synthetic_resize": {
            "formula": "x[r,c] = float32(((r*7 + c*13) % 256) / 255.0) for r,c in [0,224)",
            "source": {"height": 224, "width": 224, **_stats(syn)},
            "cases": [_resize_case(syn, 160, 160), _resize_case(syn, 200, 300),
                      _resize_case(syn, 300, 200)],
        },
    }
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


def write_all(net, data_root: str, repo_root: str = ".") -> None:
    net.eval()
    write_tensors(net, os.path.join(repo_root, "internal/inference/testdata/parity/tensors.json"))
    write_images(net, data_root, os.path.join(repo_root, "internal/transform/testdata/parity/images.json"))


if __name__ == "__main__":
    import argparse

    from model import RadNet

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="models/chest-xray-pneumonia/1/model.pt")
    ap.add_argument("--data", default="../shared/data/chest-xray-pneumonia/train")
    args = ap.parse_args()
    torch.set_num_threads(2)
    m = RadNet()
    m.load_state_dict(torch.load(args.model, map_location="cpu"))
    write_all(m, args.data)
