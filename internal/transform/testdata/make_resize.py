#!/usr/bin/python3
"""Write resize_pil.json: Pillow's Image.resize(BILINEAR) on mode "F" images.

Sources are formula-defined so the Go test rebuilds them:
  x[r, c] = float32(sin(0.7*r + 0.3*c) * 100 + 0.25*r*c)   (float64, then rounded)
Cases cover shrinking (antialias: support widens), enlarging, one axis only,
and non-integer scales. Every output value is stored (float32 as float64).
Run: /usr/bin/python3 internal/transform/testdata/make_resize.py  (Pillow 9.4)
"""
import json
import os

import numpy as np
import PIL
from PIL import Image

CASES = [  # (src h, src w, dst h, dst w)
    (5, 7, 3, 4),
    (10, 10, 23, 7),
    (9, 13, 9, 5),
    (13, 9, 4, 9),
    (31, 17, 8, 11),
    (6, 6, 6, 6),
]


def source(h, w):
    r = np.arange(h, dtype=np.float64)[:, None]
    c = np.arange(w, dtype=np.float64)[None, :]
    return (np.sin(0.7 * r + 0.3 * c) * 100 + 0.25 * r * c).astype(np.float32)


out = []
for sh, sw, dh, dw in CASES:
    im = Image.fromarray(source(sh, sw), mode="F").resize((dw, dh), Image.BILINEAR)
    out.append({"src": [sh, sw], "dst": [dh, dw],
                "values": [float(v) for v in np.asarray(im, dtype=np.float32).ravel()]})
here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "resize_pil.json"), "w") as f:
    json.dump({"pillow": PIL.__version__,
               "formula": "x[r,c] = float32(sin(0.7*r + 0.3*c)*100 + 0.25*r*c), computed in float64",
               "cases": out}, f)
    f.write("\n")
