"""Encoder-side latent refinement (Campos et al. 2019, "Content adaptive optimization for neural image compression").

The encoder's latents are a good first guess that a few Adam steps on each image's own rate +
lambda * 255^2 * MSE improve, with the decoder and prior fixed. Only encoding gets slower; the files
and the decoder are unchanged (the file stores the rounded result, so the model id stays).

The v2 codec (hyperprior_codec.py) moves its gained latents through ``Refinement.optimize`` on its own
training loss; v1's loss is pluggable: ``Refinement(objective=...)`` takes any function of a ``RefinementStep`` (the
latents being moved, the frozen float32 model, the target pixels, lambda, the step number) that
returns a scalar loss. ``rate_distortion`` is the shipped one; probes (experiments/codec/refine_probe.py)
pass their variants the same way, so they run the library's loop instead of a copy of it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from ..errors import UserError
from ..models import AutoEncoder
from .context import CheckerboardContext
from .entropy import latent_rate


@dataclass(frozen=True)
class RefinementStep:
    """What an objective sees at one step (all float32; ``model`` and ``context`` are frozen copies)."""

    step: int  # 0 .. steps - 1
    steps: int
    y: torch.Tensor  # N x C x h x w latents being refined (requires grad)
    medians: torch.Tensor  # 1 x C x 1 x 1
    model: AutoEncoder
    context: CheckerboardContext | None
    target: torch.Tensor  # N x 3 x height x width in [0, 1]: the images' own pixels (no padding)
    lam: float  # rd_lambda * lambda_scale * 255^2

    @property
    def height(self) -> int:
        return self.target.shape[2]

    @property
    def width(self) -> int:
        return self.target.shape[3]


Objective = Callable[[RefinementStep], torch.Tensor]


def rate_distortion(s: RefinementStep) -> torch.Tensor:
    """The shipped objective: bits per pixel + lambda * 255^2 * MSE, summed over images (so each image's
    latents move as if it were alone in the batch). The decoder sees round(y - median) + median with a
    straight-through gradient, as in training (ste_decoder); the rate is the entropy model's interval
    likelihood at y (``latent_rate``), under the context model when there is one."""
    y, medians = s.y, s.medians
    y_hat = y + (torch.round(y - medians) + medians - y).detach()
    x_hat = s.model.decode(y_hat)[:, :, : s.height, : s.width]
    sq_err = (x_hat - s.target).pow(2).sum()
    bits = latent_rate(s.model.entropy_bottleneck, s.context, y - medians, y_hat - medians)
    return bits.sum() / (s.height * s.width) + s.lam / s.target[0].numel() * sq_err


@dataclass(frozen=True)
class Refinement:
    """Encoder-side latent refinement: ``steps`` Adam steps (lr ``lr``, cosine decay) per image on
    ``objective`` (default: bits + lambda * 255^2 * MSE), lambda = the model's rd_lambda * ``lambda_scale``.
    steps=0: off."""

    steps: int = 0
    lr: float = 0.02
    lambda_scale: float = 1.0
    objective: Objective = field(default=rate_distortion, repr=False)

    def __post_init__(self):
        if self.steps < 0 or self.lr <= 0 or self.lambda_scale <= 0:
            raise UserError(f"refinement needs steps >= 0, lr > 0 and lambda_scale > 0; got {self}")

    @property
    def tag(self) -> str:
        """A name for output folders and tables ("" when off; another objective adds its name)."""
        if not self.steps:
            return ""
        custom = "" if self.objective is rate_distortion else f"-{getattr(self.objective, '__name__', 'custom')}"
        return f"refine{self.steps}x{self.lambda_scale:g}{custom}"

    def run(
        self,
        model: AutoEncoder,
        context: CheckerboardContext | None,
        medians: torch.Tensor,
        target: torch.Tensor,
        y: torch.Tensor,
        rd_lambda: float,
    ) -> torch.Tensor:
        """v1: latents ``y`` (N x C x h x w) moved by ``steps`` Adam steps on ``objective``; float64 out.

        ``model``/``context``: float32 copies, frozen; ``medians``: 1 x C x 1 x 1 float32; ``target``: the
        images' own float32 pixels in [0, 1] (the padding cropped off, so only real pixels count)."""
        lam = rd_lambda * self.lambda_scale * 255**2
        return self.optimize(
            y, lambda y, step: self.objective(RefinementStep(step, self.steps, y, medians, model, context, target, lam))
        )

    def optimize(self, y: torch.Tensor, loss_of: Callable[[torch.Tensor, int], torch.Tensor]) -> torch.Tensor:
        """The one refinement loop (v1 and v2): ``steps`` Adam steps on ``loss_of(y, step)``, cosine-decayed
        learning rate, from the float32 copy of ``y``; returns float64."""
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


NO_REFINEMENT = Refinement()  # the default of Codec and load_codec: off
