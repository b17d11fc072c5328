"""Encoder-side latent refinement (Campos et al. 2019, "Content adaptive optimization for neural image compression").

The encoder's latents are a good first guess that a few Adam steps on each image's own rate +
lambda * 255^2 * MSE improve, with the decoder and entropy model fixed. Only encoding gets slower; the
files and the decoder are unchanged (the file stores the rounded result, so the model id stays).
HyperpriorCodec.refined builds the loss; HyperpriorCodec.compress keeps, per image, whichever of the
plain and the refined file costs less on the real file; this module holds the settings and the loop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..errors import UserError


@dataclass(frozen=True)
class Refinement:
    """``steps`` Adam steps (lr ``lr``, cosine decay) per image on bits + lambda * 255^2 * MSE, lambda =
    the quality level's rd_lambda * ``lambda_scale``. steps=0: off."""

    steps: int = 0
    lr: float = 0.02
    lambda_scale: float = 1.0

    def __post_init__(self):
        if self.steps < 0 or self.lr <= 0 or self.lambda_scale <= 0:
            raise UserError(f"refinement needs steps >= 0, lr > 0 and lambda_scale > 0; got {self}")

    @property
    def tag(self) -> str:
        """A name for output folders and tables ("" when off)."""
        return f"refine{self.steps}x{self.lambda_scale:g}" if self.steps else ""

    def optimize(self, y: torch.Tensor, loss_of: Callable[[torch.Tensor, int], torch.Tensor]) -> torch.Tensor:
        """``steps`` Adam steps on ``loss_of(y, step)``, cosine-decayed learning rate, from the float32
        copy of ``y``; returns float64."""
        y = y.float().clone().requires_grad_(True)
        opt = torch.optim.Adam([y], lr=self.lr)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, self.steps)
        with torch.enable_grad():
            for step in range(self.steps):
                loss = loss_of(y, step)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                schedule.step()
        return y.detach().to(torch.float64)


NO_REFINEMENT = Refinement()  # the default of the codecs and load_codec: off
