"""Autoencoder design iterations at a small, equal budget: loss, bottleneck size, upsampling.

    python experiments/autoencoder/ablations.py --data PATH --out runs/ablations [--base jobs/configs/cpu_ae.yaml]
        [--only V ...] [--evaluate] [key=value ...]

Every variant is an ordinary `src/train_ae.py` run (resumable) on the same training subset and
budget (key=value overrides the budget too); the table compares their best validation PSNR, and
with --evaluate also their test PSNR and SSIM (src/evaluate.py). Writes OUT/ablations.json and .csv.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path

from cifarae.errors import UserError, cli_main

REPO = Path(__file__).resolve().parents[2]

BUDGET = ["train_subset=5000", "val_subset=1000", "epochs=3", "wandb=false"]
VARIANTS = {  # name -> (what changed, overrides on top of the base config)
    "base": ("MSE loss, latent 12x8x8 (4x), resize+conv", []),
    "loss_l1": ("L1 loss", ["loss={l1: 1.0}"]),
    "loss_l1_ssim": ("0.16 L1 + 0.84 (1-SSIM)", ["loss={l1: 0.16, ssim: 0.84}"]),
    "latent_3": ("latent 3x8x8 (16x)", ["latent_channels=3"]),
    "latent_6": ("latent 6x8x8 (8x)", ["latent_channels=6"]),
    "latent_24": ("latent 24x8x8 (2x)", ["latent_channels=24"]),
    "up_pixel_shuffle": ("pixel-shuffle upsampling", ["upsample=pixel_shuffle"]),
    "up_transposed": ("transposed-conv upsampling", ["upsample=transposed"]),
}


@cli_main
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--base", default=str(REPO / "jobs" / "configs" / "cpu_ae.yaml"))
    p.add_argument("--only", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    p.add_argument("--evaluate", action="store_true", help="also score each variant on the test split")
    p.add_argument("overrides", nargs="*")
    args = p.parse_args(argv)
    rows = []
    for name in args.only:
        change, overrides = VARIANTS[name]
        run = args.out / name
        cmd = [sys.executable, "src/train_ae.py", "--data", args.data, "--out", str(run), "--config", args.base]
        cmd += [*BUDGET, *overrides, *args.overrides]
        print("+", " ".join(cmd), flush=True)
        if subprocess.run(cmd, cwd=REPO).returncode != 0:
            raise UserError(f"variant {name} failed: {' '.join(cmd)}")
        history = json.loads((run / "history.json").read_text())
        best = max(history, key=lambda h: h["val_psnr"])
        row = {
            "variant": name,
            "change": change,
            "val_psnr": best["val_psnr"],
            "val_mse": best["val_mse"],
            "train_loss": history[-1]["train_loss"],
            "img_per_s": history[-1]["img_per_s"],
        }
        if args.evaluate:
            metrics = run / "eval" / "metrics.json"
            if not metrics.is_file():
                cmd = [sys.executable, "src/evaluate.py", "--run", str(run), "--data", args.data, "--splits", "test"]
                if subprocess.run([*cmd, "--no-wandb"], cwd=REPO).returncode != 0:
                    raise UserError(f"evaluation of {name} failed: {' '.join(cmd)}")
            test = json.loads(metrics.read_text())["test"]
            row.update({k: test[k] for k in ("compression_ratio", "psnr_dataset", "psnr_mean", "ssim")})
        rows.append(row)
    args.out.mkdir(parents=True, exist_ok=True)
    budget = [*BUDGET, *args.overrides]
    (args.out / "ablations.json").write_text(json.dumps({"budget": budget, "rows": rows}, indent=1))
    with open(args.out / "ablations.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    for r in rows:
        print(f"{r['variant']:>18}  val PSNR {r['val_psnr']:.2f} dB  ({r['change']})")


if __name__ == "__main__":
    main()
