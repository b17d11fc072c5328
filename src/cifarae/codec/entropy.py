"""Code lengths under the factorized prior (and the context model), and fitting the prior to a trained encoder."""

from __future__ import annotations

import torch

from ..models import AutoEncoder
from . import compressai_adapter as cai
from .context import CheckerboardContext, anchor_mask, gaussian_bits


@torch.no_grad()
def encode_latents(model: AutoEncoder, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """N x 3 x H x W uint8 -> the encoder's (unrounded) latents, in eval mode, in batches."""
    model.eval()
    return torch.cat(
        [model.encode(images[i : i + batch_size].float() / 255) for i in range(0, len(images), batch_size)]
    )


@torch.no_grad()
def fit_tails(eb, iterations: int = 64) -> None:
    """Set the lower and upper quantiles by bisection (deterministic; the medians stay)."""
    shape = (eb.channels, 1, 1)
    for i in (0, 2):
        low = torch.full(shape, -1e5, dtype=eb.quantiles.dtype)
        high = torch.full(shape, 1e5, dtype=eb.quantiles.dtype)
        for _ in range(iterations):
            mid = (low + high) / 2
            below = cai.cumulative_logits(eb, mid, stop_gradient=True) < eb.target[i]
            low, high = torch.where(below, mid, low), torch.where(below, high, mid)
        eb.quantiles[:, :, i] = ((low + high) / 2)[:, :, 0]


def latent_bits(eb, v: torch.Tensor) -> torch.Tensor:
    """Bits of each value of ``v`` (C x 1 x N, the EntropyBottleneck's layout) under the factorized prior."""
    return -torch.log2(eb.likelihood_lower_bound(cai.likelihood(eb, v)))


def latent_rate(
    eb, context: CheckerboardContext | None, v: torch.Tensor, v_hat: torch.Tensor | None = None
) -> torch.Tensor:
    """Per-image bits of latents ``v`` (N x C x h x w, minus the medians; the interval likelihood, no
    rounding) under the factorized prior, or, with a context model, the prior's on the anchors and the
    Gaussian's on the rest given the coded anchors ``v_hat``."""
    n, c, h, w = v.shape
    medians = eb.quantiles[:, 0, 1].view(1, -1, 1, 1).to(v.dtype)
    flat = (v + medians).transpose(0, 1).reshape(c, 1, -1)
    bits = latent_bits(eb, flat).reshape(c, n, h, w).transpose(0, 1)
    if context is not None:
        mean, scale = context(v_hat)
        bits = torch.where(anchor_mask(h, w).to(v.device), bits, gaussian_bits(v, mean, scale))
    return bits.sum(dim=(1, 2, 3))


def fit_densities(eb, y_hat: torch.Tensor, steps: int = 600, lr: float = 1e-2) -> None:
    """Fit the prior's densities to coded latents ``y_hat`` (C x 1 x N): Adam (cosine) on their mean code
    length over random batches of 16,384 positions. Medians and CDF tails are left to the caller."""
    opt = torch.optim.Adam([*eb.matrices, *eb.biases, *eb.factors], lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    gen = torch.Generator().manual_seed(0)
    with torch.enable_grad():
        for _ in range(steps):
            idx = torch.randint(0, y_hat.shape[2], (min(16384, y_hat.shape[2]),), generator=gen)
            loss = latent_bits(eb, y_hat[:, :, idx]).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            schedule.step()


def fit_entropy_model(model: AutoEncoder, images: torch.Tensor, steps: int = 600, lr: float = 1e-2) -> dict:
    """Refit the factorized prior to the trained encoder's quantised latents (transforms frozen).

    A short CPU run leaves the EntropyBottleneck's densities far from the latents they code
    (they start 10 units wide and move ~lr per step). This minimises the real code length,
    -log2 p(round(y - median) + median), over ``images`` (use the training split), then sets the
    CDF tails by bisection. Medians stay as trained, so the quantised latents do not change.
    """
    eb = model.entropy_bottleneck
    medians = eb.quantiles[:, 0, 1].detach().clone()
    y = encode_latents(model, images).float()
    y_hat = (torch.round(y - medians.view(1, -1, 1, 1)) + medians.view(1, -1, 1, 1)).transpose(0, 1)
    y_hat = y_hat.reshape(y_hat.shape[0], 1, -1)  # C x 1 x N, EntropyBottleneck's layout
    with torch.no_grad():
        before = latent_bits(eb, y_hat).mean().item()
    fit_densities(eb, y_hat, steps, lr)
    with torch.no_grad():
        fit_tails(eb)  # CDF tails where the fitted densities put tail_mass
        eb.quantiles[:, 0, 1] = medians
        after = latent_bits(eb, y_hat).mean().item()
    c, n = y.shape[1], y[0].numel()
    return {
        "images": len(images),
        "steps": steps,
        "bits_per_latent_before": before,
        "bits_per_latent_after": after,
        "bpp_before": before * n / (images.shape[2] * images.shape[3]),
        "bpp_after": after * n / (images.shape[2] * images.shape[3]),
        "latent_channels": c,
    }
