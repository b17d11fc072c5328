"""Fitting a context model to a trained codec, and the training images priors are fitted on.

(The factorized prior's own refit is entropy.fit_entropy_model.)
"""

from __future__ import annotations

from pathlib import Path

import torch
from tqdm.auto import tqdm

from .. import data as data_lib
from ..config import Config
from ..models import AutoEncoder
from .context import CheckerboardContext
from .entropy import encode_latents, latent_rate


def fit_context(
    model: AutoEncoder, images: torch.Tensor, hidden: int = 192, epochs: int = 6, batch_size: int = 256, lr=2e-3
) -> tuple[CheckerboardContext, dict]:
    """Fit a checkerboard context model to a trained codec's quantised latents (everything else frozen).

    Adam with a one-cycle schedule on the estimated code length (``latent_rate``) of ``images``'
    symbols (use the training split); seeded, so a rerun gives the same weights.
    """
    eb = model.entropy_bottleneck
    medians = eb.quantiles[:, 0, 1].detach().view(1, -1, 1, 1)
    symbols = torch.round(encode_latents(model, images) - medians)
    torch.manual_seed(0)
    context = CheckerboardContext(symbols.shape[1], hidden)
    steps_per_epoch = max(len(symbols) // batch_size, 1)
    opt = torch.optim.Adam(context.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=epochs * steps_per_epoch)
    gen = torch.Generator().manual_seed(0)
    pixels = images.shape[2] * images.shape[3]

    def bpp(ctx):
        with torch.no_grad():
            return sum(latent_rate(eb, ctx, s, s).sum().item() for s in symbols.split(1000)) / len(symbols) / pixels

    before = bpp(None)
    with torch.enable_grad():
        for _ in tqdm(range(epochs), desc="context epochs", unit="epoch", leave=False):
            perm = torch.randperm(len(symbols), generator=gen)
            for k in range(steps_per_epoch):
                batch = symbols[perm[k * batch_size : (k + 1) * batch_size]]
                loss = latent_rate(eb, context, batch, batch).mean() / pixels
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                schedule.step()
    context.eval()
    stats = {"images": len(images), "epochs": epochs, "hidden": hidden, "bpp_before": before, "bpp_after": bpp(context)}
    return context, stats


def training_images(source: str | Path, cfg: Config, count: int, cache_dir: Path | None = None) -> torch.Tensor:
    """A stratified subset of ``count`` images of the run's training split (all of it for 0) to fit priors on."""
    dataset = data_lib.load(source, cfg.val_size, cfg.split_seed, cache_dir)
    return dataset.subset("train", count)[0]
