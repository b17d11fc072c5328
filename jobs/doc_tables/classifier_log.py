"""docs/classifier-log.md's tables."""

from __future__ import annotations

import json

from .shared import OUTS, SPLIT_NAMES, grid, grid_margin, history_summary, load, md_table, pm


def clf_metrics() -> str | None:
    m = load("clf/metrics.json")
    if m is None:
        return None
    keys = ["accuracy", "top2_accuracy", "macro_f1", "ece", "num_images"]
    return md_table(["split", *keys], [[SPLIT_NAMES[s], *(r[k] for k in keys)] for s, r in m.items()])


def full_budget() -> str | None:
    return history_summary(
        {
            "scratch, 100% labels, 10 epochs": "full/budget/scratch-e10.json",
            "scratch, 100% labels, 20 epochs (seed 0)": "full/grid/histories/scratch-f1-s0.json",
            "finetune, 100% labels, 10 epochs": "full/budget/finetune-e10.json",
            "finetune, 100% labels, 20 epochs (seed 0)": "full/grid/histories/finetune-f1-s0.json",
        },
        "val_acc",
    )


def recipe() -> str | None:
    variants = {
        "base": "recipe as is",
        "crop_pad-2": "crop padding 4 → 2",
        "weight_decay-0.005": "weight decay 5e-4 → 5e-3",
        "ema_decay-0.99": "EMA of the weights (decay 0.99)",
    }
    return history_summary({label: f"recipe/{name}.json" for name, label in variants.items()}, "val_acc")


CPU_RUNS = {  # outs/ folder -> (what its runs add to the GPU grid's recipe, its backbone as the history names it)
    "cpu_full": ("+ pad 2, BN biases 64x lr, shift TTA (CPU)", "latent 8×8"),
    "cpu_pool4": ("+ the same and pooling in all 3 blocks, latent_size=4 (CPU)", "latent 4×4"),
    "cpu_airbench": ("+ the same, whitening stem, BN scales frozen, airbench's SGD (CPU)", "latent 4×4, airbench net"),
}


def cpu_recipe() -> str | None:
    """Test accuracy at 100% labels: the old recipe (GPU grid) beside the airbench additions (CPU runs)."""
    old, rows = load("full/grid/grid.json"), []
    if old is None:
        return None
    for mode in ("finetune", "scratch"):
        o = old["summary"][mode]["1.0"]
        rows.append([mode, "old: pad 4, flip TTA (GPU)", 20, pm(o, digits=2, show_n=True)])
        for folder, (recipe, _) in CPU_RUNS.items():
            m, h = load(f"{folder}/{mode}/metrics.json"), load(f"{folder}/{mode}/history.json")
            if m is None or h is None:
                return None
            rows.append([mode, recipe, len(h), f"{100 * m['test']['accuracy']:.2f}"])
    return md_table(["mode", "recipe (device)", "epochs", "test accuracy (%)"], rows)


def cpu_recipe_history() -> str | None:
    runs = {}
    for folder, (_, backbone) in CPU_RUNS.items():
        runs[f"AE (full width, {backbone}, 3 epochs)"] = (f"{folder}/ae", "val_psnr")
        runs |= {
            f"{mode}, {backbone}, 100% labels": (f"{folder}/{mode}", "val_acc") for mode in ("finetune", "scratch")
        }
    rows = []
    for label, (name, metric) in runs.items():
        h = load(f"{name}/history.json")
        if h is None:
            return None
        rows.append([label, len(h), metric, h[-1][metric], sum(r["epoch_time_s"] for r in h), h[-1]["img_per_s"]])
    return md_table(["run", "epochs", "metric", "final", "train time (s)", "img/s (last epoch)"], rows)


def whiten() -> str | None:
    runs = {
        "3x3 conv stem (32 channels)": "whiten/airbench.json",
        "whitening stem (24 channels)": "whiten/airbench_whiten.json",
    }
    return history_summary(runs, "val_acc")


def jpeg() -> str | None:
    """The whitening-stem scratch run (outs/whiten) on the archive and on copies re-encoded at lower quality."""
    runs = {"the archive as is (Pillow JPEG q75 copies)": "whiten/airbench_whiten.json"}
    for q in (50, 30):
        psnr = load(f"jpeg/q{q}_psnr.json")
        if psnr is None:
            return None
        runs[f"re-encoded at q{q} ({psnr['psnr_vs_source_db']['test']:.2f} dB vs the archive)"] = f"jpeg/q{q}.json"
    return history_summary(runs, "val_acc")


def airbench_ref() -> str | None:
    """airbench94 itself (experiments/classifier/airbench_reference.py) on the archive: one row per run."""
    runs = [json.loads(f.read_text()) for f in (OUTS / "airbench_ref").glob("e*_s*.json")]
    if not runs:
        return None
    rows = []
    for r in sorted(runs, key=lambda r: (r["epochs"], r["seed"])):
        acc = r["test_accuracy"]
        rows.append(
            [
                r["epochs"],
                r["seed"],
                r["train_images"],
                *(f"{100 * acc[f'tta{k}']:.2f}" for k in (0, 1, 2)),
                r["train_seconds"],
            ]
        )
    header = [
        "epochs",
        "seed",
        "train images",
        "test acc. (%)",
        "+ flip TTA",
        "+ flip & shift TTA",
        "wall time (s, CPU)",
    ]
    return md_table(header, rows)


TABLES = {
    "grid": (grid, "experiments/classifier/run.sh"),
    "grid_margin": (grid_margin, "experiments/classifier/run.sh"),
    "clf_metrics": (clf_metrics, "experiments/classifier/run.sh"),
    "full_grid": (lambda: grid("full/"), "experiments/gpu/run.sh collect"),
    "full_grid_margin": (lambda: grid_margin("full/"), "experiments/gpu/run.sh collect"),
    "full_budget": (full_budget, "experiments/gpu/run.sh collect"),
    "recipe": (recipe, "experiments/classifier/run.sh"),
    "cpu_recipe": (cpu_recipe, "experiments/classifier/run.sh"),
    "cpu_recipe_history": (cpu_recipe_history, "experiments/classifier/run.sh"),
    "whiten": (whiten, "experiments/classifier/run.sh"),
    "jpeg": (jpeg, "experiments/classifier/run.sh"),
    "airbench_ref": (airbench_ref, "experiments/classifier/run.sh"),
}
