"""MODEL_CARD.md writer: static text plus the figures measured by train.py."""

from __future__ import annotations

import json
import os

import augment


def _row(name: str, m: dict) -> str:
    c = m["confusion"]
    return (f"| {name} | {m['n']} | {m['accuracy']:.4f} | {m['sensitivity']:.4f} | {m['specificity']:.4f} "
            f"| {m['precision']:.4f} | {m['f1']:.4f} | {m['roc_auc']:.4f} | {c['tp']} | {c['fn']} | {c['fp']} | {c['tn']} |")


def _spread(runs_path: str) -> str:
    """Markdown for seed_runs.json (other seeds, same command with --seed), if present."""
    if not os.path.exists(runs_path):
        return "Seed-to-seed spread was not measured.\n"
    with open(runs_path) as f:
        doc = json.load(f)
    runs = doc["runs"]
    lines = ["Seed spread (same command with `--seed S`; each seed also draws its own",
             "patient split, so the validation sets differ; `seed_runs.json`):", "",
             "| seed | val n | threshold | accuracy | sensitivity | specificity | F1 | ROC AUC | minutes |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        m = r["clean"]
        lines.append(f"| {r['seed']} | {m['n']} | {m['threshold']:.3f} | {m['accuracy']:.4f} | {m['sensitivity']:.4f} "
                     f"| {m['specificity']:.4f} | {m['f1']:.4f} | {m['roc_auc']:.4f} | {r['total_seconds'] / 60:.1f} |")
    lines += [""] + [f"- {n}" for n in doc.get("notes", [])]
    return "\n".join(lines) + "\n"


def write_card(path: str, s: dict) -> None:
    v = s["validation"]
    spread = _spread(os.path.join(os.path.dirname(path), "seed_runs.json"))
    head = ("| validation set | n | accuracy | sensitivity | specificity | precision | F1 | ROC AUC | TP | FN | FP | TN |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|---|")
    rows = "\n".join(_row(sh, v[sh]) for sh in augment.SHIFTS)
    hist = "\n".join(
        f"| {h['epoch']} | {h['loss']:.4f} | "
        + " | ".join(f"{h['val_auc'][sh]:.4f}" if "val_auc" in h else "-" for sh in augment.SHIFTS)
        + f" | {h['elapsed_s']:.0f} |" for h in s["history"])
    text = f"""# Model card: chest-xray-pneumonia, version 1

**Research use only. Not a medical device; not for clinical diagnosis or triage.**

## What it does

Classifies a frontal chest radiograph as `NORMAL` or `PNEUMONIA` (bacterial and
viral pneumonia together). Input `image` float32 [N,1,224,224] prepared by the
preprocessing contract in `config.yaml`; output `probabilities` float32 [N,2]
(softmax, label order `[NORMAL, PNEUMONIA]`). PNEUMONIA is predicted when
P(PNEUMONIA) >= {s['threshold']:.3f} (the `decision.threshold`).

## Data

- Kermany DS, Goldbaum M, et al. *Identifying Medical Diagnoses and Treatable
  Diseases by Image-Based Deep Learning.* Cell 172(5):1122-1131, 2018.
  Data: Mendeley Data, doi:10.17632/rscbjbr9sj.2, license **CC BY 4.0**.
- Pediatric (1-5 years) anterior-posterior chest radiographs from Guangzhou
  Women and Children's Medical Center, one centre; copy resized to 224x224
  (aspect ratio not kept) from waliatushar/ai-pneumonia-detection
  (see `../shared/data/chest-xray-pneumonia/SOURCE.md`).
- Only the official **training** split was used (NORMAL 1341, PNEUMONIA 3875).
  The official test split is withheld as the sequestered benchmark and was
  never read by training, selection or threshold choice.

## Split

Validation carved out of the training split, **grouped by patient** (file-name
stem: `personN` for PNEUMONIA, `IM-NNNN` / `NORMAL2-IM-NNNN` for NORMAL) and
stratified by class: per class, patients shuffled with seed {s['seed']} and moved to
validation until it holds >= {s['args']['val_frac']:.0%} of that class. Train {s['train_n']} images
(NORMAL/PNEUMONIA {s['train_class_counts'][0]}/{s['train_class_counts'][1]}), validation {s['val_n']} images. No patient is on both
sides (checked in train.py). The validation file list is in `split.json`.

## Model and training

- RadNet (`tools/train/model.py`): per-image standardisation inside the graph
  (zero mean, unit variance per image, so global brightness/contrast does not
  reach the convolutions), stride-2 stem and four stride-2 stages of 3x3
  conv-BatchNorm-ReLU (widths 16-32-48-80-128, 9 conv layers, 224->7), global
  average pool, dropout 0.2, linear 128->2. {s['params']:,} parameters; ONNX
  opset 13, {s['onnx_bytes']:,} bytes.
- Loss: class-weighted cross-entropy (weights inverse to class frequency),
  label smoothing 0.05. AdamW (lr {s['args']['lr']}, weight decay {s['args']['weight_decay']}), OneCycle, batch
  {s['args']['batch']}, {s['args']['epochs']} epochs planned, {s['epochs_run']} run; EMA of weights (decay {s['args']['ema']}) is
  what is evaluated and exported.
- Augmentation (torch ops, `augment.py`): rotation +-8 deg, scale 0.9-1.12,
  shift +-6%; gamma, contrast, brightness; random Gaussian blur, unsharp
  masking and Gaussian noise (robustness to acquisition differences).
- Selection: the epoch with the best mean validation ROC AUC over clean
  validation images and three fixed acquisition-like shifts of them
  ({', '.join(augment.SHIFTS[1:])}; `augment.apply_shift`). Best epoch: {s['best_epoch']}.
- Threshold: `{s['threshold_method']}`: the threshold maximising Youden's J
  (sensitivity + specificity - 1) on the validation images pooled over the
  clean and the three shifted copies (grid step 0.005, middle of the tied
  plateau). Validation data only.
- Command (= `make train`), fully seeded (split, init, batch order, augmentation;
  bit-for-bit repeatability across machines/thread counts is not guaranteed):
  `/usr/bin/python3 tools/train/train.py --data ../shared/data/chest-xray-pneumonia/train --out models/chest-xray-pneumonia/1`
- Measured: {s['total_seconds'] / 60:.1f} min wall in total ({s['train_seconds'] / 60:.1f} min of training epochs) on
  {s['threads']} CPU threads (torch.set_num_threads({s['threads']})) on a machine shared with other jobs.

## Validation metrics (threshold {s['threshold']:.3f})

Positive class PNEUMONIA. `clean` is the plain validation split; the other rows
are the same images under fixed synthetic acquisition shifts.

{head}
{rows}

At threshold 0.5 on clean validation: accuracy {s['validation_clean_at_0.5']['accuracy']:.4f}, sensitivity
{s['validation_clean_at_0.5']['sensitivity']:.4f}, specificity {s['validation_clean_at_0.5']['specificity']:.4f}, F1 {s['validation_clean_at_0.5']['f1']:.4f}.

These are in-distribution figures from one seed. The known gap to the
official test split (different acquisition; earlier from-scratch CNNs with
~0.98 validation accuracy scored ~0.92 on it, mostly losing specificity) means
the benchmark figures will be lower.
{spread}
Per-epoch validation ROC AUC (EMA weights; validated in the second half of the schedule only):

| epoch | train loss | {' | '.join(augment.SHIFTS)} | elapsed s |
|---|---|{'---|' * len(augment.SHIFTS)}---|
{hist}

## Intended use

Research and software testing of the radflow pipeline (DICOM in -> AI result
out). Not for clinical diagnosis, screening or triage, and not for adults.

## Limitations

- Pediatric patients from a single centre; one acquisition population. Adult
  radiographs, other hospitals, devices and post-processing are out of
  distribution.
- Trained on 224x224 JPEG copies with aspect ratio not kept; DICOM input goes
  through a different path (modality LUT, VOI window) and may look different
  from the training images.
- Labels are image-level NORMAL/PNEUMONIA from the source dataset; bacterial
  and viral pneumonia are merged; no other findings are modelled; an image
  with another disease is forced into one of the two classes.
- Validation split is small ({s['val_n']} images) and in-distribution; the
  threshold may not transfer to shifted data.
- No calibration beyond softmax; probabilities are not risk estimates.
"""
    with open(path, "w") as f:
        f.write(text)
