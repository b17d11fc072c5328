"""Autoencoder losses: weighted MSE / L1 / (1 - SSIM), plus the rate term for the codec."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def reconstruction_loss(x_hat: torch.Tensor, x: torch.Tensor, weights: dict[str, float]) -> torch.Tensor:
    """sum_k w_k * loss_k, on images in [0, 1], computed in fp32 (bf16 SSIM is too coarse)."""
    x_hat, x = x_hat.float(), x.float()
    total = x.new_zeros(())
    if weights.get("mse"):
        total = total + weights["mse"] * F.mse_loss(x_hat, x)
    if weights.get("l1"):
        total = total + weights["l1"] * F.l1_loss(x_hat, x)
    if weights.get("ssim"):
        from torchmetrics.functional.image import structural_similarity_index_measure  # ~2 s to import: on use

        ssim = structural_similarity_index_measure(x_hat, x, data_range=1.0)
        total = total + weights["ssim"] * (1 - ssim)
    return total


def patch_mask(n: int, size: int, ratio: float, patch: int, device=None) -> torch.Tensor:
    """N x 1 x size x size bool masks (True = hidden), each hiding round(ratio * patches) random patches."""
    side = size // patch
    hidden = round(ratio * side * side)
    order = torch.rand(n, side * side, device=device).argsort(dim=1)
    mask = order < hidden  # the first ``hidden`` of a random permutation of the patches
    return mask.view(n, 1, side, side).repeat_interleave(patch, 2).repeat_interleave(patch, 3)


def masked_reconstruction_loss(
    x_hat: torch.Tensor, x: torch.Tensor, mask: torch.Tensor, weights: dict[str, float]
) -> torch.Tensor:
    """sum_k w_k * loss_k (mse, l1) over the hidden pixels alone, in fp32."""
    hidden = mask.expand_as(x).float()
    diff = x_hat.float() - x.float()
    count = hidden.sum().clamp_min(1)
    total = x.new_zeros((), dtype=torch.float32)
    if weights.get("mse"):
        total = total + weights["mse"] * (diff.pow(2) * hidden).sum() / count
    if weights.get("l1"):
        total = total + weights["l1"] * (diff.abs() * hidden).sum() / count
    return total


def bits_per_pixel(likelihoods: torch.Tensor, num_pixels: int) -> torch.Tensor:
    """Estimated rate of a batch: -sum log2 p(y_hat) / pixels (what an ideal entropy coder spends)."""
    return -torch.log(likelihoods).sum() / (math.log(2) * num_pixels)
