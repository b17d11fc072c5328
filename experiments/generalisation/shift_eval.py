"""Generalisation under synthetic shifts: AE reconstruction PSNR and classifier accuracy vs severity.

    python experiments/generalisation/shift_eval.py --data PATH --ae runs/ae --clf runs/clf --out outs/shift
        [--images 2000]

Uses a stratified subset of the CIFAR-10 test split, shifted by src/cifarae/shifts.py.
Writes OUT/shift.json, OUT/shift_psnr.png and OUT/shift_accuracy.png.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from cifarae import checkpoint, data, metrics, plots, shifts
from cifarae.errors import cli_main
from cifarae.evaluation import load_model
from cifarae.tasks import predict_logits, quantize_8bit

REPO = Path(__file__).resolve().parents[2]


@torch.no_grad()
def measure(ae, clf, clf_cfg, x: torch.Tensor, y: torch.Tensor, batch: int = 500) -> dict:
    sq_err, correct = 0.0, 0
    for i in range(0, len(x), batch):
        xb, yb = x[i : i + batch], y[i : i + batch]
        x_hat = quantize_8bit(ae(xb)[0])
        sq_err += float(metrics.per_image_reconstruction(x_hat, xb)["mse"].double().sum())
        correct += int((predict_logits(clf, xb, clf_cfg).argmax(1) == yb).sum())
    mse = sq_err / len(x)
    return {"psnr": metrics.psnr(mse), "accuracy": correct / len(x)}


@cli_main
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--ae", required=True, help="autoencoder run directory or checkpoint")
    p.add_argument("--clf", required=True, help="classifier run directory or checkpoint")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--images", type=int, default=2000, help="stratified test images per condition")
    args = p.parse_args(argv)
    torch.manual_seed(0)
    ae, _ = load_model(checkpoint.load(args.ae))
    clf, clf_cfg = load_model(checkpoint.load(args.clf))
    ds = data.load(args.data)
    images, y = ds.subset("test", args.images)
    x = images.float() / 255

    clean = measure(ae, clf, clf_cfg, x, y)
    print(f"clean: {clean}", flush=True)
    results = {"clean": clean, "images": len(y), "severities": shifts.SEVERITIES, "shifts": {}}
    for kind, levels in shifts.SEVERITIES.items():
        results["shifts"][kind] = []
        for level in levels:
            r = measure(ae, clf, clf_cfg, shifts.apply(x, kind, level), y)
            results["shifts"][kind].append({"level": level, **r})
            print(f"{kind} {level}: {r}", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "shift.json").write_text(json.dumps(results, indent=1))
    for key, label in (("psnr", "reconstruction PSNR (dB)"), ("accuracy", "classifier accuracy")):
        series = {
            kind: ([0, 1, 2, 3], [clean[key]] + [r[key] for r in rows]) for kind, rows in results["shifts"].items()
        }
        plots.line_plot(series, args.out / f"shift_{key}.png", "severity (0 = clean)", label, f"{label} under shift")


if __name__ == "__main__":
    main()
