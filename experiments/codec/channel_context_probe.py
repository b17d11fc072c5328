"""Would a channel context pay on the shipped codec? (issue #26: "a spatial/channel context where it pays")

The shipped model codes one 192-channel 8x8 latent: the main latent's 64 channels, then the 16x16 skip latent
folded (space-to-depth) into 128 more. Its checkerboard context codes all anchors, then all non-anchors, and
conditions nothing on the other channels at the same position. This probe asks how many bits the skip channels
would save if they were coded after the main latent's and conditioned on them (a channel context in two groups,
Minnen & Singh 2020; ELIC's uneven groups, He et al. 2022), keeping the checkerboard, in four passes:

    main anchors (hyperprior) -> skip anchors (hyperprior + the main latent's decoded anchors)
    -> main non-anchors (checkerboard) -> skip non-anchors (checkerboard + the whole decoded main latent)

The shipped transforms, gains, hyperprior and checkerboard stay frozen, and the order keeps them valid: the
checkerboard still sees every anchor before any non-anchor. Fitted on top: for each of the two skip passes, a
5x5 convolution over what is decoded of the main latent and a pointwise network that turns (the skip's mean and
log-scale, that context) into new ones, a residual initialised to add zero (context_probe.py's design, which led
to the library's checkerboard). Loss: the estimated rate (noisy latents), each image at a random level. Measured
on held-out validation images in float (no coder): bits per pixel of the latents with and without it, each level,
and the PSNR change from the moved means. The main latent's parameters move only through the skip anchors
that the checkerboard reads: the saving is the skip latent's.

    python experiments/codec/channel_context_probe.py --data DATA [--model models/codec-v2] [--train 45000]
        [--epochs 3] [--out outs/codec_channel_context_probe]
"""

from __future__ import annotations

from functools import partial

import torch
from frozen import (
    cached_latents,
    check_same_bits,
    correction,
    entropy_probe_args,
    frozen_skip_codec,
    hyperprior_side,
    main_skip_bits,
    probe_entropy_part,
    rounded,
)
from torch import nn

from cifarae.codec.hyperprior import anchor_mask
from cifarae.errors import cli_main


class ChannelContext(nn.Module):
    """A correction of the skip channels' (means, log-scales) from what is decoded of the main latent."""

    def __init__(self, main: int, skip: int, hidden: int):
        super().__init__()
        self.context = nn.Conv2d(main, skip, 5, padding=2)
        self.fuse = correction(3 * skip, hidden, 2 * skip)

    def forward(self, main_hat: torch.Tensor, skip_params: torch.Tensor) -> torch.Tensor:
        return skip_params + self.fuse(torch.cat([skip_params, self.context(main_hat)], dim=1))


def rate_and_hat(lc, main: int, ctx: nn.ModuleList | None, y, quality, noisy: bool):
    """({main, skip, hyper}: each image's bits of the main latent, the skip latent and the hyper-latent,
    y_g_hat / gain) in the four passes above; ctx=None: the shipped model's parameters (its own two passes')."""
    gain, y_g, z_lik, hyper = hyperprior_side(lc, y, quality)
    anchor = anchor_mask(*y.shape[-2:])

    def split(params):  # (main's params, skip's params), each [means, log-scales]
        means, log_scales = params.chunk(2, 1)
        return (
            torch.cat([means[:, :main], log_scales[:, :main]], 1),
            torch.cat([means[:, main:], log_scales[:, main:]], 1),
        )

    def join(main_params, skip_params):
        (m1, s1), (m2, s2) = main_params.chunk(2, 1), skip_params.chunk(2, 1)
        return torch.cat([m1, m2, s1, s2], 1)

    main_hyper, skip_hyper = split(hyper)
    main_anchors = rounded(y_g[:, :main], main_hyper.chunk(2, 1)[0]) * anchor
    skip_anchor_params = skip_hyper if ctx is None else ctx[0](main_anchors, skip_hyper)
    skip_anchors = rounded(y_g[:, main:], skip_anchor_params.chunk(2, 1)[0]) * anchor
    checkerboard = lc.context(torch.cat([main_anchors, skip_anchors], 1), hyper)  # the hyperprior's at anchors
    main_params, skip_params = split(checkerboard)
    main_hat = main_anchors + rounded(y_g[:, :main], main_params.chunk(2, 1)[0]) * (1 - anchor)
    if ctx is not None:
        skip_params = skip_anchor_params * anchor + ctx[1](main_hat, skip_params) * (1 - anchor)
    means, log_scales = join(main_params, skip_params).chunk(2, 1)
    return main_skip_bits(lc, main, gain, y_g, z_lik, means, log_scales, noisy)


def main() -> None:
    args = entropy_probe_args(__doc__, "models/codec-v2", 45000, 3, "outs/codec_channel_context_probe")
    model = frozen_skip_codec(args.model)
    lc = model.latent_codec
    main_channels = model.to_latent.out_channels
    ctx = nn.ModuleList([ChannelContext(main_channels, lc.channels - main_channels, args.hidden) for _ in range(2)])
    latents = cached_latents(model, args.data, args.train, args.val)
    rate = partial(rate_and_hat, lc, main_channels)
    check_same_bits(model, rate, latents, "four passes")
    probe_entropy_part(model, ctx, rate, ("shipped", "channel_context"), latents, args)


if __name__ == "__main__":
    cli_main(main)()
