"""The checkerboard context model and the Gaussian tables it codes with.

The latent grid is split like a checkerboard. The anchor half is coded first under the factorized
prior; the other half under a discretised Gaussian whose mean and scale a small conv net predicts
from the decoded anchors (He et al. 2021, "Checkerboard context model for efficient learned image
compression"). The latents and the decoder do not change, only their code length: the symbols are
still round(y - median_c), and a non-anchor symbol s is sent as s - round(mu) under the CDF table of
(mu's fraction, scale), so CompressAI's coder runs with tables built like GaussianConditional's.
src/codec_context.py fits one to a trained codec (fitting.fit_context).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import UserError
from . import compressai_adapter as cai
from .format import MAX_SYMBOL

# The Gaussian CDF tables: scales on a log grid (GaussianConditional's bounds, capped where CIFAR
# latents end), times the mean's fractional part in MEAN_BINS bins. Part of the model id.
SCALE_MIN, SCALE_MAX, SCALE_LEVELS, MEAN_BINS = 0.11, 64.0, 64, 8
TAIL_MASS = 1e-9


def anchor_mask(height: int, width: int) -> torch.Tensor:
    """height x width bool: True on the checkerboard half coded first (the anchors)."""
    i, j = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    return (i + j) % 2 == 0


class CheckerboardContext(nn.Module):
    """Mean and scale of every non-anchor latent from the anchors around it, all channels at once."""

    def __init__(self, channels: int, hidden: int = 192):
        super().__init__()
        self.channels, self.hidden = channels, hidden
        self.net = nn.Sequential(
            nn.Conv2d(channels + 1, hidden, 3, padding=1),
            nn.GELU(),
            nn.Conv2d(hidden, hidden, 3, padding=1),
            nn.GELU(),
            nn.Conv2d(hidden, hidden, 1),
            nn.GELU(),
            nn.Conv2d(hidden, 2 * channels, 1),
        )

    def forward(self, symbols: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """N x C x h x w latents minus medians (only the anchors are read) -> (mean, scale), each N x C x h x w."""
        n, _, h, w = symbols.shape
        mask = anchor_mask(h, w).to(symbols.dtype)
        out = self.net(torch.cat([symbols * mask, mask.expand(n, 1, h, w)], dim=1))
        mean, log_scale = out.chunk(2, dim=1)
        return mean, log_scale.exp().clamp(SCALE_MIN, SCALE_MAX)


def gaussian_bits(v: torch.Tensor, mean: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Bits of each value of ``v`` under a Gaussian integrated over [v - 1/2, v + 1/2] (GaussianConditional's form)."""
    dist = torch.distributions.Normal(torch.zeros((), dtype=v.dtype), torch.ones((), dtype=v.dtype))
    values = (v - mean).abs()
    likelihood = dist.cdf((0.5 - values) / scale) - dist.cdf((-0.5 - values) / scale)
    return -torch.log2(likelihood.clamp_min(1e-9))


def gaussian_tables() -> tuple[torch.Tensor, list[list[int]], list[int], list[int]]:
    """(scale levels, CDFs, lengths, offsets) for every (scale level, mean bin), scale-major.

    Built like GaussianConditional.update: each table covers the central 1 - TAIL_MASS of a Gaussian
    with mean (bin + 1/2) / MEAN_BINS - 1/2, quantised to CompressAI's 16-bit CDFs."""
    scales = torch.logspace(math.log10(SCALE_MIN), math.log10(SCALE_MAX), SCALE_LEVELS, dtype=torch.float64)
    normal = torch.distributions.Normal(torch.tensor(0.0, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64))
    multiplier = -normal.icdf(torch.tensor(TAIL_MASS / 2, dtype=torch.float64)).item()
    cdfs, lengths, offsets = [], [], []
    for scale in scales.tolist():
        center = math.ceil(scale * multiplier) + 1
        k = torch.arange(-center, center + 1, dtype=torch.float64)
        for b in range(MEAN_BINS):
            mean = (b + 0.5) / MEAN_BINS - 0.5
            pmf = normal.cdf((k + 0.5 - mean) / scale) - normal.cdf((k - 0.5 - mean) / scale)
            tail = max(1.0 - pmf.sum().item(), 0.0)
            cdf = cai.pmf_to_quantized_cdf([*pmf.tolist(), tail], 16)
            cdfs.append(cdf)
            lengths.append(len(cdf))
            offsets.append(-center)
    return scales, cdfs, lengths, offsets


def table_signature(context: CheckerboardContext) -> str:
    """What the model id hashes about the context model besides its weights (the tables are derived from it)."""
    return f"checkerboard:{context.hidden}:{SCALE_MIN}:{SCALE_MAX}:{SCALE_LEVELS}:{MEAN_BINS}"


def conditionals(
    context: CheckerboardContext, anchors: torch.Tensor, scales: torch.Tensor, first_table: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """C x h x w symbols (non-anchors ignored) -> (round(mean), table index) per position, from the
    context model in float64 on this one image: the encoder and the decoder run exactly this.
    ``scales``: gaussian_tables()'s levels; ``first_table``: the index of the first Gaussian table."""
    with torch.no_grad():
        mean, scale = context(anchors.to(torch.float64).unsqueeze(0))
    if not torch.isfinite(mean).all():  # only forged anchors get here: real latents are small
        raise UserError("corrupt entropy-coded stream (context out of range)")
    shift = torch.round(mean[0].clamp(-MAX_SYMBOL, MAX_SYMBOL))
    mean_bin = ((mean[0] - shift + 0.5) * MEAN_BINS).floor().clamp(0, MEAN_BINS - 1)
    level = torch.bucketize(scale[0], scales).clamp(max=SCALE_LEVELS - 1)  # the next level up
    table = first_table + level * MEAN_BINS + mean_bin.long()
    return shift.long(), table
