"""Synthetic distribution shifts of test images (noise, blur, JPEG, brightness) at 3 severities."""

from __future__ import annotations

import torch

from .rd import pillow_roundtrip

SEVERITIES = {
    "noise": [0.04, 0.08, 0.16],  # std of additive Gaussian noise on [0, 1] pixels
    "blur": [0.6, 1.0, 1.5],  # std (pixels) of a Gaussian blur
    "jpeg": [50, 20, 10],  # Pillow JPEG quality
    "brightness": [1.3, 1.6, 2.0],  # multiplicative gain, clipped
}


def _jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    return pillow_roundtrip((x * 255).round().byte(), "JPEG", quality).decoded.float() / 255


def apply(x: torch.Tensor, kind: str, level: float, seed: int = 0) -> torch.Tensor:
    """Shifted copy of a batch of [0, 1] images, re-quantised to 8 bits like a stored image."""
    if kind == "noise":
        gen = torch.Generator().manual_seed(seed)
        y = x + level * torch.randn(x.shape, generator=gen)
    elif kind == "blur":
        from torchvision.transforms.functional import gaussian_blur  # ~2 s to import: on use

        y = gaussian_blur(x, kernel_size=7, sigma=float(level))
    elif kind == "jpeg":
        y = _jpeg(x, int(level))
    elif kind == "brightness":
        y = x * level
    else:
        raise ValueError(f"unknown shift {kind!r}")
    return y.clamp(0, 1).mul(255).round().div(255)
