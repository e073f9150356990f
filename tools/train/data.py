"""Dataset listing, patient-grouped stratified split and in-memory loading."""

from __future__ import annotations

import os
import re

import numpy as np
import torch

import preprocess
from model import LABELS

_NORMAL_RE = re.compile(r"^((?:NORMAL2-)?IM-\d+)-")
_PNEU_RE = re.compile(r"^(person\d+)_")
_EXTS = (".jpeg", ".jpg", ".png")


def patient_id(filename: str) -> str:
    """Patient stem of a Kermany file name.

    person1234_bacteria_5678.jpeg -> person1234; IM-0429-0001-0002.jpeg ->
    IM-0429; NORMAL2-IM-1234-0001.jpeg -> NORMAL2-IM-1234. Unknown patterns
    fall back to the whole stem (one image = one patient).
    """
    for rx in (_NORMAL_RE, _PNEU_RE):
        m = rx.match(filename)
        if m:
            return m.group(1)
    return os.path.splitext(filename)[0]


def list_split(root: str):
    """Sorted [(path, label_index, patient)] for root/{NORMAL,PNEUMONIA}/*."""
    items = []
    for li, lab in enumerate(LABELS):
        d = os.path.join(root, lab)
        for f in sorted(os.listdir(d)):
            if f.lower().endswith(_EXTS):
                items.append((os.path.join(d, f), li, lab + "/" + patient_id(f)))
    return items


def grouped_split(items, val_frac: float, seed: int):
    """Patient-grouped, class-stratified split -> (train_idx, val_idx).

    Per class, patients are shuffled with a seeded generator and moved to
    validation until it holds >= val_frac of that class's images. No
    patient appears on both sides.
    """
    rng = np.random.RandomState(seed)
    train_idx, val_idx = [], []
    for li in range(len(LABELS)):
        by_pat = {}
        for i, (_, lab, pat) in enumerate(items):
            if lab == li:
                by_pat.setdefault(pat, []).append(i)
        pats = sorted(by_pat)
        rng.shuffle(pats)
        total = sum(len(v) for v in by_pat.values())
        taken = 0
        for p in pats:
            if taken < val_frac * total:
                val_idx += by_pat[p]
                taken += len(by_pat[p])
            else:
                train_idx += by_pat[p]
    return sorted(train_idx), sorted(val_idx)


def load_images_u8(paths) -> torch.Tensor:
    """Decode every file (contract step 1, resize step 2 if needed) -> uint8 [N, 224, 224].

    All Kermany training files are already 224x224, so step 2 is the identity
    and uint8 storage is exact; other sizes are resized in float and rounded.
    """
    out = np.empty((len(paths), preprocess.HEIGHT, preprocess.WIDTH), dtype=np.uint8)
    for i, p in enumerate(paths):
        g = preprocess.load_gray_u8(p)
        if g.shape != (preprocess.HEIGHT, preprocess.WIDTH):
            f = preprocess.resize(preprocess.to_unit(g))
            g = np.clip(np.rint(f * 255.0), 0, 255).astype(np.uint8)
        out[i] = g
    return torch.from_numpy(out)
