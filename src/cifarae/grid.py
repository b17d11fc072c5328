"""The classifier grid: {linear, finetune, scratch} x label fractions x seeds (jobs/configs/clf_grid.yaml).

jobs/clf_grid.py runs and tabulates it; the pipeline launchers run its cells as the classifier stage.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from .errors import UserError

REPO = Path(__file__).resolve().parents[2]  # a grid file names its config relative to the checkout


def cell_name(mode: str, fraction: float, seed: int) -> str:
    return f"{mode}-f{fraction:g}-s{seed}"


def load_grid(path: Path, modes: list[str] | None = None) -> dict:
    """The grid file, optionally restricted to ``modes``."""
    if not Path(path).is_file():
        raise UserError(f"grid file {path} does not exist (e.g. jobs/configs/clf_grid.yaml)")
    grid = yaml.safe_load(Path(path).read_text())
    grid["modes"] = modes or grid["modes"]
    return grid


def cells(grid: dict, out: Path):
    """Every cell as (mode, fraction, seed, run directory, its src/train_clf.py arguments).

    The arguments hold the grid's config, the mode, fraction, seed and overrides in this order: the
    grid's, its mode's, its fraction's; the caller appends its own after them.
    """
    for mode in grid["modes"]:
        for fraction, spec in grid["fractions"].items():
            for seed in spec.get("seeds", [0]):
                cell = Path(out) / cell_name(mode, float(fraction), seed)
                args = ["--config", str(REPO / grid["config"])] if grid.get("config") else []
                args += ["--mode", mode, "--label-fraction", str(fraction), f"seed={seed}"]
                args += [*grid.get("overrides", []), *grid.get("mode_overrides", {}).get(mode, [])]
                args += spec.get("overrides", [])
                yield mode, float(fraction), seed, cell, args
