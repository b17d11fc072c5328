"""Evaluation metrics (torchmetrics), computed from per-sample outputs gathered in index order.

Per-sample values are gathered from every rank and sorted by sample index before any
reduction, so DDP and single-process evaluation give identical numbers.
"""

from __future__ import annotations

import math

import torch

# torchmetrics is imported where it is used: it costs ~2 s of start-up (scipy, torch._dynamo), which a
# command that fails on bad input, prints --help or only codes files should not pay.
PSNR_CAP_DB = 100.0  # a perfect reconstruction has infinite PSNR; cap it so JSON stays finite


def psnr(mse, peak: float = 1.0):
    """PSNR in dB of a mean squared error: a float, or a tensor of them (e.g. one per image)."""
    if isinstance(mse, torch.Tensor):
        return 10 * torch.log10(peak**2 / mse.clamp_min(1e-10))
    return 10 * math.log10(peak**2 / max(mse, 1e-10))


def per_image_reconstruction(x_hat: torch.Tensor, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """MSE, MAE, PSNR and SSIM of each image; inputs in [0, 1], x_hat already 8-bit-rounded."""
    from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

    x_hat, x = x_hat.float(), x.float()
    dims = (1, 2, 3)
    image_psnr = peak_signal_noise_ratio(x_hat, x, data_range=1.0, reduction="none", dim=dims)
    return {
        "mse": (x_hat - x).pow(2).mean(dims),
        "mae": (x_hat - x).abs().mean(dims),
        "psnr": image_psnr.nan_to_num(posinf=PSNR_CAP_DB).clamp(max=PSNR_CAP_DB),
        "ssim": structural_similarity_index_measure(x_hat, x, data_range=1.0, reduction="none"),
    }


def pixel_histogram(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """256 x 256 counts of (original, reconstructed) 8-bit pixel values: exact under summation."""
    a = x.mul(255).round().long().flatten()
    b = x_hat.mul(255).round().long().flatten()
    return torch.bincount(a * 256 + b, minlength=256 * 256).view(256, 256)


def r_squared(hist: torch.Tensor) -> float:
    """Coefficient of determination of reconstructed vs original pixel values, from the histogram."""
    h = hist.double()
    v = torch.arange(256, dtype=torch.float64) / 255
    n = h.sum()
    mean_orig = (h.sum(1) * v).sum() / n
    # Row sums first: reductions this small run on one thread, so the result does not depend on the
    # thread count (a DDP rank under torchrun has one, a single process several).
    ss_res = (h * (v.view(-1, 1) - v.view(1, -1)).pow(2)).sum(1).sum()
    ss_tot = (h.sum(1) * (v - mean_orig).pow(2)).sum()
    return float(1 - ss_res / ss_tot)


def summarize_reconstruction(per_image: dict, labels: torch.Tensor, classes: list[str], worst_k: int = 10) -> dict:
    mse = per_image["mse"].double()
    image_psnr = per_image["psnr"].double()
    worst = torch.argsort(image_psnr, stable=True)[:worst_k]
    return {
        "mse": float(mse.mean()),
        "mae": float(per_image["mae"].double().mean()),
        "psnr_mean": float(image_psnr.mean()),  # mean of per-image PSNR
        "psnr_dataset": float(psnr(mse.mean())),  # PSNR of the pooled MSE
        "ssim": float(per_image["ssim"].double().mean()),
        "psnr_per_class": {c: float(image_psnr[labels == i].mean()) for i, c in enumerate(classes)},
        "worst_indices": worst.tolist(),
        "worst_psnr": image_psnr[worst].tolist(),
        "num_images": len(labels),
    }


def summarize_classification(logits: torch.Tensor, labels: torch.Tensor, classes: list[str]) -> dict:
    import torchmetrics.functional as tmf

    k = len(classes)
    probs = logits.float().softmax(1)
    kw = {"task": "multiclass", "num_classes": k}
    precision = tmf.precision(probs, labels, average="none", **kw)
    recall = tmf.recall(probs, labels, average="none", **kw)
    f1 = tmf.f1_score(probs, labels, average="none", **kw)
    return {
        "accuracy": float(tmf.accuracy(probs, labels, average="micro", **kw)),
        "top2_accuracy": float(tmf.accuracy(probs, labels, average="micro", top_k=2, **kw)),
        "macro_f1": float(tmf.f1_score(probs, labels, average="macro", **kw)),
        "ece": float(tmf.calibration_error(probs, labels, n_bins=15, norm="l1", **kw)),
        "precision_per_class": dict(zip(classes, precision.tolist())),
        "recall_per_class": dict(zip(classes, recall.tolist())),
        "f1_per_class": dict(zip(classes, f1.tolist())),
        "confusion_matrix": tmf.confusion_matrix(probs, labels, **kw).tolist(),
        "num_images": len(labels),
    }


def flat_row(split: str, metrics: dict) -> dict:
    """One CSV row: scalars as they are, per-class dicts as <metric>_<class>; lists left out."""
    row = {"split": split}
    for key, value in metrics.items():
        if isinstance(value, dict):
            row.update({f"{key.removesuffix('_per_class')}_{c}": v for c, v in value.items()})
        elif not isinstance(value, list):
            row[key] = value
    return row
