"""Autoencoder losses: weighted MSE / L1 / (1 - SSIM), plus the rate term for the codec."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torchmetrics.functional.image import structural_similarity_index_measure


def reconstruction_loss(x_hat: torch.Tensor, x: torch.Tensor, weights: dict[str, float]) -> torch.Tensor:
    """sum_k w_k * loss_k, on images in [0, 1], computed in fp32 (bf16 SSIM is too coarse)."""
    x_hat, x = x_hat.float(), x.float()
    total = x.new_zeros(())
    if weights.get("mse"):
        total = total + weights["mse"] * F.mse_loss(x_hat, x)
    if weights.get("l1"):
        total = total + weights["l1"] * F.l1_loss(x_hat, x)
    if weights.get("ssim"):
        ssim = structural_similarity_index_measure(x_hat, x, data_range=1.0)
        total = total + weights["ssim"] * (1 - ssim)
    return total


def bits_per_pixel(likelihoods: torch.Tensor, num_pixels: int) -> torch.Tensor:
    """Estimated rate of a batch: -sum log2 p(y_hat) / pixels (what an ideal entropy coder spends)."""
    return -torch.log(likelihoods).sum() / (math.log(2) * num_pixels)
