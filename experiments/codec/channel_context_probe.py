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
from frozen import cached_latents, correction, entropy_probe_args, probe_entropy_part, rounded
from torch import nn

from cifarae.codec import load_codec
from cifarae.codec.hyperprior import anchor_mask
from cifarae.errors import UserError, cli_main


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
    gain = lc.gains(quality)
    y_g = y * gain
    z_hat, z_lik = lc.entropy_bottleneck(lc.h_a(y_g))
    h, w = y.shape[-2:]
    anchor = anchor_mask(h, w)
    hyper = lc.h_s(z_hat - lc.hyper_medians())[:, :, :h, :w]

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
    y_in = y_g if noisy else torch.round(y_g - means) + means
    _, y_lik = lc.gaussian_conditional(y_in, torch.exp(log_scales), means)
    y_bits = -torch.log2(y_lik)
    bits = {
        "main": y_bits[:, :main].flatten(1).sum(1),
        "skip": y_bits[:, main:].flatten(1).sum(1),
        "hyper": -torch.log2(z_lik).flatten(1).sum(1),
    }
    return bits, rounded(y_g, means) / gain


def main() -> None:
    args = entropy_probe_args(__doc__, "models/codec-v2", 45000, 3, "outs/codec_channel_context_probe")
    torch.manual_seed(0)
    model = load_codec(args.model).model.float().eval().requires_grad_(False)
    lc = model.latent_codec
    if lc.context is None or model.to_skip is None:
        raise UserError(f"{args.model} needs a skip latent and a checkerboard context; probe models/codec-v2")
    main_channels = model.to_latent.out_channels
    ctx = nn.ModuleList([ChannelContext(main_channels, lc.channels - main_channels, args.hidden) for _ in range(2)])
    latents = cached_latents(model, args.data, args.train, args.val)
    rate = partial(rate_and_hat, lc, main_channels)
    with torch.no_grad():  # the four passes without a channel context are the shipped model's two: the same bits
        y_val = latents[3]
        q = torch.full((len(y_val),), model.middle_level)
        shipped_bits = -torch.log2(lc(y_val, q)[1]).sum().item() / len(y_val)
        probe_bits = sum(rate(None, y_val, q, noisy=False)[0].values()).mean().item()
        print(f"middle level, bits per image: shipped {shipped_bits:.2f}, four passes {probe_bits:.2f}", flush=True)
    probe_entropy_part(model, ctx, rate, ("shipped", "channel_context"), latents, args)


if __name__ == "__main__":
    cli_main(main)()
