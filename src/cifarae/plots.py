"""matplotlib figures for the evaluation and the report, saved as PNG."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

SPLIT_NAMES = {"train": "train", "val": "validation", "test": "test"}


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def loss_plot(history: list[dict], path: Path) -> Path:
    epochs = [h["epoch"] for h in history]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    axes[0].plot(epochs, [h["train_loss"] for h in history], "o-", label="train")
    if "val_loss" in history[0]:  # a run without a validation split (val_size=0) has the training loss only
        axes[0].plot(epochs, [h["val_loss"] for h in history], "s-", label="validation")
    axes[0].set(xlabel="epoch", ylabel="loss", title="loss per epoch")
    axes[0].legend()
    metric = "val_psnr" if "val_psnr" in history[0] else "val_acc" if "val_acc" in history[0] else "lr"
    axes[1].plot(epochs, [h[metric] for h in history], "s-", color="C1")
    axes[1].set(xlabel="epoch", ylabel=metric, title=f"{metric} per epoch")
    for ax in axes:
        ax.grid(alpha=0.3)
    return _save(fig, path)


def metrics_table(metrics: dict[str, dict], keys: list[str], path: Path) -> Path:
    splits = list(metrics)
    cells = [[f"{metrics[s][k]:.4g}" for s in splits] for k in keys]
    fig, ax = plt.subplots(figsize=(1.8 + 1.6 * len(splits), 0.45 * len(keys) + 0.8))
    ax.axis("off")
    table = ax.table(
        cellText=cells,
        rowLabels=keys,
        colLabels=[SPLIT_NAMES.get(s, s) for s in splits],
        loc="center",
        cellLoc="center",
    )
    table.scale(1, 1.4)
    ax.set_title("metrics per split")
    return _save(fig, path)


def image_grid(rows: list[tuple[str, torch.Tensor]], path: Path, titles: list[str] | None = None) -> Path:
    """rows: (label, N x 3 x H x W in [0, 1]) drawn one row each, e.g. originals over reconstructions."""
    n = len(rows[0][1])
    fig, axes = plt.subplots(len(rows), n, figsize=(1.2 * n, 1.3 * len(rows)), squeeze=False)
    for r, (label, images) in enumerate(rows):
        for c in range(n):
            ax = axes[r][c]
            ax.imshow(images[c].permute(1, 2, 0).clamp(0, 1).cpu().numpy(), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(label, fontsize=8)
            if titles and r == 0:
                ax.set_title(titles[c], fontsize=7)
    return _save(fig, path)


def regression_plot(hist: torch.Tensor, r2: float, split: str, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    counts = hist.double().T.numpy()  # rows: reconstructed, cols: original
    im = ax.imshow(np.log10(1 + counts), origin="lower", extent=(0, 255, 0, 255), cmap="viridis", aspect="equal")
    ax.plot([0, 255], [0, 255], "r--", lw=1, label="identity")
    ax.set(xlabel="original pixel value", ylabel="reconstructed pixel value")
    ax.set_title(f"{SPLIT_NAMES.get(split, split)}: R$^2$ = {r2:.4f}")
    ax.legend(loc="upper left")
    fig.colorbar(im, ax=ax, label="log10(1 + count)")
    return _save(fig, path)


def confusion_matrix_plot(matrix: list[list[int]], classes: list[str], path: Path, title: str) -> Path:
    m = np.array(matrix)
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    im = ax.imshow(m, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(
                j, i, m[i, j], ha="center", va="center", fontsize=7, color="white" if m[i, j] > m.max() / 2 else "k"
            )
    fig.colorbar(im, ax=ax)
    return _save(fig, path)


def per_class_bars(values: dict[str, dict[str, float]], path: Path, title: str, ylabel: str) -> Path:
    """values: series name -> {class: value}, drawn as grouped bars."""
    classes = list(next(iter(values.values())))
    x = np.arange(len(classes))
    width = 0.8 / len(values)
    fig, ax = plt.subplots(figsize=(9, 3.6))
    for i, (name, per_class) in enumerate(values.items()):
        ax.bar(x + i * width, [per_class[c] for c in classes], width, label=name)
    ax.set_xticks(x + 0.4 - width / 2, classes, rotation=30, ha="right")
    ax.set(ylabel=ylabel, title=title)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def line_plot(
    series: dict[str, tuple[list, list]], path: Path, xlabel: str, ylabel: str, title: str, logx: bool = False
) -> Path:
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, (xs, ys) in series.items():
        ax.plot(xs, ys, "o-", label=name)
    if logx:
        ax.set_xscale("log")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)
