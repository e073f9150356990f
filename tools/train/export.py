"""ONNX export and config.yaml writing for the chest-xray-pneumonia model."""

from __future__ import annotations

import hashlib
import json

import onnx
import torch

import preprocess
from model import LABELS, ExportWrapper

OPSET = 13
# Go RE2 syntax; matched against StudyDescription/SeriesDescription.
DESCRIPTION_PATTERN = r"(?i)\b(chest|thorax|thoracic|lungs?|cxr)\b"


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def export_onnx(net, path: str) -> None:
    """Export net+softmax: input "image" float32 [N,1,224,224] -> "probabilities" [N,2]; onnx.checker-validated."""
    wrapper = ExportWrapper(net).eval()
    dummy = torch.zeros(1, 1, preprocess.HEIGHT, preprocess.WIDTH)
    with torch.no_grad():
        torch.onnx.export(
            wrapper,
            dummy,
            path,
            input_names=["image"],
            output_names=["probabilities"],
            dynamic_axes={"image": {0: "N"}, "probabilities": {0: "N"}},
            opset_version=OPSET,
            do_constant_folding=True,
        )
    m = onnx.load(path)
    onnx.checker.check_model(m, full_check=True)


def _q(s: str) -> str:
    """YAML double-quoted scalar (JSON string syntax is valid YAML)."""
    return json.dumps(s)


def write_config(path: str, *, version: int, threshold: float, threshold_method: str,
                 sha256: str, size_bytes: int) -> None:
    """Write config.yaml (schema documented in models/README.md)."""
    labels = ", ".join(LABELS)
    pattern = _q(DESCRIPTION_PATTERN)
    text = f"""# radflow model config, schema_version 1 (schema: models/README.md).
# Written by tools/train/train.py; do not edit by hand.
schema_version: 1
name: chest-xray-pneumonia
version: {version}
task: classification
description: "NORMAL vs PNEUMONIA on frontal chest radiographs (research use only, not for clinical diagnosis)"
model:
  file: model.onnx
  format: onnx
  opset: {OPSET}
  sha256: {sha256}
  size_bytes: {size_bytes}
inputs:
  - name: image
    dtype: float32
    shape: [-1, 1, {preprocess.HEIGHT}, {preprocess.WIDTH}]   # -1 = dynamic batch axis "N"
    layout: NCHW
outputs:
  - name: probabilities
    dtype: float32
    shape: [-1, 2]   # softmax over labels, in label order
labels: [{labels}]
positive_label: PNEUMONIA
decision:
  # positive when probabilities[index of positive_label] >= threshold
  threshold: {threshold:.3f}
  method: {threshold_method}
preprocessing:
  - {{op: modality_lut}}                                  # DICOM only
  - {{op: voi, window: instance, fallback: minmax}}       # DICOM only; output in [0,1]
  - {{op: invert_monochrome1}}                            # DICOM only
  - {{op: grayscale, method: bt601}}                      # 8-bit raster (JPEG/PNG) only; output L/255 in [0,1]
  - {{op: resize, height: {preprocess.HEIGHT}, width: {preprocess.WIDTH}, method: bilinear_antialias}}
  - {{op: normalize, mean: {preprocess.MEAN}, std: {preprocess.STD}}}
  - {{op: layout, format: NCHW}}
routing:
  modalities: [CR, DX, DR]
  body_parts: [CHEST, THORAX]
  missing_body_part: match_descriptions_then_modality
  description_tags: [StudyDescription, SeriesDescription]
  description_patterns: [{pattern}]
"""
    with open(path, "w") as f:
        f.write(text)
