#!/usr/bin/python3
"""Write dicom_parity.json: the chest model's DICOM preprocessing of real
files in ../shared/dicom, computed independently with pydicom + numpy +
Pillow, for the Go DICOM path (dicom.ParseFile -> pixel.Decode ->
transform.Pipeline.FromInstance).

Contract (models/README.md): modality LUT (Rescale Slope/Intercept, identity
when absent) -> VOI: first Window Center/Width, LINEAR (PS3.3 C.11.2.1.2.1:
x <= c-0.5-(w-1)/2 -> 0, x > c-0.5+(w-1)/2 -> 1, else (x-(c-0.5))/(w-1)+0.5),
else min-max -> 1-v for MONOCHROME1 -> Pillow BILINEAR resize to 224x224 on
mode "F" -> (x-0.5)/0.25. VOI in float64, stored as float32.

Run from the repository root: /usr/bin/python3 internal/transform/testdata/make_dicom_parity.py
"""
import json
import os

import numpy as np
import pydicom
from PIL import Image

FILES = [  # relative to the repository root
    "../shared/dicom/nhsx-nih-chestxray/1.3.6.1.4.1.11129.5.5.110503645592756492463169821050252582267888.dcm",
    "../shared/dicom/fo-dicom-tests/CR-MONO1-10-chest",
]


def first(v):
    if v is None:
        return None
    return float(v[0]) if isinstance(v, pydicom.multival.MultiValue) else float(v)


def preprocess(path):
    d = pydicom.dcmread(path, force=True)
    if "TransferSyntaxUID" not in d.file_meta:
        d.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
    x = d.pixel_array.astype(np.float64)
    x = x * float(d.get("RescaleSlope", 1) or 1) + float(d.get("RescaleIntercept", 0) or 0)
    c, w = first(d.get("WindowCenter")), first(d.get("WindowWidth"))
    if c is not None and w is not None and w >= 1:
        lo, hi = c - 0.5 - (w - 1) / 2, c - 0.5 + (w - 1) / 2
        y = np.where(x <= lo, 0.0, np.where(x > hi, 1.0, (x - (c - 0.5)) / (w - 1) + 0.5))
        voi = f"window {c}/{w}"
    else:
        y = (x - x.min()) / (x.max() - x.min())
        voi = "minmax"
    y = y.astype(np.float32)
    if d.PhotometricInterpretation == "MONOCHROME1":
        y = (np.float32(1) - y).astype(np.float32)
    r = np.asarray(Image.fromarray(y, mode="F").resize((224, 224), Image.BILINEAR), dtype=np.float32)
    t = ((r - np.float32(0.5)) / np.float32(0.25)).astype(np.float32)
    flat = t.ravel()
    probes = sorted({0, 1, 223, 224, 12345, 25088, 25200, 37631, 40000, 50175})
    t64 = t.astype(np.float64)
    return {
        "path": path, "rows": int(d.Rows), "columns": int(d.Columns),
        "photometric": str(d.PhotometricInterpretation), "voi": voi,
        "mean": float(t64.mean()), "std": float(t64.std()),
        "min": float(t64.min()), "max": float(t64.max()),
        "values": [[i, float(flat[i])] for i in probes],
    }


out = [preprocess(f) for f in FILES if os.path.exists(f)]
here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "dicom_parity.json"), "w") as f:
    json.dump({"pipeline": "chest-xray-pneumonia@1 DICOM steps, pydicom + numpy + Pillow",
               "paths_relative_to": "repository root", "images": out}, f, indent=1)
    f.write("\n")
