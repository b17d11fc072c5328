"""Classifier grid: {linear, finetune, scratch} x label fractions x seeds, side by side.

    python jobs/clf_grid.py --data PATH --encoder runs/ae --out runs/grid [--grid jobs/configs/clf_grid.yaml]
    python jobs/clf_grid.py --merge runs/grid runs/grid_masked --out runs/grid_all

Each cell is an ordinary `src/train_clf.py` run (so it resumes), then `src/evaluate.py` on the
test split. Writes OUT/grid.csv, OUT/grid.json and OUT/grid.png (test accuracy
vs label fraction per mode), and logs the table to W&B (offline without credentials).
Every row names the pretraining objective of its encoder (reconstruct, masked; none for scratch),
so one grid per objective (an AE pretrained with objective=masked as --encoder, say) can be merged:
--merge tabulates the grid.json of several grids together, one line per mode and objective, with
the scratch cells (which no encoder touches) once.
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

import yaml

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


def objective_of(mode: str, cell: Path, encoder: str) -> str:
    """The pretraining objective of the cell's encoder (the one its config names, else ``encoder``)."""
    if mode == "scratch":
        return "none"
    config = cell / "config.yaml"
    if config.is_file():
        encoder = (yaml.safe_load(config.read_text()) or {}).get("encoder") or encoder
    path = Path(encoder)
    enc_config = path / "config.yaml" if path.is_dir() else path.parent / "config.yaml"
    if not enc_config.is_file():
        return "unknown"
    return (yaml.safe_load(enc_config.read_text()) or {}).get("objective", "reconstruct")


def series_name(row: dict, objectives: set[str]) -> str:
    """The plot's and summary's line: the mode, with its objective when the table has several."""
    if len(objectives) < 2 or row["mode"] == "scratch":
        return row["mode"]
    return f"{row['mode']} ({row['objective']})"


def merge(grids: list[Path]) -> list[dict]:
    """The rows of several grids' grid.json; the scratch cells once (the first grid's)."""
    rows, seen = [], set()
    for out in grids:
        path = out / "grid.json" if out.is_dir() else out
        if not path.is_file():
            raise UserError(f"--merge {out}: no grid.json (run jobs/clf_grid.py --out {out} first)")
        for row in json.loads(path.read_text())["rows"]:
            row = {**row, "objective": row.get("objective", "none" if row["mode"] == "scratch" else "reconstruct")}
            key = (row["mode"], row["objective"], row["label_fraction"], row["seed"])
            if key in seen:
                continue
            seen.add(key)
            rows.append(row)
    return rows


def write_tables(out: Path, rows: list[dict], modes: list[str]) -> dict:
    """grid.csv, grid.json (rows and mean +- std per line and fraction) and grid.png; returns the summary."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "grid.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    objectives = {r["objective"] for r in rows if r["mode"] != "scratch"}
    lines = []
    for mode in modes:
        for r in rows:
            name = series_name(r, objectives)
            if r["mode"] == mode and name not in lines:
                lines.append(name)
    summary = {}
    for name in lines:
        mine = [r for r in rows if series_name(r, objectives) == name]
        for fraction in sorted({r["label_fraction"] for r in mine}):
            accs = [r["test_accuracy"] for r in mine if r["label_fraction"] == fraction]
            summary.setdefault(name, {})[str(fraction)] = {
                "mean": statistics.mean(accs),
                "std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
                "n": len(accs),
            }
    (out / "grid.json").write_text(
        json.dumps({"objectives": sorted(objectives), "rows": rows, "summary": summary}, indent=1)
    )
    series = {name: ([float(f) * 100 for f in s], [v["mean"] * 100 for v in s.values()]) for name, s in summary.items()}
    title = "classifier: " + ("pretraining objectives" if len(objectives) > 1 else "AE-pretrained") + " vs from scratch"
    plots.line_plot(series, out / "grid.png", "labelled training images (%)", "test accuracy (%)", title, logx=True)
    return summary


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
    p.add_argument("--data", default="", help="CIFAR-10 source (not needed with --merge)")
    p.add_argument("--encoder", default="", help="AE run directory or checkpoint (all modes but scratch)")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--grid", type=Path, default=REPO / "jobs" / "configs" / "clf_grid.yaml")
    p.add_argument("--modes", nargs="+", default=None, help="only these modes (default: the grid file's)")
    p.add_argument("--no-wandb", action="store_true")
    p.add_argument(
        "--tabulate", action="store_true", help="train nothing: tabulate the cells already evaluated under --out"
    )
    p.add_argument(
        "--merge", nargs="+", type=Path, default=None, metavar="GRID", help="train nothing: one table of these grids"
    )
    p.add_argument("overrides", nargs="*", help="key=value overrides for every cell")
    args = p.parse_args(argv)
    if args.merge:
        rows = merge(args.merge)
        modes = [m for m in ("linear", "finetune", "scratch") if any(r["mode"] == m for r in rows)]
        finish(args, rows, modes)
        return
    if not args.data:
        raise UserError("--data <CIFAR-10 source> is needed (except with --merge)")
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
        val_accs = [h["val_acc"] for h in history if "val_acc" in h]  # none: fitted without a validation split
        rows.append(
            {
                "mode": mode,
                "label_fraction": float(fraction),
                "seed": seed,
                "epochs": len(history),
                "best_val_accuracy": max(val_accs) if val_accs else None,
                "test_accuracy": result["test"]["accuracy"],
                "test_macro_f1": result["test"]["macro_f1"],
                "test_ece": result["test"]["ece"],
                "train_time_s": sum(h["epoch_time_s"] for h in history),
                "objective": objective_of(mode, cell, args.encoder),  # the encoder's pretraining; none: scratch
            }
        )

    if not rows:
        raise UserError(f"no grid cell under {args.out} has a test evaluation yet")
    finish(args, rows, grid["modes"])


def finish(args, rows: list[dict], modes: list[str]) -> None:
    summary = write_tables(args.out, rows, modes)
    if not args.no_wandb:
        log_to_wandb(args.out, rows)
    for name, s in summary.items():
        print(name, " ".join(f"{f}: {v['mean']:.4f}±{v['std']:.4f}" for f, v in s.items()))


if __name__ == "__main__":
    main()
