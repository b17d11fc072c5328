"""Classifier grid: {linear, finetune, scratch} x label fractions x seeds, side by side.

    python jobs/clf_grid.py --data PATH --encoder runs/ae --out runs/grid [--grid jobs/configs/clf_grid.yaml]

Each cell is an ordinary `src/train_clf.py` run (so it resumes), then `src/evaluate.py` on the
test split. Writes OUT/grid.csv, OUT/grid.json and OUT/grid.png (test accuracy
vs label fraction per mode), and logs the table to W&B (offline without credentials).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from cifarae import grid as grid_lib
from cifarae import plots, tracking
from cifarae.errors import UserError, cli_main

REPO = Path(__file__).resolve().parents[1]


def run(cmd: list[str]) -> None:
    print("+", " ".join(cmd), flush=True)
    proc = subprocess.run(cmd, cwd=REPO)
    if proc.returncode != 0:
        raise UserError(f"grid cell failed (exit {proc.returncode}): {' '.join(cmd)}")


def tested(cell: Path) -> bool:
    """Whether ``cell`` has an evaluation that includes the test split."""
    metrics = cell / "eval" / "metrics.json"
    return metrics.is_file() and "test" in json.loads(metrics.read_text())


def log_to_wandb(out: Path, rows: list[dict]) -> None:
    run = tracking.start_run("cifarae", out, "grid", {"cells": len(rows)})
    if run is None:
        return
    import wandb

    columns = list(rows[0])
    run.log({"grid/test_accuracy": wandb.Table(columns=columns, data=[[r.get(c) for c in columns] for r in rows])})
    run.log({"grid/accuracy_vs_labels": wandb.Image(str(out / "grid.png"))})
    run.finish()


@cli_main
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--encoder", default="", help="AE run directory or checkpoint (all modes but scratch)")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--grid", type=Path, default=REPO / "jobs" / "configs" / "clf_grid.yaml")
    p.add_argument("--modes", nargs="+", default=None, help="only these modes (default: the grid file's)")
    p.add_argument("--no-wandb", action="store_true")
    p.add_argument(
        "--tabulate", action="store_true", help="train nothing: tabulate the cells already evaluated under --out"
    )
    p.add_argument("overrides", nargs="*", help="key=value overrides for every cell")
    args = p.parse_args(argv)
    grid = grid_lib.load_grid(args.grid, args.modes)
    if not args.encoder and not args.tabulate and set(grid["modes"]) - {"scratch"}:
        raise UserError("--encoder <AE run> is needed for the linear and finetune modes")
    python = [sys.executable]
    launcher = os.environ.get("LAUNCHER", "").split() or python

    rows = []
    for mode, fraction, seed, cell, cell_args in grid_lib.cells(grid, args.out):
        name = cell.name
        cmd = [*launcher, "src/train_clf.py", "--data", args.data, "--out", str(cell)]
        cmd += ["--encoder", args.encoder] if args.encoder else []  # scratch: the default backbone
        cmd += [*cell_args, *args.overrides]
        if args.tabulate:
            if not tested(cell):
                print(f"{name}: not evaluated on the test split, left out of the table")
                continue
        else:
            run(cmd)
        if not tested(cell):
            run(
                [
                    *python,
                    "src/evaluate.py",
                    "--run",
                    str(cell),
                    "--data",
                    args.data,
                    "--splits",
                    "test",  # validation accuracy, which picked the epoch, comes from the history
                    "--no-wandb",
                    "--precision",
                    "bf16",
                ]
            )
        result = json.loads((cell / "eval" / "metrics.json").read_text())
        history = json.loads((cell / "history.json").read_text())
        rows.append(
            {
                "mode": mode,
                "label_fraction": float(fraction),
                "seed": seed,
                "epochs": len(history),
                "best_val_accuracy": max(h["val_acc"] for h in history),
                "test_accuracy": result["test"]["accuracy"],
                "test_macro_f1": result["test"]["macro_f1"],
                "test_ece": result["test"]["ece"],
                "train_time_s": sum(h["epoch_time_s"] for h in history),
            }
        )

    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "grid.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    summary = {}
    for mode in grid["modes"]:
        for fraction in sorted({r["label_fraction"] for r in rows}):
            accs = [r["test_accuracy"] for r in rows if r["mode"] == mode and r["label_fraction"] == fraction]
            summary.setdefault(mode, {})[str(fraction)] = {
                "mean": statistics.mean(accs),
                "std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
                "n": len(accs),
            }
    (args.out / "grid.json").write_text(json.dumps({"rows": rows, "summary": summary}, indent=1))
    series = {mode: ([float(f) * 100 for f in s], [v["mean"] * 100 for v in s.values()]) for mode, s in summary.items()}
    plots.line_plot(
        series,
        args.out / "grid.png",
        "labelled training images (%)",
        "test accuracy (%)",
        "classifier: AE-pretrained vs from scratch",
        logx=True,
    )
    if not args.no_wandb:
        log_to_wandb(args.out, rows)
    for mode, s in summary.items():
        print(mode, " ".join(f"{f}: {v['mean']:.4f}±{v['std']:.4f}" for f, v in s.items()))


if __name__ == "__main__":
    main()
