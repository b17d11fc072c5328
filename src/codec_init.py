"""Turn a trained plain autoencoder into the starting point of a codec run (for init_from=).

    python src/codec_init.py --ae runs/report/ae --out runs/codec/init48.pt --latent-channels 48 --data PATH

Copies the backbone and decoder; widens the latent to --latent-channels (the autoencoder's
channels keep their weights, the new ones start small in the decoder, so the starting
reconstruction is the autoencoder's); rescales every latent channel to a standard deviation of
--latent-std (compensated in the decoder's first convolution, so the function is unchanged) so
that rounding to integers costs little at the start; and centres the factorized prior on those
latents and fits it on the training split. Train from it with `init_from=OUT entropy_model=factorized
latent_channels=C` (the backbone, hence classifier compatibility, is the autoencoder's).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import torch
import torch.nn.functional as F

from cifarae import checkpoint
from cifarae import data as data_lib
from cifarae.codec import encode_latents, fit_entropy_model
from cifarae.errors import UserError, cli_main
from cifarae.models import AutoEncoder

WIDENED = ("to_latent.weight", "to_latent.bias", "decoder.layers.0.0.weight")


def widen(model: AutoEncoder, state: dict, source: str) -> list[str]:
    """Load ``state`` into ``model``; the latent-channel tensors may be narrower (copied in front)."""
    own = model.state_dict()
    widened = []
    for key, value in own.items():
        if key.startswith("entropy_bottleneck."):
            continue
        if key not in state:
            raise UserError(f"{source} lacks {key}: not an autoencoder of this architecture")
        theirs = state[key]
        if theirs.shape == value.shape:
            value.copy_(theirs)
        elif key in WIDENED:
            c = theirs.shape[1] if key.startswith("decoder") else theirs.shape[0]
            if key.startswith("decoder"):
                value.mul_(0.1)[:, :c] = theirs
            else:
                value[:c] = theirs
            widened.append(key)
        else:
            raise UserError(f"{source}: {key} has shape {tuple(theirs.shape)}, expected {tuple(value.shape)}")
    return widened


@torch.no_grad()
def rescale_latents(model: AutoEncoder, images: torch.Tensor, target_std: float, old: int) -> torch.Tensor:
    """Scale each latent channel to ``target_std`` (new channels: a tenth of it, so they start near
    zero rate); divide the decoder's input weights to match."""
    y = encode_latents(model, images)
    target = torch.full((y.shape[1],), target_std)
    target[old:] *= 0.1
    scale = target / y.std(dim=(0, 2, 3)).clamp_min(1e-6)
    model.to_latent.weight.mul_(scale.view(-1, 1, 1, 1))
    model.to_latent.bias.mul_(scale)
    model.decoder.layers[0][0].weight.div_(scale.view(1, -1, 1, 1))
    return scale


@torch.no_grad()
def center_prior(model: AutoEncoder, images: torch.Tensor) -> torch.Tensor:
    """Move each channel's (fresh) prior density and median onto the latents' mean.

    The cumulative density is f(H0 x + b0, ...): b0 -= H0 * mean shifts it exactly by mean.
    """
    eb = model.entropy_bottleneck
    mean = encode_latents(model, images).mean(dim=(0, 2, 3))
    eb.biases[0] -= F.softplus(eb.matrices[0]) * mean.view(-1, 1, 1)
    eb.quantiles += mean.view(-1, 1, 1)
    return mean


@cli_main
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ae", required=True, help="plain autoencoder run directory or checkpoint")
    p.add_argument("--out", required=True, type=Path, help="checkpoint file to write (pass it as init_from=)")
    p.add_argument("--latent-channels", type=int, default=0, help="0: the autoencoder's")
    p.add_argument("--latent-std", type=float, default=3.0, help="0: no rescaling")
    p.add_argument("--data", help="CIFAR-10 source: rescale and fit the prior on its training split")
    p.add_argument("--images", type=int, default=5000)
    p.add_argument("--fit-steps", type=int, default=400, help="steps of the prior fit")
    p.add_argument("--cache-dir", type=Path, default=None)
    args = p.parse_args(argv)
    ckpt = checkpoint.load(args.ae, "best")
    ae_cfg = checkpoint.checkpoint_config(ckpt)
    if ae_cfg.task != "ae":
        raise UserError(f"{ckpt['path']} is a {ae_cfg.task} checkpoint, not an autoencoder")
    channels = args.latent_channels or ae_cfg.latent_channels
    if channels < ae_cfg.latent_channels:
        raise UserError(f"--latent-channels {channels} is fewer than the autoencoder's {ae_cfg.latent_channels}")
    cfg = dataclasses.replace(ae_cfg, entropy_model="factorized", latent_channels=channels, init_from="").check()
    torch.manual_seed(cfg.seed)
    model = AutoEncoder(cfg)
    widened = widen(model, checkpoint.inference_state(ckpt), ckpt["path"])
    info = {"source": ckpt["path"], "widened": widened, "latent_channels": channels}
    if args.data:
        dataset = data_lib.load(args.data, cfg.val_size, cfg.split_seed, args.cache_dir)
        images, _ = dataset.subset("train", args.images)
        if args.latent_std:
            info["latent_scale"] = rescale_latents(model, images, args.latent_std, ae_cfg.latent_channels).tolist()
        info["latent_mean"] = center_prior(model, images).tolist()
        info["prior_fit"] = fit_entropy_model(model, images, steps=args.fit_steps)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    checkpoint.save_atomic(checkpoint.new(cfg, ckpt.get("classes"), model.state_dict(), codec_init=info), args.out)
    fit = info.get("prior_fit")
    rate = f", prior fitted: {fit['bpp_after']:.2f} bpp estimated at the start" if fit else ""
    print(f"{ckpt['path']} -> {args.out}: latent {channels}x{cfg.latent_size}x{cfg.latent_size}{rate}")


if __name__ == "__main__":
    main()
