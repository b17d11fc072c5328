"""Would a checkerboard context pay on a codec without one? (issue #26: "a spatial/channel context where it pays")

The probe that led to the library's context (codec/hyperprior.py, config context=checkerboard), run on the
model shipped before it: experiments/codec/v2.sh's base, RUNS/codec_v2_base/model. Its transforms, gains and
hyperprior stay frozen. A checkerboard context (He et al. 2021)
is fitted on top: a masked 5x5 convolution over the decoded anchor latents (CompressAI's
CheckerboardMaskedConv2d) and a pointwise network that turns (hyperprior's mean and log-scale, context)
into new ones, a residual on the hyperprior's, initialised to add zero. Anchors keep the hyperprior's
parameters; only the non-anchor half can gain. Loss: the estimated rate (noisy latents), each image at a
random quality level. Measured on held-out validation images in float (no coder): bits per pixel of the
latents with and without the context, and the PSNR change from the moved means.

    python experiments/codec/context_probe.py --data DATA --model runs/codec_v2_base/model [--train 20000]
        [--epochs 3] [--out outs/codec_context_probe]
"""

from __future__ import annotations

from functools import partial

import torch
from compressai.layers import CheckerboardMaskedConv2d
from compressai.ops import quantize_ste
from frozen import cached_latents, correction, entropy_probe_args, probe_entropy_part
from torch import nn

from cifarae.codec import load_codec
from cifarae.codec.hyperprior import anchor_mask
from cifarae.errors import UserError, cli_main


class CheckerboardContext(nn.Module):
    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.context = CheckerboardMaskedConv2d(channels, 2 * channels, 5, padding=2)
        self.fuse = correction(4 * channels, hidden, 2 * channels)

    def forward(self, anchors_hat: torch.Tensor, hyper_params: torch.Tensor) -> torch.Tensor:
        """(means, log-scales) of every position: the hyperprior's at anchors, refined at non-anchors."""
        ctx = self.context(anchors_hat)
        delta = self.fuse(torch.cat([hyper_params, ctx], dim=1))
        return hyper_params + delta * (1 - anchor_mask(*anchors_hat.shape[-2:]))


def rate_and_hat(lc, ctx, y, quality, noisy: bool):
    """({latent, hyper}: each image's bits of y and z, y_g_hat / gain) with the context (or without, ctx=None)."""
    gain = lc.gains(quality)
    y_g = y * gain
    z = lc.h_a(y_g)
    z_hat, z_lik = lc.entropy_bottleneck(z)
    h, w = y.shape[-2:]
    hyper = lc.h_s(z_hat - lc.hyper_medians())[:, :, :h, :w]
    anchor = anchor_mask(h, w)
    means_h = hyper.chunk(2, 1)[0]
    anchors_hat = (quantize_ste(y_g - means_h) + means_h) * anchor
    params = hyper if ctx is None else ctx(anchors_hat, hyper)
    means, log_scales = params.chunk(2, 1)
    y_in = y_g if noisy else torch.round(y_g - means) + means
    _, y_lik = lc.gaussian_conditional(y_in, torch.exp(log_scales), means)
    bits = {"latent": -torch.log2(y_lik).flatten(1).sum(1), "hyper": -torch.log2(z_lik).flatten(1).sum(1)}
    y_hat = quantize_ste(y_g - means) + means
    return bits, y_hat / gain


def main() -> None:
    args = entropy_probe_args(__doc__, None, 20000, 3, "outs/codec_context_probe")
    torch.manual_seed(0)
    codec = load_codec(args.model)
    if codec.lc.context is not None:
        raise UserError(f"{args.model} has a context already; probe a model without one (RUNS/codec_v2_base/model)")
    model = codec.model.float().eval().requires_grad_(False)
    lc = model.latent_codec
    ctx = CheckerboardContext(lc.channels, args.hidden)
    latents = cached_latents(model, args.data, args.train, args.val)
    probe_entropy_part(model, ctx, partial(rate_and_hat, lc), ("hyperprior", "context"), latents, args)


if __name__ == "__main__":
    cli_main(main)()
