"""Would a context among the skip latent's own values pay on the shipped codec? (issue #26: "a spatial/channel
context where it pays")

The shipped model's files carry its 16x16 skip latent alone (latent_split.py: the 8x8 main latent is dead). That
latent is coded folded (space-to-depth) onto the 8x8 grid: 32 channels x 4 sub-positions = 128 channels. Its
checkerboard works at 8x8, so the four values of a 2x2 block and the 32 channels at a position are all coded at
once, none conditioned on another. This probe splits the 128 folded channels into four groups and codes them one
after another within each checkerboard pass, each group conditioned on the groups decoded before it:

    anchors: group 1 (hyperprior) -> group 2 (+ group 1's decoded anchors) -> ... -> group 4
    non-anchors: group 1 (checkerboard) -> group 2 (+ every anchor and group 1's non-anchors) -> ... -> group 4

--split position: a group is one sub-position of the 2x2 blocks (a spatial context at 16x16 with four passes of
the 8x8 checkerboard's each); --split channel: a group is 8 of the 32 skip channels at all four sub-positions (a
channel context, Minnen & Singh 2020, in equal groups). The main latent keeps its own two passes.

The shipped transforms, gains, hyperprior and checkerboard stay frozen, and the order keeps them valid: the
checkerboard still sees every anchor before any non-anchor. Fitted on top, for each group after the first in each
pass: a 5x5 convolution over what is decoded of the skip latent and a pointwise network that turns (the group's
means and log-scales, that context) into new ones, a residual initialised to add zero (channel_context_probe.py's
design). Loss: the estimated rate (noisy latents), each image at a random level. Measured on held-out validation
images in float (no coder): bits per pixel with and without it, each level, and the PSNR change from the moved
means. Before fitting, it checks that the passes without the new context give the shipped model's bits.

    python experiments/codec/group_context_probe.py --data DATA [--split position|channel] [--model models/codec-v2]
        [--train 45000] [--epochs 3] [--hidden 384] [--features 64] [--kernel 5] [--out outs/codec_group_context_probe]
        (writes OUT/SPLIT/probe.json)
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

GROUPS = 4


class GroupContext(nn.Module):
    """A correction of one group's (means, log-scales) from what is decoded of the skip latent."""

    def __init__(self, seen: int, group: int, hidden: int, features: int, kernel: int):
        super().__init__()
        self.context = nn.Conv2d(seen, features, kernel, padding=kernel // 2)
        self.fuse = correction(2 * group + features, hidden, 2 * group)

    def forward(self, seen: torch.Tensor, means: torch.Tensor, log_scales: torch.Tensor):
        params = torch.cat([means, log_scales], 1)
        return (params + self.fuse(torch.cat([params, self.context(seen)], 1))).chunk(2, 1)


def group_order(skip_folded: int, fold: int, split: str) -> torch.Tensor:
    """The folded skip channels in coding order, group after group. pixel_unshuffle puts skip channel c's
    sub-position s at folded channel c * fold**2 + s."""
    k = torch.arange(skip_folded)
    per_channel = skip_folded // fold**2 // GROUPS
    key = k % fold**2 if split == "position" else k // fold**2 // per_channel
    return torch.cat([torch.nonzero(key == g).flatten() for g in range(GROUPS)])


def rate_and_hat(lc, main: int, order: torch.Tensor, ctx: nn.ModuleList | None, y, quality, noisy: bool):
    """({main, skip, hyper}: each image's bits, y_g_hat / gain) in the passes above; ctx=None: the shipped
    model's parameters (its own two passes')."""
    gain, y_g, z_lik, hyper = hyperprior_side(lc, y, quality)
    anchor = anchor_mask(*y.shape[-2:])
    unorder = torch.argsort(order)

    def skip(t):  # the skip channels of t in coding order, as GROUPS chunks
        return t[:, main:][:, order].chunk(GROUPS, 1)

    def passes(first, params, mask, seen_before):
        """One checkerboard pass (``mask``'s positions) group by group: ([(means, log-scales)], [decoded])."""
        out, decoded = [], []
        for g, (y_group, m, s) in enumerate(zip(skip(y_g), *(skip(p) for p in params))):
            if g and ctx is not None:
                later = torch.zeros_like(torch.cat(skip(y_g)[g:], 1))
                m, s = ctx[first][g - 1](seen_before + torch.cat([*decoded, later], 1), m, s)
            out.append((m, s))
            decoded.append(rounded(y_group, m) * mask)
        return out, decoded

    hyper_means, hyper_log_scales = hyper.chunk(2, 1)
    zero = torch.zeros_like(y_g[:, main:])
    anchor_params, anchors = passes(0, (hyper_means, hyper_log_scales), anchor, zero)
    skip_anchors = torch.cat(anchors, 1)
    main_anchors = rounded(y_g[:, :main], hyper_means[:, :main]) * anchor
    checkerboard = lc.context(torch.cat([main_anchors, skip_anchors[:, unorder]], 1), hyper)
    cb_means, cb_log_scales = checkerboard.chunk(2, 1)
    other_params, _ = passes(1, (cb_means, cb_log_scales), 1 - anchor, skip_anchors)

    def joined(i, main_part):  # the main channels' and the skip's (in channel order) means or log-scales
        skip_part = torch.cat([a[i] * anchor + o[i] * (1 - anchor) for a, o in zip(anchor_params, other_params)], 1)
        return torch.cat([main_part[:, :main], skip_part[:, unorder]], 1)

    means, log_scales = joined(0, cb_means), joined(1, cb_log_scales)
    return main_skip_bits(lc, main, gain, y_g, z_lik, means, log_scales, noisy)


def main() -> None:
    def extra(ap):
        ap.add_argument("--split", choices=("position", "channel"), default="position")
        ap.add_argument("--features", type=int, default=64, help="context features per group")
        ap.add_argument("--kernel", type=int, default=5, help="the context convolution's size")

    args = entropy_probe_args(__doc__, "models/codec-v2", 45000, 3, "outs/codec_group_context_probe", extra)
    args.out = f"{args.out}/{args.split}"
    model = frozen_skip_codec(args.model)
    lc = model.latent_codec
    main_channels = model.to_latent.out_channels
    skip_folded = lc.channels - main_channels
    group = skip_folded // GROUPS

    def one_pass():  # a context for each group after the first
        return nn.ModuleList(
            [GroupContext(skip_folded, group, args.hidden, args.features, args.kernel) for _ in range(GROUPS - 1)]
        )

    ctx = nn.ModuleList([one_pass(), one_pass()])  # anchors, non-anchors
    latents = cached_latents(model, args.data, args.train, args.val)
    rate = partial(rate_and_hat, lc, main_channels, group_order(skip_folded, model.skip_fold, args.split))
    check_same_bits(model, rate, latents, "group passes")
    probe_entropy_part(model, ctx, rate, ("shipped", f"{args.split}_context"), latents, args)


if __name__ == "__main__":
    cli_main(main)()
